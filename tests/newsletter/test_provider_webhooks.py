"""Every provider's tracking webhook, with its own payloads: a bounce suppresses (a soft one does
not), a complaint ends the subscription, wrong credentials are refused, a malformed payload is
answered 400; and Amazon SES's SNS subscription is confirmed at SNS as Anymail does it.

The payloads are shaped as each provider documents them, field for field as django-anymail's
test suite records them (github.com/anymail/django-anymail, tests/test_<esp>_webhooks.py; the
test followed is named beside each), with our recipient and message ids:
- Brevo: its transactional webhook (developers.brevo.com/docs/transactional-webhooks), one
  JSON object per event: test_hard_bounce, test_soft_bounce_event, test_spam, test_blocked.
- Mailjet: its event API, a JSON list when events are grouped: test_bounce_event,
  test_spam_event, test_blocked_event.
- SparkPost: a JSON list of ``{"msys": {<class>: {...}}}``: test_bounce_event (bounce_class
  10, invalid recipient), test_delay_event's class 21 on a bounce, a spam_complaint message
  event with the fields SparkPost's event reference lists.
- Amazon SES: SNS notifications (``Type: Notification``, the SES event JSON in ``Message``)
  with the ``x-amz-sns-message-type``/``-id`` headers, posted as text/plain as SNS does:
  test_bounce_event (AWS's notification-examples), test_complaint_event, test_delivery_event,
  and AmazonSESSubscriptionManagementTests' SubscriptionConfirmation.
Postmark, Mailgun, SendGrid and Resend bounces have their own files (test_webhooks.py,
test_bounce_classification.py, test_resend_webhooks.py); here they are checked for the
complaint and the credentials like the others.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from newsletter.models import Delivery, TrackingEvent
from subscriptions.models import Subscriber, Suppression
from subscriptions.selectors import subscribers_sendable
from tests.newsletter.hooks import MESSAGE_ID, auth, configure, mailgun_signed, post, sent_delivery

pytestmark = pytest.mark.django_db

READER = "reader@example.org"
needs_boto3 = pytest.mark.skipif(
    importlib.util.find_spec("boto3") is None,
    reason="Anymail's Amazon SES webhook needs boto3: django-anymail[amazon-ses] is not locked",
)

# The id each provider gives the sent message, as the backend recorded it on the delivery.
BREVO_ID = "<201803011158.9876543210@smtp-relay.mailin.fr>"
MAILJET_ID = "12345678901234567"
SPARKPOST_ID = "84345317650824116"  # transmission_id: what Anymail's SparkPost backend keeps
SES_ID = "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
# Mailgun's send answer and Anymail's events give its id in angle brackets; events carry the
# Message-ID header without them.
MAILGUN_ID = "<20260310130550.1.5F2A1C@paperboy.example.org>"


# --- Brevo --------------------------------------------------------------------------------------


def brevo(kind: str, **fields) -> dict:
    event = {
        "event": kind,
        "email": READER,
        "id": 9999999,
        "date": "2026-03-10 13:05:54",
        "ts": 1773147954,
        "ts_event": 1773147954,
        "ts_epoch": 1773147954000,
        "message-id": BREVO_ID,
        "subject": "Tue 10 Mar: Paper a1 + 2 more",
        "tag": "daily-digest",
    }
    event.update(fields)
    return event


# --- Mailjet ------------------------------------------------------------------------------------


def mailjet(kind: str, **fields) -> list[dict]:
    event = {
        "event": kind,
        "time": 1773147954,
        "MessageID": int(MAILJET_ID),
        "email": READER,
        "mj_campaign_id": 1234567890,
        "mj_contact_id": 9876543210,
        "customcampaign": "",
    }
    event.update(fields)
    return [event]


# --- SparkPost ----------------------------------------------------------------------------------


def sparkpost(kind: str, **fields) -> list[dict]:
    event = {
        "type": kind,
        "customer_id": "00000",
        "event_id": "84345317653491230",
        "message_id": "0004e3724f57753a3561",
        "raw_rcpt_to": READER,
        "rcpt_to": READER,
        "rcpt_meta": {},
        "timestamp": "1773147954",
        "transmission_id": SPARKPOST_ID,
    }
    event.update(fields)
    return [{"msys": {"message_event": event}, "cust": {"id": "00000"}}]


SPARKPOST_HARD = {
    "bounce_class": "10",
    "error_code": "550",
    "raw_reason": f"550 5.1.1 <{READER}>: Recipient address rejected: User unknown",
    "reason": "550 5.1.1 ...@... Recipient address rejected: ...",
}


# --- Amazon SES (through SNS) -------------------------------------------------------------------


def ses(kind: str, detail: dict, *, message_id: str = "19ba9823-d7f2-53c1-860e-cb10e0d13dfc"):
    event = {
        "notificationType": kind,
        kind.lower(): detail,
        "mail": {
            "timestamp": "2026-03-10T13:05:50.237Z",
            "source": "digest@paperboy.example.org",
            "sourceArn": "arn:aws:ses:eu-west-1:888888888888:identity/paperboy.example.org",
            "sendingAccountId": "888888888888",
            "messageId": SES_ID,
            "destination": [READER],
            "headersTruncated": False,
            "headers": [{"name": "X-Tag", "value": "daily-digest"}],
        },
    }
    return sns("Notification", message_id, Message=json.dumps(event) + "\n")


def sns(kind: str, message_id: str, **fields) -> dict:
    return {
        "Type": kind,
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-1:888888888888:SES_Events",
        "Subject": "Amazon SES Email Event Notification",
        "Timestamp": "2026-03-10T13:05:59.675Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE-SIGNATURE==",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&Sub=arn...",
        **fields,
    }


def ses_bounce(bounce_type: str, sub_type: str = "General") -> dict:
    return ses(
        "Bounce",
        {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": READER,
                    "status": "5.1.1" if bounce_type == "Permanent" else "4.2.2",
                    "action": "failed",
                    "diagnosticCode": f"smtp; 550 5.1.1 <{READER}>... User unknown",
                }
            ],
            "timestamp": "2026-03-10T13:05:54.101Z",
            "feedbackId": "00000138111222aa-44455566-cccc-cccc-cccc-ddddaaaa068a-000000",
            "reportingMTA": "dns; email.example.org",
        },
    )


SES_COMPLAINT = ses(
    "Complaint",
    {
        "userAgent": "AnyCompany Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": READER}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2026-03-10T14:00:00.000Z",
        "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
    },
    message_id="5d1f6ba9-7b8e-5e1c-92b8-7a9ac44b4bf1",
)


def ses_headers(body: dict) -> dict[str, str]:
    return {
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": body["Type"],
        "HTTP_X_AMZ_SNS_MESSAGE_ID": body["MessageId"],
    }


def ses_post(client, body, **headers):
    """POST as SNS does: the JSON as text/plain, with its x-amz-sns-* headers."""
    return post(
        client,
        "amazon_ses",
        body,
        content_type="text/plain; charset=UTF-8",
        **{**ses_headers(body), **headers},
    )


def _post(client, esp: str, body, **headers):
    if esp == "amazon_ses":
        return ses_post(client, body, **headers)
    return post(client, esp, body, **headers)


@pytest.fixture
def delivered(settings, day_batch):
    """`delivered(esp, message_id)`: the reader's delivery, sent through `esp`."""

    def make(esp: str, message_id: str = MESSAGE_ID) -> Delivery:
        configure(settings, esp)
        if esp == "amazon_ses":
            settings.ANYMAIL = {
                **settings.ANYMAIL,
                "AMAZON_SES_CLIENT_PARAMS": {"region_name": "eu-west-1"},
            }
        delivery = sent_delivery(day_batch, email=READER)
        Delivery.objects.filter(pk=delivery.pk).update(provider_message_id=message_id)
        return delivery

    return make


