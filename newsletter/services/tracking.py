"""Tracking events: Anymail's normalized tracking signal -> delivery status and suppression.

Each event is applied once (replays from the provider are recognised by their key). What an
event means for the address is decided per provider (`suppression_for`): Anymail's normalized
type says what happened, and each provider's own fields say whether it is for good (a full
mailbox or a temporary block must not suppress anyone). A permanent bounce, a complaint or an
unsubscribe puts the address on the suppression list, and the last two end the subscription
too; the provider taking an address again lifts a bounce suppression.

Events are checked (`tracking_event_problem`) before anything is applied: a payload the
provider's view parsed but whose values Paperboy cannot store or act on is refused, not half
applied (newsletter/webhooks.py answers 400 for it).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from anymail.signals import tracking
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from newsletter.models import Delivery, TrackingEvent
from subscriptions.addresses import email_normalize
from subscriptions.models import Suppression
from subscriptions.services import subscriber_reactivate_at_provider, subscriber_suppress

logger = logging.getLogger(__name__)

Reason = Suppression.Reason

TIMESTAMP_FIELD_FOR_EVENT = {
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "bounced": "bounced_at",
    "rejected": "bounced_at",
    "complained": "complained_at",
}
# Anymail event types that say the provider took the message: an `unknown` row (a call whose
# answer never came, SparkPost's mixed totals) is then known to be sent.
TAKEN_EVENTS = {"queued", "delivered", "deferred", "opened", "clicked"}
# Anymail event types that say the provider takes mail for the address again.
REACTIVATING_EVENTS = {"subscribed"}
MESSAGE_ID_MAX = TrackingEvent._meta.get_field("provider_message_id").max_length
CLICK_URL_MAX = TrackingEvent._meta.get_field("click_url").max_length
REJECT_REASON_MAX = TrackingEvent._meta.get_field("reject_reason").max_length


# --- What an event means, per provider ------------------------------------------------------------


def _raw(event) -> dict:
    """The provider's own payload of the event (a dict; Mailgun's legacy form posts are a
    QueryDict, whose .get gives the last value)."""
    return event.esp_event if isinstance(event.esp_event, dict) else {}


def _postmark(event) -> str | None:
    """Postmark says itself whether it stopped sending to the address: `Inactive` on bounce
    records (a HardBounce deactivates, a SoftBounce or a DnsError does not), `SuppressSending`
    on SubscriptionChange records. Without those flags, the bounce Type decides."""
    raw = _raw(event)
    if raw.get("RecordType") == "SubscriptionChange":
        permanent = raw.get("SuppressSending") is True
    elif isinstance(raw.get("Inactive"), bool):
        permanent = raw["Inactive"]
    else:
        permanent = raw.get("Type") in {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
    return Reason.BOUNCED if permanent else None


# SendGrid drops a message without trying when the address is on one of its lists; these are
# the lists that are about the address (a dropped "Spam Content" or "Expired" is not).
SENDGRID_DROPPED = {
    "bounced address": Reason.BOUNCED,
    "invalid": Reason.BOUNCED,
    "unsubscribed address": Reason.UNSUBSCRIBED,
    "spam reporting address": Reason.COMPLAINED,
}


def _sendgrid(event) -> str | None:
    """A SendGrid "bounce" is permanent when its `type` is "bounce" (the server refused the
    address) and its `status` a 5.x.x; a "blocked" one (the server refused this message for now,
    often 4.7.0 for reputation) is not, whatever its status: SendGrid keeps sending there too."""
    raw = _raw(event)
    if raw.get("event") == "dropped":
        return SENDGRID_DROPPED.get(str(raw.get("reason") or raw.get("type") or "").lower())
    if raw.get("type") == "blocked":
        return None
    status = str(raw.get("status") or "")
    if status[:1] in {"4", "5"}:
        return Reason.BOUNCED if status.startswith("5") else None
    return Reason.BOUNCED if raw.get("type", "bounce") == "bounce" else None


# Mailgun's permanent failures for addresses already on one of its suppression lists.
MAILGUN_SUPPRESSED = {
    "suppress-bounce": Reason.BOUNCED,
    "suppress-unsubscribe": Reason.UNSUBSCRIBED,
    "suppress-complaint": Reason.COMPLAINED,
}


def _mailgun(event) -> str | None:
    """Mailgun's "failed" event carries `severity`: "permanent" (Mailgun gave up and lists the
    address) or "temporary" (it retries; Anymail reports those as "deferred"). Its "rejected"
    event is Mailgun refusing our request (a sandbox domain, an account limit), not anything
    about the address. Legacy webhooks post forms: "bounced" is a hard bounce, "dropped" is
    permanent only as "hardfail" (code 605 a previous bounce, 607 a previous complaint)."""
    raw = _raw(event)
    data = raw.get("event-data")
    if isinstance(data, dict):
        if data.get("event") != "failed" or data.get("severity") != "permanent":
            return None
        return MAILGUN_SUPPRESSED.get(str(data.get("reason")), Reason.BOUNCED)
    if raw.get("event") == "bounced":
        return Reason.BOUNCED
    if raw.get("event") == "dropped" and raw.get("reason") == "hardfail":
        return Reason.COMPLAINED if event.reject_reason == "spam" else Reason.BOUNCED
    return None


def _resend(event) -> str | None:
    # Resend's bounce carries Amazon SES's classification: "Transient" (a full mailbox, a
    # deferral) says nothing lasting; "Permanent" and "Undetermined" do, as does a send it
    # suppressed itself (no bounce object: it has one from an earlier bounce or complaint).
    data = _raw(event).get("data")
    bounce = data.get("bounce") if isinstance(data, dict) else None
    if isinstance(bounce, dict) and bounce.get("type") == "Transient":
        return None
    return Reason.BOUNCED


def _brevo(event) -> str | None:
    # Anymail reports Brevo's "soft_bounce" (a full mailbox, a domain without MX for now) as a
    # bounce too; only "hard_bounce", "invalid_email" and "blocked" (Brevo will not send to
    # the address: it is on its blocklist after an earlier bounce or complaint) last.
    kind = _raw(event).get("event")
    return Reason.BOUNCED if kind in {"hard_bounce", "invalid_email", "blocked"} else None


# Mailjet's "blocked" errors that are about the address (it never tried to deliver); the
# others are about the message or the account ("content blocked", "duplicate in campaign").
MAILJET_BLOCKED = {
    "user unknown": Reason.BOUNCED,
    "mailbox inactive": Reason.BOUNCED,
    "invalid domain": Reason.BOUNCED,
    "no mail host": Reason.BOUNCED,
    "typofix": Reason.BOUNCED,
    "preblocked": Reason.BOUNCED,  # an earlier hard bounce or spam report
    "blacklisted": Reason.BOUNCED,  # on the account's exclusion list
    "spam reporter": Reason.COMPLAINED,
}


def _mailjet(event) -> str | None:
    """Mailjet's "bounce" says itself whether it is for good (`hard_bounce`); its "blocked"
    event is permanent only for errors about the address."""
    raw = _raw(event)
    if raw.get("event") == "blocked":
        return MAILJET_BLOCKED.get(str(raw.get("error") or "").lower())
    return Reason.BOUNCED if raw.get("hard_bounce") is True else None


# SparkPost's bounce classes that it treats as hard (and suppresses): 10 invalid recipient,
# 30 no RCPT; 25 is an address its policy refuses (on the suppression list). 90, an
# unsubscribe, Anymail already reports as one. The rest (mailbox full, DNS, blocks, spam
# blocks, auto-replies) are soft or about the message.
SPARKPOST_HARD_CLASSES = {"10", "25", "30"}


def _sparkpost(event) -> str | None:
    raw = _raw(event).get("msys")
    inner = next(iter(raw.values()), {}) if isinstance(raw, dict) and raw else {}
    if not isinstance(inner, dict):
        return None
    if inner.get("type") == "generation_rejection":
        return Reason.BOUNCED  # SparkPost would not even build it: a suppressed address
    return Reason.BOUNCED if str(inner.get("bounce_class")) in SPARKPOST_HARD_CLASSES else None


def _amazon_ses(event) -> str | None:
    # SES classifies each bounce: "Transient" (full mailbox, too large, a temporary failure)
    # says nothing lasting; "Permanent" and "Undetermined" do (SES's own guidance: remove the
    # address). Its "Reject" is SES refusing the message (a virus), not the address.
    raw = _raw(event)
    if event.event_type == "rejected":
        return None
    bounce = raw.get("bounce")
    if isinstance(bounce, dict) and bounce.get("bounceType") == "Transient":
        return None
    return Reason.BOUNCED


def _normalized_only(event) -> str | None:
    # A provider without a rule of its own: Anymail's "bounced" and "rejected" as permanent.
    return Reason.BOUNCED


PERMANENCE: dict[str, Callable[[object], str | None]] = {
    "postmark": _postmark,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "resend": _resend,
    "brevo": _brevo,
    "mailjet": _mailjet,
    "sparkpost": _sparkpost,
    "amazon ses": _amazon_ses,  # Anymail's esp_name
    "amazon_ses": _amazon_ses,
}


def suppression_for(event, *, esp: str) -> str | None:
    """The suppression reason an event calls for, or None (it says nothing lasting about the
    address). `esp` is Anymail's name of the provider, any case."""
    if event.event_type == "complained":
        return Reason.COMPLAINED
    if event.event_type == "unsubscribed":
        return Reason.UNSUBSCRIBED
    if event.event_type in {"bounced", "rejected"}:
        return PERMANENCE.get(esp.lower(), _normalized_only)(event)
    return None


