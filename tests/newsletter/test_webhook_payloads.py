"""Hostile payloads with valid credentials: 400 and a log line, never a 500; and only the
configured provider's tracking URL exists."""

from __future__ import annotations

import json
import logging

import pytest
from anymail import urls as anymail_urls

from newsletter.models import Delivery, TrackingEvent
from newsletter.webhooks import TRACKING_VIEWS
from subscriptions.models import Suppression
from tests.newsletter.hooks import (
    MESSAGE_ID,
    auth,
    configure,
    mailgun_signed,
    post,
    sent_delivery,
)

pytestmark = pytest.mark.django_db


def postmark_bounce(**overrides) -> dict:
    # Postmark's Bounce record, as in anymail's tests/test_postmark_webhooks.py test_bounce_event.
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
        "Email": "reader@example.org",
        "From": "digest@paperboy.example.org",
        "BouncedAt": "2016-04-27T16:28:50.3963933-04:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Postmark event test",
        "Content": "...",
    }
    payload.update(overrides)
    return payload


def sendgrid_bounce(**overrides) -> dict:
    # SendGrid's bounce event, as in anymail's tests/test_sendgrid_webhooks.py test_bounce_event.
    event = {
        "ip": "167.89.17.173",
        "status": "5.1.1",
        "smtp-id": "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>",
        "sg_event_id": "lC0Rc-FuQmKbnxCWxX1jRQ",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "sg_message_id": "Lli-03HcQ5-JLybO9fXsJg.filter0077p1las1.21536.5717FC482.0",
        "tls": 1,
        "event": "bounce",
        "email": "reader@example.org",
        "timestamp": 1461095250,
        "anymail_id": MESSAGE_ID,
        "type": "bounce",
    }
    event.update(overrides)
    return event


def sendgrid_processed(**overrides) -> dict:
    # anymail's tests/test_sendgrid_webhooks.py test_processed_event.
    event = {
        "email": "reader@example.org",
        "timestamp": 1461095246,
        "anymail_id": MESSAGE_ID,
        "smtp-id": "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>",
        "sg_event_id": "ZyjAM5rnQmuI1KFInHQ3Nw",
        "sg_message_id": "wrfRRvF7Q0GgwUo2CvDmEA.filter0425p1mdw1.13037.57168B4A1D.0",
        "event": "processed",
        "category": ["daily-digest"],
    }
    event.update(overrides)
    return event


def mailgun_failed(**event_data) -> dict:
    # Mailgun's permanent failure, as in anymail's tests/test_mailgun_webhooks.py.
    data = {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": "reader@example.org",
        "timestamp": 1534110422.389832,
        "log-level": "error",
        "message": {"headers": {"to": "reader@example.org", "message-id": "20180812.1@x.org"}},
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist."},
    }
    data.update(event_data)
    return mailgun_signed({"event-data": data})


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# (provider, body): every one with valid credentials, every one malformed.
MALFORMED = {
    "truncated JSON": ("postmark", json.dumps(postmark_bounce())[:-12]),
    "not JSON at all": ("postmark", "RecordType=Bounce&Email=reader@example.org"),
    "empty body": ("postmark", ""),
    "invalid UTF-8": ("postmark", b"\xff\xfe" + json.dumps(postmark_bounce()).encode()),
    "UTF-16": ("postmark", json.dumps(postmark_bounce()).encode("utf-16")),
    "a JSON string": ("postmark", '"Bounce"'),
    "JSON null": ("postmark", "null"),
    "a list, not an object": ("postmark", [postmark_bounce()]),
    "a list of non-objects": ("postmark", [1, "two", None]),
    "recipient not an address": ("postmark", postmark_bounce(Email="not an address")),
    "recipient a list": ("postmark", postmark_bounce(Email=["reader@example.org"])),
    "recipient with a NUL": ("postmark", postmark_bounce(Email="reader\x00@example.org")),
    "NUL in a field": ("postmark", postmark_bounce(Description="mailbox\x00full")),
    "lone surrogate in a field": ("postmark", postmark_bounce(Description="\ud800")),
    "unhashable Type": ("postmark", postmark_bounce(Type=["HardBounce"])),
    "date of the wrong type": ("postmark", postmark_bounce(BouncedAt=20160427)),
    "impossible date": ("postmark", postmark_bounce(BouncedAt="2016-13-45T99:00:00Z")),
    "metadata not an object": ("postmark", postmark_bounce(Metadata="delivery=1")),
    "message id an object": ("postmark", postmark_bounce(MessageID={"id": 1})),
    "message id too long": ("postmark", postmark_bounce(MessageID="m" * 500)),
    "nested a million deep": ("postmark", _deep(1_000_000)),
    "inbound mail at the tracking URL": ("postmark", {"FromFull": {"Email": "a@example.org"}}),
    "huge body": ("postmark", json.dumps(postmark_bounce(Content="x" * 3_000_000))),
    "sendgrid: an object, not a list": ("sendgrid", sendgrid_bounce()),
    "sendgrid: a list of non-objects": ("sendgrid", [1, "two", None, [3]]),
    "sendgrid: timestamp text": ("sendgrid", [sendgrid_bounce(timestamp="yesterday")]),
    "sendgrid: timestamp past time_t": ("sendgrid", [sendgrid_bounce(timestamp=1e300)]),
    "sendgrid: event a list": ("sendgrid", [sendgrid_bounce(event=["bounce"])]),
    "sendgrid: message id a list": ("sendgrid", [sendgrid_bounce(anymail_id=[MESSAGE_ID])]),
    "mailgun: a list": ("mailgun", [mailgun_failed()]),
    "mailgun: signature block text": ("mailgun", {"signature": "x", "event-data": {}}),
    "mailgun: event-data a list": ("mailgun", mailgun_signed({"event-data": [1]})),
    "mailgun: timestamp an object": ("mailgun", mailgun_failed(timestamp={"t": 1})),
    "mailgun: recipient not an address": ("mailgun", mailgun_failed(recipient="nobody")),
}