# --- A bounce suppresses; a soft one does not -----------------------------------------------------

BOUNCES = {
    "brevo hard_bounce": (
        "brevo",
        BREVO_ID,
        brevo("hard_bounce", reason=" RecipientError: 550 5.5.0 mailbox unavailable."),
    ),
    "brevo invalid_email": ("brevo", BREVO_ID, brevo("invalid_email")),
    "brevo blocked (on its blocklist)": (
        "brevo",
        BREVO_ID,
        brevo("blocked", reason="blocked : due to blacklist user"),
    ),
    "mailjet hard bounce": (
        "mailjet",
        MAILJET_ID,
        mailjet(
            "bounce",
            blocked=True,
            hard_bounce=True,
            error_related_to="recipient",
            error="user unknown",
        ),
    ),
    "mailjet blocked, preblocked": (
        "mailjet",
        MAILJET_ID,
        mailjet("blocked", error_related_to="mailjet", error="preblocked"),
    ),
    "sparkpost bounce class 10": ("sparkpost", SPARKPOST_ID, sparkpost("bounce", **SPARKPOST_HARD)),
    "sparkpost out_of_band class 30": (
        "sparkpost",
        SPARKPOST_ID,
        sparkpost("out_of_band", bounce_class="30", raw_reason="550 no such user"),
    ),
    "amazon_ses Permanent": pytest.param(
        "amazon_ses", SES_ID, ses_bounce("Permanent"), marks=needs_boto3
    ),
    "amazon_ses Undetermined": pytest.param(
        "amazon_ses", SES_ID, ses_bounce("Undetermined", "Undetermined"), marks=needs_boto3
    ),
}


