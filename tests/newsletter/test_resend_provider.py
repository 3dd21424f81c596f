"""ANYMAIL_ESP=resend: the real Anymail Resend backend over HTTP, against devtools/fakes/resend.py.

Resend cannot merge fields into bodies rendered here, so each reader gets a filled copy of
their own (newsletter/services/single_sends.py), one POST /emails each over one session.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from newsletter.models import Delivery, Issue
from newsletter.services.previews import digest_preview
from newsletter.services.sending import (
    ClaimUnsettled,
    TransientSendError,
    deliveries_send_chunk,
    deliveries_sweep,
)
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_each_reader_gets_their_own_filled_copy(resend, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(3)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 3

        assert resend.state.calls == 3
        by_to = {m["to"][0]: m for m in resend.state.messages}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            message = by_to[reader.email]
            assert message["to"] == [reader.email]
            link = unsubscribe_url(reader)
            assert message["headers"]["List-Unsubscribe"] == f"<{link}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert json.loads(message["headers"]["X-Metadata"])["delivery"] == str(delivery.pk)
            assert delivery.status == Delivery.Status.SENT
            assert delivery.provider_message_id == message["_id"]
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert (message["html"], message["text"]) == (preview.html, preview.text)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_an_address_resend_refuses_fails_alone(resend, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["robotics"]])
    resend.state.suppressed.add("gone@example.org")
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 1

    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "not a deliverable" in gone.last_error
    assert Delivery.objects.get(subscriber__email="kept@example.org").status == "sent"
    assert resend.state.recipients() == ["kept@example.org"]


@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(resend, day_batch, sending, status):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    resend.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    if status == 429:
        assert raised.value.retry_after == 1.0  # Resend's retry-after
    # The copy answered so was not taken; the other, sent beside it (SEND_CONCURRENCY), was.
    beside = len(resend.state.messages)
    assert beside <= 1
    assert deliveries_send_chunk(issue_id=issue.pk) == 0  # held for the retry

    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2 - beside
    assert sorted(resend.state.recipients()) == sorted(r.email for r in readers)


def test_a_refused_key_fails_the_rows(resend, day_batch, sending):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    resend.state.api_key = "re_another"
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    [delivery] = Delivery.objects.filter(issue=issue)
    assert delivery.status == Delivery.Status.FAILED and "invalid_api_key" in delivery.last_error


def test_an_unanswered_send_is_marked_unknown_never_resent(resend, day_batch, sending, settings):
    SubscriberFactory(email="first@example.org", topics=[day_batch.topics["agents"]])
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}
    resend.state.answer_late = 1.0  # Resend took it; the answer comes after our timeout
    issue = sending()

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()

    delivery = Delivery.objects.get(issue=issue)
    assert delivery.status == Delivery.Status.UNKNOWN  # Resend cannot be asked what it took
    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert resend.state.recipients() == ["first@example.org"]  # exactly once
