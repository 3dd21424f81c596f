"""ANYMAIL_ESP=mailjet: Anymail's Mailjet backend over HTTP, against its fake."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.utils import timezone

from devtools.fakes.mailjet import API_KEY, SECRET_KEY, FakeMailjet
from newsletter.models import Delivery
from newsletter.services.previews import digest_preview
from newsletter.services.sending import TransientSendError, deliveries_send_chunk
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailjet(settings):
    with FakeMailjet() as fake:
        settings.ANYMAIL_ESP = "mailjet"
        settings.EMAIL_BACKEND = "anymail.backends.mailjet.EmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "MAILJET_API_KEY": API_KEY,
            "MAILJET_SECRET_KEY": SECRET_KEY,
            "MAILJET_API_URL": fake.url,
        }
        settings.SITE_URL = "https://paperboy.example.org"
        yield fake


def test_each_reader_gets_their_own_filled_copy(mailjet, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 2

        by_to = {m["To"][0]["Email"]: m for m in mailjet.state.messages}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            message = by_to[reader.email]
            assert message["Headers"]["List-Unsubscribe"] == f"<{unsubscribe_url(reader)}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert json.loads(message["EventPayload"])["delivery"] == str(delivery.pk)
            assert (delivery.status, delivery.provider_message_id) == ("sent", message["_id"])
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert (message["HTMLPart"], message["TextPart"]) == (preview.html, preview.text)


def test_a_blocked_address_fails_alone(mailjet, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["robotics"]])
    mailjet.state.blocked.add("gone@example.org")
    issue = sending()

    # Mailjet answers a refused message in the body (Status "error"): an answer per recipient.
    assert deliveries_send_chunk(issue_id=issue.pk) == 2
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert (gone.status, gone.last_error) == ("failed", "provider failed this recipient")
    assert Delivery.objects.get(subscriber__email="kept@example.org").status == "sent"
    assert mailjet.state.recipients() == ["kept@example.org"]


@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(mailjet, day_batch, sending, status):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    mailjet.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    # The copy answered so was not taken; the other, sent beside it (SEND_CONCURRENCY), was.
    beside = len(mailjet.state.messages)
    assert beside <= 1
    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2 - beside
    assert sorted(mailjet.state.recipients()) == sorted(r.email for r in readers)
