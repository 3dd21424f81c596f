"""Single sends over several connections at once (newsletter/services/concurrent_sends.py),
through Paperboy's Amazon SES backend and boto3 against devtools/fakes/amazon_ses.py: copies go
out in parallel, and copies whose answers never came are all held as possibly sent, never
resent. SES takes a content's readers in one SendBulkEmail call where Handlebars can write the
content; these contents hold a backslash before "{{" in every title, which it cannot, so each
reader gets a filled copy, one SendEmail call each."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from digests.models import Paper
from newsletter.models import Delivery
from newsletter.services.sending import ClaimUnsettled, deliveries_send_chunk, deliveries_sweep
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def day_batch(day_batch):
    Paper.objects.update(title=r"Sets \{{x}} of braces")
    return day_batch


def test_a_chunks_copies_go_out_over_several_connections_at_once(ses, day_batch, sending, settings):
    settings.SEND_CONCURRENCY = 4
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(8)]
    ses.counters.answer_delay = 1.0  # each answer takes a second: one at a time takes eight
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 8
    assert ses.state.bulk_calls == 0  # filled copies, one call each

    arrivals = sorted(when for when, _ in ses.counters.arrivals)
    # Four copies were in flight together: they arrived within a fraction of one answer.
    assert sum(1 for when in arrivals if when - arrivals[0] < 0.8) == 4, arrivals
    assert sorted(ses.state.recipients()) == sorted(r.email for r in readers)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_every_copy_whose_answer_never_came_stays_possibly_sent_never_resent(
    ses, day_batch, sending, settings
):
    settings.SEND_CONCURRENCY = 3
    settings.ANYMAIL_TIMEOUT_SECONDS = 1
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(6)]
    ses.counters.answer_delay = 3  # SES takes each copy; its answers come too late
    issue = sending()

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    # Three copies were in flight, all taken, none answered; nothing new started after.
    in_flight = set(ses.state.recipients())
    assert len(in_flight) == 3
    held = Delivery.objects.filter(status=Delivery.Status.SENDING)
    assert {d.subscriber.email for d in held} == in_flight
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 3

    ses.counters.answer_delay = 0
    assert deliveries_send_chunk(issue_id=issue.pk) == 3  # the three never handed over
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()
        assert deliveries_send_chunk(issue_id=issue.pk) == 0

    unknown = Delivery.objects.filter(status=Delivery.Status.UNKNOWN)
    assert {d.subscriber.email for d in unknown} == in_flight  # SES cannot be asked
    assert sorted(ses.state.recipients()) == sorted(r.email for r in readers)  # once each