@pytest.mark.parametrize(("esp", "body"), MALFORMED.values(), ids=MALFORMED.keys())
def test_it_answers_a_malformed_payload_400_with_a_log_line(
    client, settings, day_batch, caplog, esp, body
):
    configure(settings, esp)
    delivery = sent_delivery(day_batch)
    client.raise_request_exception = False  # a 500 must show as a 500, not as an exception

    with caplog.at_level(logging.WARNING, logger="newsletter.webhooks"):
        response = post(client, esp, body)

    assert response.status_code == 400
    [line] = [r for r in caplog.records if r.name == "newsletter.webhooks"]
    assert line.getMessage().startswith(f"malformed {line.esp} tracking webhook answered 400")
    assert line.esp.lower() == esp
    assert "reader@example.org" not in line.getMessage()  # addresses stay out of the logs
    assert not TrackingEvent.objects.exists() and not Suppression.objects.exists()
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT


def test_it_applies_a_bounce_in_a_well_formed_batch(client, settings, day_batch):
    configure(settings, "sendgrid")
    delivery = sent_delivery(day_batch)

    response = post(client, "sendgrid", [sendgrid_processed(), sendgrid_bounce()])

    assert response.status_code == 200
    assert TrackingEvent.objects.count() == 2
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.BOUNCED
    assert Suppression.objects.get().reason == "bounced"


def test_it_applies_a_bounce_beside_malformed_events_and_still_answers_400(
    client, settings, day_batch, caplog
):
    configure(settings, "sendgrid")
    delivery = sent_delivery(day_batch)
    batch = [
        sendgrid_processed(),
        42,
        sendgrid_bounce(),
        sendgrid_processed(sg_event_id="other", event=["open"]),
        sendgrid_processed(sg_event_id="third", email="not an address"),
    ]

    with caplog.at_level(logging.WARNING, logger="newsletter.webhooks"):
        response = post(client, "sendgrid", batch)

    assert response.status_code == 400
    assert "3 of 5 refused; first: event 1" in caplog.text
    assert TrackingEvent.objects.count() == 2
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.BOUNCED
    assert Suppression.objects.get().reason == "bounced"

    # The provider retries the batch: nothing is applied twice.
    assert post(client, "sendgrid", batch).status_code == 400
    assert TrackingEvent.objects.count() == 2 and Suppression.objects.count() == 1


def test_it_still_refuses_wrong_credentials_before_reading_the_payload(client, settings):
    configure(settings, "postmark")
    response = post(client, "postmark", "{not json", **{"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="})
    assert response.status_code == 400
    assert not TrackingEvent.objects.exists()


def _anymail_routes() -> list[str]:
    """Every webhook URL Anymail's urls.py defines (the regex one spelled out)."""
    routes = []
    for pattern in anymail_urls.urlpatterns:
        route = str(pattern.pattern)
        routes.append("mailgun/inbound/" if route.startswith("^mailgun/inbound") else route)
    return routes


@pytest.mark.parametrize(
    "esp",
    [
        "postmark",
        "mailgun",
        "sendgrid",
        "resend",
        "brevo",
        "mailjet",
        "sparkpost",
        "amazon_ses",
        "",
    ],
)
def test_it_serves_only_the_configured_providers_tracking_url(client, settings, esp):
    configure(settings, esp)
    client.raise_request_exception = False
    mounted = f"{esp}/tracking/"

    for route in _anymail_routes():
        response = client.post(f"/anymail/{route}", "{}", content_type="application/json", **auth())
        if route == mounted:
            assert response.status_code != 404, route
        else:
            assert response.status_code == 404, route


def test_every_provider_the_settings_accept_has_a_tracking_view(settings):
    # SMTP has no events to post: a mail server answers at send time, bounces come by mail.
    assert set(TRACKING_VIEWS) == set(settings.ANYMAIL_ESP_KEYS) - {"smtp"}


def test_smtp_has_no_tracking_webhook(client, settings):
    settings.ANYMAIL_ESP = "smtp"
    assert (
        client.post("/anymail/smtp/tracking/", "{}", content_type="application/json").status_code
        == 404
    )
