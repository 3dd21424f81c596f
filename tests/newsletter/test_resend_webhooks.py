"""Resend tracking webhooks, in Resend's own payload format, through Anymail's view."""

from __future__ import annotations

import base64
import json

import pytest

from newsletter.models import Delivery, TrackingEvent
from newsletter.services.issues import issue_create
from subscriptions.models import Suppression
from subscriptions.selectors import subscribers_sendable
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db
URL = "/anymail/resend/tracking/"
EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"


@pytest.fixture(autouse=True)
def resend_configured(settings):
    settings.ANYMAIL_ESP = "resend"
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "hook:s3cret"}


def auth(secret="hook:s3cret"):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


@pytest.fixture
def sent_delivery(day_batch):
    reader = SubscriberFactory(email="reader@example.org", topics=[day_batch.topics["agents"]])
    issue = issue_create(batch=day_batch.batch)
    delivery = Delivery.objects.get(issue=issue, subscriber=reader)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT, provider_message_id=EMAIL_ID
    )
    return delivery


def event(delivery, kind: str, **data):
    """An event as Resend posts it (its webhook docs): type, created_at, data."""
    return {
        "type": kind,
        "created_at": "2026-03-10T13:05:54.907Z",
        "data": {
            "created_at": "2026-03-10T13:05:50.000Z",
            "email_id": EMAIL_ID,
            "from": "Paperboy <digest@paperboy.example.org>",
            "to": ["reader@example.org"],
            "subject": "Tue 10 Mar: Paper a1 + 2 more",
            "headers": [
                {"name": "X-Metadata", "value": json.dumps({"delivery": str(delivery.pk)})},
                {"name": "X-Tags", "value": '["daily-digest"]'},
            ],
            **data,
        },
    }


def post(client, payload, **headers):
    return client.post(
        URL, json.dumps(payload), content_type="application/json", HTTP_SVIX_ID="msg_1", **headers
    )


def test_a_permanent_bounce_suppresses_the_reader(client, sent_delivery):
    bounce = {
        "message": "The recipient's email provider sent a hard bounce message.",
        "type": "Permanent",
        "subType": "General",
    }
    response = post(client, event(sent_delivery, "email.bounced", bounce=bounce), **auth())

    assert response.status_code == 200
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Delivery.Status.BOUNCED
    assert Suppression.objects.filter(reason="bounced").count() == 1
    assert not subscribers_sendable().filter(email="reader@example.org").exists()


def test_a_transient_bounce_does_not_suppress(client, sent_delivery):
    bounce = {
        "message": "The recipient's inbox was full.",
        "type": "Transient",
        "subType": "MailboxFull",
    }
    response = post(client, event(sent_delivery, "email.bounced", bounce=bounce), **auth())
    assert response.status_code == 200
    assert not Suppression.objects.exists()
    assert subscribers_sendable().filter(email="reader@example.org").exists()


def test_delivery_is_recorded_once(client, sent_delivery):
    for _ in range(2):  # Resend reposts with the same svix-id
        assert post(client, event(sent_delivery, "email.delivered"), **auth()).status_code == 200
    assert TrackingEvent.objects.filter(delivery=sent_delivery, event_type="delivered").count() == 1


@pytest.mark.parametrize("headers", [{}, auth("hook:wrong")])
def test_it_refuses_calls_without_the_right_credentials(client, sent_delivery, headers):
    response = post(client, event(sent_delivery, "email.delivered"), **headers)
    assert response.status_code in {400, 401, 403}
    assert not TrackingEvent.objects.exists()