@pytest.mark.parametrize(("esp", "message_id", "payload"), BOUNCES.values(), ids=BOUNCES.keys())
def test_a_permanent_bounce_suppresses_the_reader(client, delivered, esp, message_id, payload):
    delivery = delivered(esp, message_id)

    response = _post(client, esp, payload)

    assert response.status_code == 200, response.content
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert delivery.bounced_at is not None
    assert Suppression.objects.get().reason == "bounced"
    assert not subscribers_sendable().filter(email=READER).exists()
    # The provider posts the same event again: applied once.
    assert _post(client, esp, payload).status_code == 200
    assert TrackingEvent.objects.count() == 1


SOFT = {
    "brevo soft_bounce": (
        "brevo",
        BREVO_ID,
        brevo("soft_bounce", reason="undefined Unable to find MX of domain example.org"),
    ),
    "mailjet soft bounce (quota exceeded)": (
        "mailjet",
        MAILJET_ID,
        mailjet(
            "bounce",
            blocked=False,
            hard_bounce=False,
            error_related_to="recipient",
            error="quota exceeded",
        ),
    ),
    "mailjet blocked for its content": (
        "mailjet",
        MAILJET_ID,
        mailjet("blocked", error_related_to="spam", error="content blocked"),
    ),
    "sparkpost mailbox full (class 22)": (
        "sparkpost",
        SPARKPOST_ID,
        sparkpost("bounce", bounce_class="22", raw_reason="552 5.2.2 mailbox full"),
    ),
    "sparkpost spam block (class 51)": (
        "sparkpost",
        SPARKPOST_ID,
        sparkpost("bounce", bounce_class="51", raw_reason="554 5.7.1 blocked as spam"),
    ),
    "amazon_ses Transient": pytest.param(
        "amazon_ses", SES_ID, ses_bounce("Transient", "MailboxFull"), marks=needs_boto3
    ),
}


@pytest.mark.parametrize(("esp", "message_id", "payload"), SOFT.values(), ids=SOFT.keys())
def test_a_soft_bounce_suppresses_nobody(client, delivered, esp, message_id, payload):
    delivery = delivered(esp, message_id)

    assert _post(client, esp, payload).status_code == 200

    # Anymail calls a Mailjet "blocked" a rejection: either way it is recorded, and that is all.
    assert TrackingEvent.objects.filter(
        delivery=delivery, event_type__in=["bounced", "rejected"]
    ).exists()
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT
    assert not Suppression.objects.exists()
    assert subscribers_sendable().filter(email=READER).exists()


