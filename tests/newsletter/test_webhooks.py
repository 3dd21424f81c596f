"""Postmark tracking webhooks, in Postmark's own payload format, through Anymail."""

from __future__ import annotations

import base64
import json

import pytest

from newsletter.models import Delivery, TrackingEvent
from newsletter.services.issues import issue_create
from subscriptions.models import Subscriber, Suppression
from subscriptions.selectors import subscribers_sendable
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db
URL = "/anymail/postmark/tracking/"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.ANYMAIL_ESP = "postmark"
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "hook:s3cret"}


def auth(secret="hook:s3cret"):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


@pytest.fixture
def sent_delivery(day_batch):
    reader = SubscriberFactory(email="reader@example.org", topics=[day_batch.topics["agents"]])
    issue = issue_create(batch=day_batch.batch)
    delivery = Delivery.objects.get(issue=issue, subscriber=reader)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT, provider_message_id="883953f4-6105-42a2-a16a-77a8eac79483"
    )
    return delivery


def bounce(delivery, **overrides):
    payload = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "daily-digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"issue": str(delivery.issue_id), "delivery": str(delivery.pk)},
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "reader@example.org",
        "From": "digest@paperboy.example.org",
        "BouncedAt": "2026-03-10T13:05:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Tue 10 Mar: Paper a1 + 2 more",
        "Content": "",
    }
    payload.update(overrides)
    return payload


def post(client, payload, **headers):
    return client.post(URL, json.dumps(payload), content_type="application/json", **headers)


def test_it_suppresses_the_subscriber_on_a_hard_bounce(client, sent_delivery):
    response = post(client, bounce(sent_delivery), **auth())

    assert response.status_code == 200
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Delivery.Status.BOUNCED
    assert sent_delivery.bounced_at is not None
    assert Suppression.objects.filter(reason="bounced").count() == 1
    assert not subscribers_sendable().filter(email="reader@example.org").exists()


def test_it_suppresses_the_subscriber_on_a_spam_complaint(client, sent_delivery):
    complaint = bounce(
        sent_delivery,
        RecordType="SpamComplaint",
        Type="SpamComplaint",
        TypeCode=512,
        Name="Spam complaint",
        ID=42,
        Description="The subscriber explicitly marked this message as spam.",
    )
    assert post(client, complaint, **auth()).status_code == 200

    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Delivery.Status.COMPLAINED
    assert Suppression.objects.filter(reason="complained").exists()


def test_it_applies_a_replayed_event_once(client, sent_delivery):
    post(client, bounce(sent_delivery), **auth())
    first = Delivery.objects.get(pk=sent_delivery.pk).bounced_at

    assert post(client, bounce(sent_delivery, BouncedAt="2026-03-11T00:00:00Z"), **auth())
    assert TrackingEvent.objects.count() == 1
    assert Delivery.objects.get(pk=sent_delivery.pk).bounced_at == first
    assert Suppression.objects.count() == 1


@pytest.mark.parametrize(
    "kind",
    [
        {"Type": "SoftBounce", "TypeCode": 4096, "Name": "Soft bounce", "Inactive": False},
        {"Type": "Transient", "TypeCode": 2, "Name": "Message delayed", "Inactive": False},
    ],
)
def test_it_does_not_suppress_on_a_soft_bounce(client, sent_delivery, kind):
    soft = bounce(sent_delivery, ID=7, CanActivate=False, **kind)
    assert post(client, soft, **auth()).status_code == 200
    assert Delivery.objects.get(pk=sent_delivery.pk).status == Delivery.Status.SENT
    assert not Suppression.objects.exists()
    assert Subscriber.objects.get(email="reader@example.org").status == Subscriber.Status.ACTIVE


def test_it_records_delivery_and_opens(client, sent_delivery):
    delivered = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": "reader@example.org",
        "Tag": "daily-digest",
        "DeliveredAt": "2026-03-10T13:05:54Z",
        "Details": "Test delivery webhook details",
        "Metadata": {"delivery": str(sent_delivery.pk)},
    }
    opened = {
        "RecordType": "Open",
        "MessageStream": "outbound",
        "FirstOpen": True,
        "Client": {"Name": "Gmail", "Company": "Google", "Family": "Gmail"},
        "OS": {"Name": "unknown", "Company": "unknown", "Family": "unknown"},
        "Platform": "WebMail",
        "UserAgent": "Mozilla/5.0",
        "ReadSeconds": 5,
        "Geo": {},
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"delivery": str(sent_delivery.pk)},
        "ReceivedAt": "2026-03-10T13:10:00Z",
        "Tag": "daily-digest",
        "Recipient": "reader@example.org",
    }
    assert post(client, delivered, **auth()).status_code == 200
    assert post(client, opened, **auth()).status_code == 200
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Delivery.Status.SENT
    assert sent_delivery.delivered_at and sent_delivery.opened_at
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("headers", [{}, auth("hook:wrong"), auth("someone:s3cret")])
def test_it_rejects_calls_without_the_right_credentials(client, sent_delivery, headers):
    response = post(client, bounce(sent_delivery), **headers)
    assert response.status_code in {400, 401, 403}
    assert not TrackingEvent.objects.exists() and not Suppression.objects.exists()


def delivered_event(delivery) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "5d2b8f1e-0c4a-4b7e-9a51-1f0e6c2a9d33",
        "Recipient": "reader@example.org",
        "Tag": "daily-digest",
        "DeliveredAt": "2026-03-10T13:05:54Z",
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": {"delivery": str(delivery.pk)},
    }


def test_a_delivery_event_settles_an_unknown_row_as_sent(client, sent_delivery):
    # A call whose answer never came (a worker died waiting): possibly sent, not re-sent. The
    # provider's own delivery event then says it was taken.
    Delivery.objects.filter(pk=sent_delivery.pk).update(
        status=Delivery.Status.UNKNOWN, provider_message_id="", last_error="no answer"
    )

    assert post(client, delivered_event(sent_delivery), **auth()).status_code == 200

    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Delivery.Status.SENT
    assert sent_delivery.provider_message_id == "5d2b8f1e-0c4a-4b7e-9a51-1f0e6c2a9d33"
    assert sent_delivery.last_error == "" and sent_delivery.delivered_at is not None


def test_a_delivery_event_leaves_a_settled_row_as_it_is(client, sent_delivery):
    Delivery.objects.filter(pk=sent_delivery.pk).update(
        status=Delivery.Status.BOUNCED, last_error="hard bounce"
    )

    assert post(client, delivered_event(sent_delivery), **auth()).status_code == 200

    sent_delivery.refresh_from_db()
    assert (sent_delivery.status, sent_delivery.last_error) == (
        Delivery.Status.BOUNCED,
        "hard bounce",
    )
    assert sent_delivery.provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
