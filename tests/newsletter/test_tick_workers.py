"""A due tick that dies mid-slot (its worker killed with SIGKILL while it writes the slot's
rows), with real Celery workers, Redis and PostgreSQL: the next tick and the sweeper finish
the slot, and every due reader gets exactly one email."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from newsletter.models import Delivery, Issue
from newsletter.tasks import send_due_digests
from subscriptions.models import Subscriber
from tests.external import celery_broker, celery_worker, require_postgres, require_redis, wait_for
from tests.factories import SubscriberFactory
from tests.newsletter.conftest import DAY
from tests.newsletter.test_workers import postmark, sweep_until_done, worker_env  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
READERS = 5000  # three chunks of the tick (2,000 each): a kill lands between two of them
SLOT = datetime(DAY.year, DAY.month, DAY.day, 7, 0, tzinfo=UTC)  # their slot: the batch's day


@pytest.fixture
def due_readers(day_batch) -> list[str]:
    require_postgres()
    require_redis()
    robotics = day_batch.topics["robotics"]
    subscribers = Subscriber.objects.bulk_create(
        SubscriberFactory.build(
            email=f"reader{i}@example.org", next_due_at=SLOT, frequency="every_day"
        )
        for i in range(READERS)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber=s, topic=robotics) for s in subscribers
    )
    return sorted(s.email for s in subscribers)


def test_a_tick_killed_mid_slot_sends_nobody_twice(
    tmp_path,
    day_batch,
    due_readers,
    postmark,  # noqa: F811
    worker_env,  # noqa: F811
):
    env = {**worker_env, "DIGEST_BATCH_SIZE": "500"}
    postmark.state.delay = 0.01
    with celery_broker():
        with celery_worker(tmp_path, **env) as first:
            send_due_digests.delay()
            wait_for(
                lambda: Delivery.objects.exists(), timeout=120, interval=0.02, message=first.log()
            )
            first.kill()  # SIGKILL mid-tick: the first chunk's rows are written, not the rest
        written = Delivery.objects.count()
        assert 0 < written < READERS, f"the tick was not killed mid-slot ({written} rows)"
        not_yet = Subscriber.objects.filter(next_due_at=SLOT).count()
        assert not_yet == READERS - written  # a chunk's rows and its readers' move are one

        with celery_worker(tmp_path, flush=False, **env) as second:
            send_due_digests.delay()  # the next tick, as beat sends it every few minutes
            wait_for(
                lambda: not Subscriber.objects.filter(next_due_at=SLOT).exists(),
                timeout=120,
                message=second.log(),
            )
            send_due_digests.delay()  # and one more: nothing is due any more
            issue = Issue.objects.get(batch=day_batch.batch)
            sweep_until_done(issue, seconds=120)
            wait_for(
                lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
                timeout=60,
                message=second.log(),
            )

    received = Counter(postmark.state.recipients())
    assert sorted(received) == due_readers  # nobody lost
    assert set(received.values()) == {1}, received.most_common(3)  # nobody twice
    assert Counter(Delivery.objects.values_list("status", flat=True)) == {
        Delivery.Status.SENT: READERS
    }
    assert set(Delivery.objects.values_list("period", flat=True)) == {DAY.isoformat()}
    assert not Subscriber.objects.filter(next_due_at__lte=timezone.now()).exists()
    issue.refresh_from_db()
    assert issue.recipient_count == READERS
