"""ANYMAIL_ESP=brevo: the real Anymail Brevo backend over HTTP, against devtools/fakes/brevo.py."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.utils import timezone

from newsletter.models import Delivery
from newsletter.services.previews import digest_preview
from newsletter.services.sending import TransientSendError, deliveries_send_chunk
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_each_reader_gets_their_own_filled_copy(brevo, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 2

        by_to = {m["to"][0]["email"]: m for m in brevo.state.messages}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            message = by_to[reader.email]
            assert message["headers"]["List-Unsubscribe"] == f"<{unsubscribe_url(reader)}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert json.loads(message["headers"]["X-Mailin-custom"])["delivery"] == str(delivery.pk)
            assert (delivery.status, delivery.provider_message_id) == ("sent", message["_id"])
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert (message["htmlContent"], message["textContent"]) == (preview.html, preview.text)


def test_a_blocked_address_fails_alone(brevo, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["robotics"]])
    brevo.state.blocked.add("gone@example.org")
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 1
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "blocked" in gone.last_error
    assert brevo.state.recipients() == ["kept@example.org"]


@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(brevo, day_batch, sending, status):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    brevo.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    # The copy answered so was not taken; the other, sent beside it (SEND_CONCURRENCY), was.
    beside = len(brevo.state.messages)
    assert beside <= 1
    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2 - beside
    assert sorted(brevo.state.recipients()) == sorted(r.email for r in readers)