# --- A complaint ends the subscription -----------------------------------------------------------

COMPLAINTS = {
    "postmark SpamComplaint": (
        "postmark",
        MESSAGE_ID,
        {
            "RecordType": "SpamComplaint",
            "ID": 901542550,
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Name": "Spam complaint",
            "MessageID": MESSAGE_ID,
            "ServerID": 1234,
            "Description": "",
            "Details": "Test spam complaint details",
            "Email": READER,
            "From": "digest@paperboy.example.org",
            "BouncedAt": "2026-03-10T16:28:50.3963933-04:00",
            "Inactive": True,
            "CanActivate": False,
            "Subject": "Tue 10 Mar: Paper a1 + 2 more",
        },
    ),
    "mailgun complained": (
        "mailgun",
        MAILGUN_ID,
        mailgun_signed(
            {
                "event-data": {
                    "event": "complained",
                    "id": "ncV2XwymRUKbPek_MIM-Gw",
                    "timestamp": 1773147954.0,
                    "log-level": "warn",
                    "recipient": READER,
                    "message": {"headers": {"message-id": MAILGUN_ID.strip("<>")}},
                }
            }
        ),
    ),
    "sendgrid spamreport": (
        "sendgrid",
        MESSAGE_ID,
        [
            {
                "email": READER,
                "timestamp": 1773147954,
                "event": "spamreport",
                "sg_event_id": "c3BhbXJlcG9ydC0xMjM",
                "sg_message_id": "wrfRRvF7Q0GgwUo2CvDmEA.filter0425p1mdw1.13037.57168B4A1D.0",
                "anymail_id": MESSAGE_ID,
            }
        ],
    ),
    "resend email.complained": (
        "resend",
        MESSAGE_ID,
        {
            "type": "email.complained",
            "created_at": "2026-03-10T14:00:00.000Z",
            "data": {
                "created_at": "2026-03-10T13:05:50.000Z",
                "email_id": MESSAGE_ID,
                "from": "Paperboy <digest@paperboy.example.org>",
                "to": [READER],
                "subject": "Tue 10 Mar: Paper a1 + 2 more",
            },
        },
    ),
    "brevo spam": ("brevo", BREVO_ID, brevo("spam")),
    "brevo complaint": ("brevo", BREVO_ID, brevo("complaint", tags=["daily-digest"])),
    "mailjet spam": ("mailjet", MAILJET_ID, mailjet("spam", source="JMRPP")),
    "sparkpost spam_complaint": (
        "sparkpost",
        SPARKPOST_ID,
        sparkpost("spam_complaint", fbtype="abuse", report_by="server.example.org"),
    ),
    "amazon_ses Complaint": pytest.param("amazon_ses", SES_ID, SES_COMPLAINT, marks=needs_boto3),
}


@pytest.mark.parametrize(
    ("esp", "message_id", "payload"), COMPLAINTS.values(), ids=COMPLAINTS.keys()
)
def test_a_complaint_ends_the_subscription(client, delivered, esp, message_id, payload):
    delivery = delivered(esp, message_id)

    response = _post(client, esp, payload, HTTP_SVIX_ID="msg_1")

    assert response.status_code == 200, response.content
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.COMPLAINED
    assert Suppression.objects.get().reason == "complained"
    subscriber = Subscriber.objects.get(email=READER)
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert not subscribers_sendable().exists()