# --- What a click was on -------------------------------------------------------------------------

# Our personal links: unsubscribe, preferences, feedback and confirmation, each carrying the
# reader's signed token as the path segment after its prefix (subscriptions/urls.py).
PERSONAL_LINK = re.compile(r"(?<=/)(u|p|f|confirm)/[^/?#]+")
TOKEN_MARK = "…"  # noqa: S105 (what stands in for a token, not a secret)


def click_url_without_tokens(url: str) -> str:
    """The clicked link as it may be kept: a personal link's token replaced by "…", and its
    query and fragment dropped, so "/p/<token>/" of every reader counts as one link "/p/…/"
    and nothing stored lets anyone act as a reader. Other links are kept as they are."""
    parts = urlsplit(url)
    path, replaced = PERSONAL_LINK.subn(lambda m: f"{m.group(1)}/{TOKEN_MARK}", parts.path)
    if replaced:
        parts = parts._replace(path=path, query="", fragment="")
    return urlunsplit(parts)[:CLICK_URL_MAX]


# --- Checking an event before applying it ---------------------------------------------------------


def _text_problem(name: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{name} is a {type(value).__name__}, not text"
    if "\x00" in value:
        return f"{name} contains a NUL character"  # PostgreSQL text cannot hold U+0000
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name} is not valid Unicode (a lone surrogate)"
    return None


