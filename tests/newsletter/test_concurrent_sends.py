"""Single sends over several connections at once (newsletter/services/concurrent_sends.py),
through the real Anymail Brevo backend against devtools/fakes/brevo.py: copies go out in
parallel, and copies whose answers never came are all held as possibly sent, never resent."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from newsletter.models import Delivery
from newsletter.services.sending import ClaimUnsettled, deliveries_send_chunk, deliveries_sweep
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_a_chunks_copies_go_out_over_several_connections_at_once(
    brevo, day_batch, sending, settings
):
    settings.SEND_CONCURRENCY = 4
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(8)]
    brevo.counters.answer_delay = 1.0  # each answer takes a second: one at a time takes eight
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 8

    arrivals = sorted(when for when, _ in brevo.counters.arrivals)
    # Four copies were in flight together: they arrived within a fraction of one answer.
    assert sum(1 for when in arrivals if when - arrivals[0] < 0.8) == 4, arrivals
    assert sorted(brevo.state.recipients()) == sorted(r.email for r in readers)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_every_copy_whose_answer_never_came_stays_possibly_sent_never_resent(
    brevo, day_batch, sending, settings
):
    settings.SEND_CONCURRENCY = 3
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(6)]
    brevo.counters.answer_delay = 1.0  # Brevo takes each copy; its answers come too late
    issue = sending()

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    # Three copies were in flight, all taken, none answered; nothing new started after.
    in_flight = set(brevo.state.recipients())
    assert len(in_flight) == 3
    held = Delivery.objects.filter(status=Delivery.Status.SENDING)
    assert {d.subscriber.email for d in held} == in_flight
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 3

    brevo.counters.answer_delay = 0
    assert deliveries_send_chunk(issue_id=issue.pk) == 3  # the three never handed over
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()
        assert deliveries_send_chunk(issue_id=issue.pk) == 0

    unknown = Delivery.objects.filter(status=Delivery.Status.UNKNOWN)
    assert {d.subscriber.email for d in unknown} == in_flight  # Brevo cannot be asked
    assert sorted(brevo.state.recipients()) == sorted(r.email for r in readers)  # once each
