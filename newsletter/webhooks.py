"""The configured provider's tracking webhook: Anymail's own view, guarded against bad payloads.

Only the provider named by ANYMAIL_ESP is reachable (``/anymail/<esp>/tracking/``); every other
provider's URL, and every inbound URL, answers 404: Paperboy reads none of them, and each one
mounted is a parser anyone can feed.

Anymail's views authenticate the call (basic auth, and the provider's signature where it has
one), then parse it; anything a parser did not expect (truncated JSON, a list where an object
belongs, a number where text belongs) escapes as an exception, a 500, and the provider retries
the same payload for days. Here the same views run with one change: after authentication, a
payload that cannot be parsed, or whose events ``tracking_event_problem`` refuses, is answered
400 with one log line naming the provider and what was wrong (never the payload: it holds
addresses). Providers that post batches (SendGrid) have each event parsed on its own, so a bounce
in a batch is applied even when another event beside it is malformed (the answer is still 400,
and a replay of the batch applies nothing twice). Errors while applying events (the database
being down) still answer 500, so the provider retries them.
"""

from __future__ import annotations

import json
import logging

from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailError,
    AnymailWebhookValidationFailure,
)
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.brevo import BrevoTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.mailjet import MailjetTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.resend import ResendTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from anymail.webhooks.sparkpost import SparkPostTrackingWebhookView
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt

from newsletter.services.tracking import tracking_event_problem

logger = logging.getLogger(__name__)

# What a parser raises on a payload it did not expect. Nothing here does I/O or touches the
# database, so none of these can be a transient failure worth the provider's retry.
MALFORMED = (
    ValueError,  # JSON (and UnicodeDecodeError), dates, int(), float()
    TypeError,  # a list or a string indexed like an object, an unhashable "Type"
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,  # a timestamp past the platform's time_t
    RecursionError,  # JSON nested a million levels deep
    AnymailError,  # Anymail's own parse errors (not its validation failure: re-raised first)
    AnymailConfigurationError,  # e.g. the provider's inbound webhook pointed at tracking
    RequestDataTooBig,  # over DATA_UPLOAD_MAX_MEMORY_SIZE
)


class Malformed(Exception):
    """The payload is not one this provider's webhook sends."""


class GuardedTrackingMixin:
    """Anymail's ``post`` with malformed payloads answered 400 instead of raising."""

    batched = False  # the provider posts a JSON list of events
    # Amazon SNS sends the credentials of a URL's basic auth only after a 401 asking for them
    # (Anymail's SES view answers so; its post is replaced here, so the answer is kept).
    challenge_missing_auth = False

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if (
            self.challenge_missing_auth
            and self.basic_auth
            and not request.META.get("HTTP_AUTHORIZATION")
        ):
            response = HttpResponse(status=401)
            response["WWW-Authenticate"] = 'Basic realm="Anymail WEBHOOK_SECRET"'
            return response
        try:
            self.run_validators(request)
            events, refused = self._events(request)
        except AnymailWebhookValidationFailure:
            raise  # bad credentials: Anymail's answer (400, logged by django.security)
        except (Malformed, *MALFORMED) as error:
            return self._malformed(f"{type(error).__name__}: {error}"[:300])
        for event in events:
            self.signal.send(sender=self.__class__, event=event, esp_name=self.esp_name)
        if refused:
            total = len(refused) + len(events)
            return self._malformed(f"{len(refused)} of {total} refused; first: {refused[0]}")
        return HttpResponse()

    def _events(self, request: HttpRequest) -> tuple[list, list[str]]:
        """The payload's events that can be applied, and why each other one cannot."""
        if self.batched:
            body = json.loads(request.body.decode("utf-8"))
            if not isinstance(body, list):
                raise Malformed(f"a {type(body).__name__}, not a list of events")
            parsed, refused = [], []
            for index, raw in enumerate(body):
                try:
                    if not isinstance(raw, dict):
                        raise Malformed(f"a {type(raw).__name__}, not an event")
                    parsed.append(self.esp_to_anymail_event(raw))
                except (Malformed, *MALFORMED) as error:
                    refused.append(f"event {index}: {type(error).__name__}: {error}"[:300])
        else:
            parsed, refused = self.parse_events(request), []
        events = []
        for index, event in enumerate(parsed):
            problem = tracking_event_problem(event)
            if problem:
                refused.append(f"event {index}: {problem}")
            else:
                events.append(event)
        return events, refused

    def _malformed(self, why: str) -> HttpResponse:
        logger.warning(
            "malformed %s tracking webhook answered 400: %s",
            self.esp_name,
            why,
            extra={"esp": self.esp_name},
        )
        return HttpResponseBadRequest("malformed payload\n", content_type="text/plain")


def _guarded(view_class: type, *, batched: bool = False, **attributes):
    guarded = type(
        f"Guarded{view_class.__name__}",
        (GuardedTrackingMixin, view_class),
        {"batched": batched, "__module__": __name__, **attributes},
    )
    return guarded.as_view()


class SnsConfirmingView(AmazonSESTrackingWebhookView):
    """Anymail's SES tracking view, confirming SNS subscriptions at SNS itself.

    Anymail confirms a SubscriptionConfirmation (basic auth proving it is meant for us) with
    boto3's SNS ConfirmSubscription in the topic's region, built from the SES client's
    parameters; ANYMAIL_API_URL, when set, is SES's endpoint (config/mail_providers.py) and
    would send that call to SES. So the SNS client gets every parameter but the endpoint
    (boto3's own AWS_ENDPOINT_URL_SNS still applies).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.client_params = {k: v for k, v in self.client_params.items() if k != "endpoint_url"}


# The providers Paperboy can send through (config/settings.py, ANYMAIL_ESP_KEYS), each with
# Anymail's tracking view for it.
TRACKING_VIEWS = {
    "postmark": _guarded(PostmarkTrackingWebhookView),
    "mailgun": _guarded(MailgunTrackingWebhookView),
    "sendgrid": _guarded(SendGridTrackingWebhookView, batched=True),
    # Anymail parses these providers' payloads whole (SparkPost's and Mailjet's batches too), so
    # one malformed event there refuses the payload (400) rather than only itself.
    "resend": _guarded(ResendTrackingWebhookView),
    "brevo": _guarded(BrevoTrackingWebhookView),
    "mailjet": _guarded(MailjetTrackingWebhookView),
    "sparkpost": _guarded(SparkPostTrackingWebhookView),
    # Needs boto3 (django-anymail[amazon-ses]), as sending through SES does.
    "amazon_ses": _guarded(SnsConfirmingView, challenge_missing_auth=True),
}


@csrf_exempt
@login_not_required
def tracking_webhook(request: HttpRequest, esp: str) -> HttpResponse:
    """The configured provider's tracking webhook; 404 for any other provider."""
    if not settings.ANYMAIL_ESP or esp != settings.ANYMAIL_ESP or esp not in TRACKING_VIEWS:
        raise Http404("no tracking webhook for this provider")
    return TRACKING_VIEWS[esp](request)
