"""Calling the tracking webhook as each provider does: its URL, its authentication, its body.

The payloads in the tests are the providers' own shapes, taken from django-anymail's test suite
(github.com/anymail/django-anymail, tests/test_<esp>_webhooks.py), which records them from the
providers' documentation and real deliveries; each test names the one it follows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from newsletter.models import Delivery
from newsletter.services.issues import issue_create
from tests.factories import SubscriberFactory

SECRET = "hook:s3cret"
MAILGUN_SIGNING_KEY = "TEST_WEBHOOK_SIGNING_KEY"
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def configure(settings, esp: str) -> str:
    """Make `esp` the configured provider, with webhook credentials; returns its name."""
    settings.ANYMAIL_ESP = esp
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }
    return esp


def auth(secret: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def post(client, esp: str, body, *, content_type: str = "application/json", **headers):
    """POST to /anymail/<esp>/tracking/ with valid credentials; `body` as bytes/str or JSON."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return client.post(
        f"/anymail/{esp}/tracking/", body, content_type=content_type, **{**auth(), **headers}
    )


def mailgun_signed(payload: dict, key: str = MAILGUN_SIGNING_KEY) -> dict:
    """Add Mailgun's signature block (as anymail's mailgun_sign_payload does)."""
    signature = payload.setdefault("signature", {})
    token = signature.setdefault("token", "651869375b9df3c98fc15c4889b102119add1235c38fc92824")
    timestamp = signature.setdefault("timestamp", "1534108637")
    signature["signature"] = hmac.new(
        key.encode("ascii"), f"{timestamp}{token}".encode("ascii"), hashlib.sha256
    ).hexdigest()
    return payload


def sent_delivery(day_batch, email: str = "reader@example.org") -> Delivery:
    """A subscriber's delivery of the day's issue, sent with provider message id MESSAGE_ID."""
    reader = SubscriberFactory(email=email, topics=[day_batch.topics["agents"]])
    issue = issue_create(batch=day_batch.batch)
    delivery = Delivery.objects.get(issue=issue, subscriber=reader)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT, provider_message_id=MESSAGE_ID
    )
    return delivery
