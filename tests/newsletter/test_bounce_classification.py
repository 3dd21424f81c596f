"""Which provider events suppress an address, per provider, with each provider's own payloads.

Payloads follow django-anymail's test suite (github.com/anymail/django-anymail,
tests/test_postmark_webhooks.py, test_sendgrid_webhooks.py, test_mailgun_webhooks.py: the
test named beside each), with the recipient and message id made ours. SendGrid's "blocked"
bounce is not in Anymail's suite: it is its bounce event with SendGrid's `type` "blocked" and
the 4.7.0 status a reputation block carries (SendGrid's Event Webhook reference documents
`type` as "bounce" or "blocked"); the one without a status is the shape Discourse recorded
for an unresolvable domain (discourse/discourse, webhooks_controller, 2025).
"""

from __future__ import annotations

import pytest

from newsletter.models import Delivery, TrackingEvent
from subscriptions.models import Subscriber, Suppression
from tests.newsletter.hooks import MESSAGE_ID, auth, configure, mailgun_signed, post, sent_delivery

pytestmark = pytest.mark.django_db

READER = "reader@example.org"


def postmark(**fields) -> dict:
    # test_bounce_event
    payload = {
        "RecordType": "Bounce",
        "ID": 901542550,
        "Type": "HardBounce",
        "TypeCode": 1,
        "ServerID": 23,
        "Name": "Hard bounce",
        "MessageID": MESSAGE_ID,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": READER,
        "From": "sender@example.com",
        "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Postmark event test",
        "Content": "...",
    }
    payload.update(fields)
    return payload


def sendgrid(**fields) -> list[dict]:
    # test_bounce_event
    event = {
        "ip": "167.89.17.173",
        "status": "5.1.1",
        "smtp-id": "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>",
        "sg_event_id": "lC0Rc-FuQmKbnxCWxX1jRQ",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "sg_message_id": "Lli-03HcQ5-JLybO9fXsJg.filter0077p1las1.21536.5717FC482.0",
        "tls": 1,
        "event": "bounce",
        "email": READER,
        "timestamp": 1461095250,
        "anymail_id": MESSAGE_ID,
        "type": "bounce",
    }
    event.update(fields)
    return [{k: v for k, v in event.items() if v is not None}]


def sendgrid_dropped(reason: str) -> list[dict]:
    # test_dropped_invalid_event, test_dropped_unsubscribed_event
    return [
        {
            "email": READER,
            "anymail_id": MESSAGE_ID,
            "timestamp": 1461095250,
            "smtp-id": "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>",
            "sg_event_id": "oxy9OLwMTAy5EsuZn1qhIg",
            "sg_message_id": "filter0199p1las1.4745.5717FB6F5.0",
            "reason": reason,
            "event": "dropped",
        }
    ]


def sendgrid_deferred() -> list[dict]:
    # test_deferred_event
    return [
        {
            "response": "Email was deferred due to the following reason(s): [IPs were "
            "throttled by recipient server]",
            "smtp-id": "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>",
            "sg_event_id": "b_syL5UiTvWC_Ky5L6Bs5Q",
            "sg_message_id": "u9Gvi3mzT6iC2poAb58_qQ.filter0465p1mdw1.8054.5718271B40.0",
            "event": "deferred",
            "email": READER,
            "attempt": "1",
            "timestamp": 1461200990,
            "anymail_id": MESSAGE_ID,
        }
    ]


def mailgun(**event_data) -> dict:
    # test_failed_permanent_event
    data = {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": READER,
        "timestamp": 1534110422.389832,
        "log-level": "error",
        "message": {
            "headers": {
                "to": READER,
                "message-id": "20180812214658.1.0DF563D0B3597700@example.org",
                "from": "Test Sender ",
            },
        },
        "user-variables": {},
        "delivery-status": {
            "tls": True,
            "mx-host": "aspmx.l.example.org",
            "attempt-no": 1,
            "description": "",
            "session-seconds": 2.952177047729492,
            "utf8": True,
            "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "certificate-verified": True,
        },
    }
    data.update(event_data)
    return mailgun_signed({"event-data": {k: v for k, v in data.items() if v is not None}})


TEMPORARY = {"severity": "temporary", "reason": "generic", "log-level": "warn"}