def tracking_event_problem(event) -> str | None:
    """Why this normalized event cannot be applied (wrong types, a recipient that is not an
    address, text PostgreSQL refuses), or None. The message names fields, never values."""
    for name in ("event_type", "event_id", "message_id", "description", "reject_reason"):
        problem = _text_problem(name, getattr(event, name, None))
        if problem:
            return problem
    if event.message_id and len(event.message_id) > MESSAGE_ID_MAX:
        return "message_id is longer than any provider's"
    if event.event_type == "clicked":
        problem = _text_problem("click_url", getattr(event, "click_url", None))
        if problem:
            return problem
    if event.timestamp is not None and not isinstance(event.timestamp, datetime):
        return "timestamp is not a date and time"
    if event.metadata is not None and not isinstance(event.metadata, dict):
        return "metadata is not an object"
    if event.recipient not in (None, ""):
        problem = _text_problem("recipient", event.recipient)
        if problem:
            return problem
        try:
            email_normalize(event.recipient)
        except ValidationError:
            return "recipient is not an email address Paperboy could have sent to"
    return None


# --- Applying an event ---------------------------------------------------------------------------


def _event_key(event) -> str:
    """The provider's event id, or (for events without one, such as Postmark's deliveries and
    opens) a digest of what identifies the event: never the address itself."""
    if event.event_id:
        return f"{event.event_type}:{event.event_id}"[:200]
    stamp = event.timestamp.isoformat() if event.timestamp else ""
    identity = f"{event.message_id}|{event.recipient}|{stamp}".encode()
    return f"{event.event_type}:{hashlib.sha256(identity).hexdigest()}"