@pytest.mark.parametrize(
    ("esp", "message_id", "payload"),
    [
        ("brevo", BREVO_ID, brevo("delivered")),
        ("mailjet", MAILJET_ID, mailjet("sent", smtp_reply="sent (250 2.0.0 OK)")),
        ("sparkpost", SPARKPOST_ID, sparkpost("delivery")),
        pytest.param(
            "amazon_ses",
            SES_ID,
            ses(
                "Delivery",
                {
                    "timestamp": "2026-03-10T13:05:53.237Z",
                    "recipients": [READER],
                    "processingTimeMillis": 546,
                    "reportingMTA": "a8-70.smtp-out.amazonses.com",
                    "smtpResponse": "250 ok:  Message 64111812 accepted",
                },
            ),
            marks=needs_boto3,
        ),
    ],
    ids=["brevo", "mailjet", "sparkpost", "amazon_ses"],
)
def test_a_delivery_is_recorded_on_the_right_row(client, delivered, esp, message_id, payload):
    delivery = delivered(esp, message_id)
    assert _post(client, esp, payload).status_code == 200
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.status == Delivery.Status.SENT
    assert not Suppression.objects.exists()


# --- Credentials --------------------------------------------------------------------------------

EVERY = {
    "postmark": COMPLAINTS["postmark SpamComplaint"][2],
    "mailgun": COMPLAINTS["mailgun complained"][2],
    "sendgrid": COMPLAINTS["sendgrid spamreport"][2],
    "resend": COMPLAINTS["resend email.complained"][2],
    "brevo": brevo("spam"),
    "mailjet": mailjet("spam"),
    "sparkpost": sparkpost("spam_complaint"),
}
ESPS = [*EVERY, pytest.param("amazon_ses", marks=needs_boto3)]


def _payload(esp: str):
    return SES_COMPLAINT if esp == "amazon_ses" else EVERY[esp]


@pytest.mark.parametrize("esp", ESPS)
@pytest.mark.parametrize(
    "authorization",
    [None, auth("hook:wrong"), auth("someone:s3cret")],
    ids=["none", "wrong password", "wrong user"],
)
def test_it_refuses_calls_without_the_right_credentials(client, delivered, esp, authorization):
    delivered(esp)
    headers = authorization or {"HTTP_AUTHORIZATION": ""}
    client.raise_request_exception = False

    response = _post(client, esp, _payload(esp), HTTP_SVIX_ID="msg_1", **headers)

    assert response.status_code in {400, 401, 403}
    assert not TrackingEvent.objects.exists() and not Suppression.objects.exists()


@needs_boto3
def test_ses_without_credentials_is_asked_for_them_as_sns_needs(client, delivered):
    # SNS sends the basic auth of its subscription URL only after a 401 challenge.
    delivered("amazon_ses", SES_ID)
    response = ses_post(client, SES_COMPLAINT, HTTP_AUTHORIZATION="")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="Anymail WEBHOOK_SECRET"'
    assert ses_post(client, SES_COMPLAINT).status_code == 200  # then it sends them


def test_mailgun_with_the_right_password_but_a_bad_signature_is_refused(client, delivered):
    delivered("mailgun")
    payload = json.loads(json.dumps(COMPLAINTS["mailgun complained"][2]))
    payload["signature"]["signature"] = "0" * 64
    client.raise_request_exception = False
    assert post(client, "mailgun", payload).status_code in {400, 403}
    assert not TrackingEvent.objects.exists() and not Suppression.objects.exists()


# --- Malformed payloads -------------------------------------------------------------------------

MALFORMED = {
    "brevo: a list, not an event": ("brevo", [brevo("hard_bounce")]),
    "brevo: truncated JSON": ("brevo", json.dumps(brevo("hard_bounce"))[:-9]),
    "brevo: recipient not an address": ("brevo", brevo("hard_bounce", email="nobody")),
    "mailjet: truncated JSON": ("mailjet", json.dumps(mailjet("spam"))[:-5]),
    "mailjet: time as text": ("mailjet", mailjet("spam", time="yesterday")),
    "mailjet: a list of non-events": ("mailjet", [1, "two"]),
    "sparkpost: an object, not a list": ("sparkpost", sparkpost("bounce")[0]),
    "sparkpost: two event classes": (
        "sparkpost",
        [{"msys": {"message_event": {"type": "bounce"}, "track_event": {"type": "open"}}}],
    ),
    "sparkpost: recipient a list": ("sparkpost", sparkpost("bounce", raw_rcpt_to=[READER])),
    "amazon_ses: Message not JSON": pytest.param(
        "amazon_ses", sns("Notification", "m-1", Message="{not json"), marks=needs_boto3
    ),
    "amazon_ses: bounce without recipients": pytest.param(
        "amazon_ses",
        ses("Bounce", {"bounceType": "Permanent", "bounceSubType": "General"}),
        marks=needs_boto3,
    ),
    "amazon_ses: not JSON at all": pytest.param(
        "amazon_ses", {"Type": "Notification", "MessageId": "m-2", "Message": 7}, marks=needs_boto3
    ),
}