# (provider, payload, suppression reason or None, delivery status afterwards)
CASES = {
    "postmark hard bounce": ("postmark", postmark(), "bounced", "bounced"),
    "postmark soft bounce": (
        "postmark",
        postmark(Type="SoftBounce", TypeCode=4096, Name="Soft bounce", Inactive=False),
        None,
        "sent",
    ),
    "postmark DNS error": (
        "postmark",
        postmark(Type="DnsError", TypeCode=4, Name="DNS error", Inactive=False),
        None,
        "sent",
    ),
    "postmark ISP block, address kept active": (
        "postmark",
        postmark(Type="Blocked", TypeCode=100000, Name="ISP block", Inactive=False),
        None,
        "sent",
    ),
    "postmark bad address": (
        "postmark",
        postmark(Type="BadEmailAddress", TypeCode=100000, Name="Invalid email address"),
        "bounced",
        "bounced",
    ),
    "postmark hard bounce without Inactive": (
        "postmark",
        postmark(Inactive=None),
        "bounced",
        "bounced",
    ),
    "sendgrid bounce 5.1.1": ("sendgrid", sendgrid(), "bounced", "bounced"),
    "sendgrid blocked 4.7.0": (
        "sendgrid",
        sendgrid(
            type="blocked",
            status="4.7.0",
            reason="421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints",
        ),
        None,
        "sent",
    ),
    "sendgrid blocked 5.7.1": (
        "sendgrid",
        sendgrid(type="blocked", status="5.7.1", reason="550 5.7.1 Service unavailable"),
        None,
        "sent",
    ),
    "sendgrid blocked without status": (
        "sendgrid",
        sendgrid(
            type="blocked",
            status=None,
            reason="unable to get mx info: failed to get IPs from PTR record",
            bounce_classification="Unclassified",
        ),
        None,
        "sent",
    ),
    "sendgrid bounce 4.x.x": ("sendgrid", sendgrid(status="4.2.2"), None, "sent"),
    "sendgrid deferred": ("sendgrid", sendgrid_deferred(), None, "sent"),
    "sendgrid dropped invalid": ("sendgrid", sendgrid_dropped("Invalid"), "bounced", "bounced"),
    "sendgrid dropped bounced address": (
        "sendgrid",
        sendgrid_dropped("Bounced Address"),
        "bounced",
        "bounced",
    ),
    "sendgrid dropped unsubscribed address": (
        "sendgrid",
        sendgrid_dropped("Unsubscribed Address"),
        "unsubscribed",
        "bounced",
    ),
    "sendgrid dropped spam content": ("sendgrid", sendgrid_dropped("Spam Content"), None, "sent"),
    "mailgun permanent failure": ("mailgun", mailgun(), "bounced", "bounced"),
    "mailgun temporary failure": (
        "mailgun",
        mailgun(**TEMPORARY, **{"delivery-status": {"code": 498, "message": "No MX"}}),
        None,
        "sent",
    ),
    "mailgun greylisted": (
        "mailgun",
        mailgun(**{**TEMPORARY, "reason": "greylisted"}),
        None,
        "sent",
    ),
    "mailgun suppressed as unsubscribed": (
        "mailgun",
        mailgun(reason="suppress-unsubscribe"),
        "unsubscribed",
        "bounced",
    ),
    "mailgun rejected (sandbox)": (
        # test_rejected_event: Mailgun refusing our request, nothing about the address.
        "mailgun",
        mailgun(
            event="rejected",
            severity=None,
            reason=None,
            recipient=None,
            reject={"reason": "Sandbox subdomains are for test purposes only.", "description": ""},
        ),
        None,
        "sent",
    ),
}


@pytest.mark.parametrize(("esp", "payload", "reason", "status"), CASES.values(), ids=CASES.keys())
def test_it_suppresses_only_on_what_the_provider_calls_permanent(
    client, settings, day_batch, esp, payload, reason, status
):
    configure(settings, esp)
    delivery = sent_delivery(day_batch)
    if esp == "mailgun":
        # Mailgun returns the message's metadata as user-variables (Postmark and SendGrid
        # events are matched by MESSAGE_ID).
        payload = {**payload, "event-data": {**payload["event-data"]}}
        payload["event-data"]["user-variables"] = {"delivery": str(delivery.pk)}

    response = post(client, esp, payload)

    assert response.status_code == 200
    assert TrackingEvent.objects.count() == 1
    suppressions = list(Suppression.objects.values_list("reason", flat=True))
    assert suppressions == ([reason] if reason else [])
    assert Delivery.objects.get(pk=delivery.pk).status == status
    subscriber = Subscriber.objects.get(email=READER)
    expected = "unsubscribed" if reason == "unsubscribed" else "active"
    assert subscriber.status == expected


def mailgun_legacy(**fields) -> dict:
    # Mailgun's legacy form-encoded webhooks: test_dropped_bounce, test_dropped_timed_out,
    # test_invalid_mailbox (MailgunLegacyTestCase).
    data = {"recipient": READER, "timestamp": "1461261330", "token": "a3fe1fa16403" * 4, **fields}
    data["signature"] = mailgun_signed(
        {"signature": {"timestamp": data["timestamp"], "token": data["token"]}}
    )["signature"]["signature"]
    return data


LEGACY = {
    "previously bounced": (
        mailgun_legacy(
            event="dropped",
            code="605",
            reason="hardfail",
            description="Not delivering to previously bounced address",
        ),
        "bounced",
    ),
    "previously complained": (
        mailgun_legacy(
            event="dropped",
            code="607",
            reason="hardfail",
            description="Not delivering to a user who marked your messages as spam",
        ),
        "complained",
    ),
    "timed out": (
        mailgun_legacy(
            event="dropped",
            code="499",
            reason="old",
            description="Unable to connect to MX servers: [example.com]",
        ),
        None,
    ),
    "invalid mailbox": (
        mailgun_legacy(event="bounced", code="550", error="550 5.1.1 The email account ..."),
        "bounced",
    ),
}


@pytest.mark.parametrize(("form", "reason"), LEGACY.values(), ids=LEGACY.keys())
def test_it_classifies_mailguns_legacy_form_posts(client, settings, day_batch, form, reason):
    configure(settings, "mailgun")
    sent_delivery(day_batch)

    response = client.post("/anymail/mailgun/tracking/", form, **auth())

    assert response.status_code == 200
    assert list(Suppression.objects.values_list("reason", flat=True)) == (
        [reason] if reason else []
    )
