"""An unsubscribe (or complaint) at the provider ends the subscription; the person can come back
through a new double opt-in; the provider's reactivation lifts only what it put there.

Payloads follow django-anymail's tests (github.com/anymail/django-anymail):
tests/test_postmark_webhooks.py test_unsubscribe / test_resubscribe / test_spam_event,
tests/test_mailgun_webhooks.py test_unsubscribed_event; SendGrid's unsubscribe event has the
fields of its Event Webhook reference (Anymail maps "unsubscribe" to "unsubscribed").
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from subscriptions.consent import CONSENT_VERSION
from subscriptions.links import preferences_url
from subscriptions.models import Subscriber, Suppression
from subscriptions.selectors import subscribers_sendable
from subscriptions.services import subscriber_suppress
from tests.newsletter.hooks import MESSAGE_ID, configure, mailgun_signed, post, sent_delivery
from tests.subscriptions.helpers import link_in, path_of

pytestmark = pytest.mark.django_db

READER = "reader@example.org"


def subscription_change(*, suppress: bool, reason: str | None = "ManualSuppression") -> dict:
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": MESSAGE_ID,
        "ServerID": 23,
        "MessageStream": "outbound",
        "ChangedAt": "2026-03-10T17:17:32Z" if suppress else "2026-03-12T09:00:00Z",
        "Recipient": READER,
        "Origin": "Recipient" if suppress else "Customer",
        "SuppressSending": suppress,
        "SuppressionReason": reason if suppress else None,
        "Tag": "daily-digest",
        "Metadata": {},
    }


POSTMARK_COMPLAINT = {
    "RecordType": "SpamComplaint",
    "ID": 901542550,
    "Type": "SpamComplaint",
    "TypeCode": 512,
    "Name": "Spam complaint",
    "Tag": "daily-digest",
    "MessageID": MESSAGE_ID,
    "ServerID": 1234,
    "Description": "",
    "Details": "Test spam complaint details",
    "Email": READER,
    "From": "sender@example.com",
    "BouncedAt": "2026-03-10T16:28:50.3963933-04:00",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": False,
    "Subject": "Postmark event test",
}
SENDGRID_UNSUBSCRIBE = [
    {
        "email": READER,
        "timestamp": 1773162000,
        "event": "unsubscribe",
        "sg_event_id": "dW5zdWJzY3JpYmUtMTIz",
        "sg_message_id": "wrfRRvF7Q0GgwUo2CvDmEA.filter0425p1mdw1.13037.57168B4A1D.0",
        "anymail_id": MESSAGE_ID,
    }
]
MAILGUN_UNSUBSCRIBED = {
    "event-data": {
        "event": "unsubscribed",
        "id": "W3X4JOhFT-OZidZGKKr9iA",
        "timestamp": 1377213791.421473,
        "log-level": "info",
        "recipient": READER,
        "message": {"headers": {"message-id": "20130822232216.13966.79700@samples.mailgun.org"}},
    }
}

STOPS = {
    "postmark unsubscribe": ("postmark", subscription_change(suppress=True), "unsubscribed"),
    "postmark spam complaint": ("postmark", POSTMARK_COMPLAINT, "complained"),
    "sendgrid unsubscribe": ("sendgrid", SENDGRID_UNSUBSCRIBE, "unsubscribed"),
    "mailgun unsubscribed": ("mailgun", mailgun_signed(MAILGUN_UNSUBSCRIBED), "unsubscribed"),
}


@pytest.mark.parametrize(("esp", "payload", "reason"), STOPS.values(), ids=STOPS.keys())
def test_a_stop_at_the_provider_ends_the_subscription_too(
    client, settings, day_batch, esp, payload, reason
):
    configure(settings, esp)
    subscriber = sent_delivery(day_batch).subscriber

    assert post(client, esp, payload).status_code == 200

    assert Suppression.objects.get().reason == reason
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert subscriber.unsubscribed_at is not None
    page = client.get(path_of(preferences_url(subscriber)))
    assert '<span class="status" id="status">Unsubscribed</span>' in page.content.decode()


def _signup(client, django_capture_on_commit_callbacks, topic):
    data = {
        "email": READER,
        "topics": [topic.pk],
        "consent_version": CONSENT_VERSION,
        "website": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        return client.post("/", data)


def test_a_person_unsubscribed_at_the_provider_comes_back_through_double_opt_in(
    client, settings, day_batch, django_capture_on_commit_callbacks
):
    configure(settings, "postmark")
    subscriber = sent_delivery(day_batch).subscriber
    post(client, "postmark", subscription_change(suppress=True))
    mail.outbox = []

    assert _signup(client, django_capture_on_commit_callbacks, day_batch.topics["robotics"])
    [message] = mail.outbox
    assert message.subject == "Confirm your Paperboy subscription"
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    assert not subscribers_sendable().exists()

    client.post(path_of(link_in(message)))

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()  # lifted by the new confirmation
    assert list(subscribers_sendable()) == [subscriber]


def test_an_active_row_left_suppressed_as_unsubscribed_is_sent_through_confirmation(
    client, settings, day_batch, django_capture_on_commit_callbacks
):
    """Rows written before unsubscribes ended the subscription: active, yet suppressed."""
    subscriber = sent_delivery(day_batch).subscriber
    Suppression.objects.create(
        email_hash=subscriber.email_hash, reason="unsubscribed", created_at=timezone.now()
    )

    _signup(client, django_capture_on_commit_callbacks, day_batch.topics["agents"])

    [message] = mail.outbox
    assert message.subject == "Confirm your Paperboy subscription"
    client.post(path_of(link_in(message)))
    assert list(subscribers_sendable()) == [Subscriber.objects.get(pk=subscriber.pk)]


def test_the_providers_reactivation_lifts_a_bounce(client, settings, day_batch):
    configure(settings, "postmark")
    subscriber = sent_delivery(day_batch).subscriber
    subscriber_suppress(email=READER, reason="bounced")
    assert not subscribers_sendable().exists()

    response = post(client, "postmark", subscription_change(suppress=False))

    assert response.status_code == 200
    assert not Suppression.objects.exists()
    assert list(subscribers_sendable()) == [subscriber]


@pytest.mark.parametrize("stop", ["unsubscribed", "complained"])
def test_the_providers_reactivation_never_resubscribes_a_person(client, settings, day_batch, stop):
    configure(settings, "postmark")
    subscriber = sent_delivery(day_batch).subscriber
    subscriber_suppress(email=READER, reason=stop)

    assert post(client, "postmark", subscription_change(suppress=False)).status_code == 200

    assert Suppression.objects.get().reason == stop
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert not subscribers_sendable().exists()