@pytest.mark.parametrize(("esp", "body"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_payload_is_answered_400(client, delivered, esp, body):
    delivery = delivered(esp)
    client.raise_request_exception = False
    if esp == "amazon_ses":
        response = post(
            client,
            esp,
            body,
            content_type="text/plain",
            HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
            HTTP_X_AMZ_SNS_MESSAGE_ID=body["MessageId"],
        )
    else:
        response = post(client, esp, body)
    assert response.status_code == 400
    assert not TrackingEvent.objects.exists() and not Suppression.objects.exists()
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT


# --- Amazon SNS subscription confirmation --------------------------------------------------------

SUBSCRIPTION = {
    "Type": "SubscriptionConfirmation",
    "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a74",
    "TopicArn": "arn:aws:sns:us-west-2:888888888888:SES_Events",
    "Message": "You have chosen to subscribe to the topic "
    "arn:aws:sns:us-west-2:888888888888:SES_Events.\n"
    "To confirm the subscription, visit the SubscribeURL included in this message.",
    "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=...",
    "Timestamp": "2026-03-10T12:00:00.751Z",
    "SignatureVersion": "1",
    "Signature": "EXAMPLE-SIGNATURE==",
    "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem",
}


@pytest.fixture
def fake_sns(monkeypatch):
    from devtools.fakes.amazon_sns import FakeSns

    with FakeSns() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", fake.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        yield fake


@needs_boto3
def test_an_sns_subscription_is_confirmed_at_sns_in_the_topics_region(
    client, delivered, fake_sns, settings
):
    delivered("amazon_ses", SES_ID)
    # ANYMAIL_API_URL is SES's endpoint; the confirmation must still go to SNS.
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "AMAZON_SES_CLIENT_PARAMS": {
            "region_name": "eu-west-1",
            "endpoint_url": "http://127.0.0.1:9/ses-only",
        },
    }
    fake_sns.state.tokens.add(SUBSCRIPTION["Token"])

    response = ses_post(client, SUBSCRIPTION)

    assert response.status_code == 200
    assert fake_sns.state.confirmed == [
        (SUBSCRIPTION["TopicArn"], SUBSCRIPTION["Token"], "true", "us-west-2")
    ]
    assert not TrackingEvent.objects.exists()
    # SNS's notice that follows is no event either.
    validated = sns(
        "Notification",
        "7fbca0d9-eeab-5285-ae27-f3f57f2e84b0",
        Message="Successfully validated SNS topic for Amazon SES event publishing.",
    )
    assert ses_post(client, validated).status_code == 200
    assert not TrackingEvent.objects.exists()


@needs_boto3
def test_an_sns_subscription_is_not_confirmed_without_the_right_credentials(
    client, delivered, fake_sns
):
    delivered("amazon_ses", SES_ID)
    fake_sns.state.tokens.add(SUBSCRIPTION["Token"])
    client.raise_request_exception = False

    response = ses_post(client, SUBSCRIPTION, **auth("hook:wrong"))

    assert response.status_code in {400, 403}
    assert fake_sns.state.confirmed == []


@needs_boto3
def test_an_sns_confirmation_sns_refuses_answers_500_so_sns_sends_it_again(
    client, delivered, fake_sns
):
    delivered("amazon_ses", SES_ID)  # no token known to the fake: SNS answers 400
    client.raise_request_exception = False
    assert ses_post(client, SUBSCRIPTION).status_code == 500
    assert fake_sns.state.confirmed == []