def _event_delivery(event) -> Delivery | None:
    """The Delivery an event is about: by our metadata, else by the provider's message id."""
    delivery_id = str((event.metadata or {}).get("delivery", ""))
    if re.fullmatch(r"[0-9]{1,18}", delivery_id):  # ours are; a longer one overflows bigint
        delivery = Delivery.objects.filter(pk=int(delivery_id)).first()
        if delivery is not None:
            return delivery
    if event.message_id:
        return Delivery.objects.filter(provider_message_id=event.message_id).first()
    return None


def _click_url(event) -> str:
    if event.event_type != "clicked" or not event.click_url:
        return ""
    try:
        return click_url_without_tokens(event.click_url)
    except ValueError:  # not a URL urlsplit can read (an unclosed IPv6 bracket): keep no link
        return ""


def _delivery_update(delivery: Delivery, event, *, suppressed: bool) -> None:
    """Stamp the event's time on the delivery once, and its final status where it has one."""
    stamp_field = TIMESTAMP_FIELD_FOR_EVENT.get(event.event_type)
    changes = {}
    if stamp_field and getattr(delivery, stamp_field) is None:
        changes[stamp_field] = event.timestamp or timezone.now()
    if event.event_type == "complained":
        changes["status"] = Delivery.Status.COMPLAINED
    elif event.event_type in {"bounced", "rejected"} and suppressed:
        # Not delivered, and not going to be: whatever list the provider put it on.
        changes["status"] = Delivery.Status.BOUNCED
    if changes:
        Delivery.objects.filter(pk=delivery.pk).update(**changes)
    if event.event_type in TAKEN_EVENTS:
        # Settled only from unknown (the condition in the UPDATE: a row the sweeper or another
        # event settled meanwhile keeps what it got); the id is the provider's own.
        settled = {"status": Delivery.Status.SENT, "last_error": ""}
        if event.message_id and not delivery.provider_message_id:
            settled["provider_message_id"] = event.message_id[:MESSAGE_ID_MAX]
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.UNKNOWN).update(**settled)


def tracking_event_record(*, event, esp: str = "") -> bool:
    """Apply one Anymail tracking event once. Returns False for a replayed event.

    The event must have passed `tracking_event_problem`. `esp` is Anymail's name of the
    provider it came from (the signal's esp_name); it decides what a bounce means.
    """
    delivery = _event_delivery(event)
    reason = suppression_for(event, esp=esp)
    with transaction.atomic():
        _, created = TrackingEvent.objects.get_or_create(
            event_key=_event_key(event),
            defaults={
                "event_type": event.event_type,
                "provider_message_id": event.message_id or "",
                "delivery": delivery,
                "occurred_at": event.timestamp,
                "description": (event.description or "")[:2000],
                "reject_reason": (event.reject_reason or "")[:REJECT_REASON_MAX],
                "click_url": _click_url(event),
            },
        )
        if not created:
            return False
        if delivery is not None:
            _delivery_update(delivery, event, suppressed=reason is not None)
        if event.recipient and reason is not None:
            subscriber_suppress(email=event.recipient, reason=reason)
        elif (
            event.recipient
            and event.event_type in REACTIVATING_EVENTS
            and subscriber_reactivate_at_provider(email=event.recipient)
        ):
            logger.info("the provider reactivated an address; its bounce suppression lifted")
    return True


# Connected when the app is ready (NewsletterConfig.ready imports this module).
@receiver(tracking, dispatch_uid="newsletter.tracking")
def handle_tracking_event(sender, event, esp_name, **kwargs) -> None:
    tracking_event_record(event=event, esp=esp_name or "")
