"""A due tick that dies mid-slot (killed with SIGKILL while it writes the slot's rows), with
real Celery workers, Redis and PostgreSQL: the next tick and the sweeper finish the slot, and
every due reader gets exactly one email; also on a DST change day, with readers at the hour
the change skips."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from devtools.processes import ChildProcess
from digests.models import DailyBatch
from newsletter.models import Delivery, Issue
from newsletter.tasks import send_due_digests
from subscriptions import schedule
from subscriptions.models import Subscriber
from tests.external import (
    celery_broker,
    celery_worker,
    require_postgres,
    require_redis,
    service_env,
    wait_for,
)
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


# America/New_York springs forward on 2027-03-14: 02:00 EST becomes 03:00 EDT. A reader at
# 02:00 (an hour that does not exist that day) and one at 03:00 are both due at 03:00 EDT,
# 07:00 UTC; on the next day they are an hour apart again.
DST_DAY = date(2027, 3, 14)
DST_SLOT = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
DST_HOURS = (2, 3)
# The tick as beat's task runs it, in a process of its own, at a moment of simulated time:
# the slot is in the future of the real clock, which the workers sending the rows keep.
TICK_SCRIPT = """
import sys
from datetime import datetime

import django

django.setup()
from newsletter.services.ticks import due_tick

print("tick done", due_tick(now=datetime.fromisoformat(sys.argv[1])), flush=True)
"""


def tick_process(tmp_path, env: dict[str, str], now: datetime, name: str) -> ChildProcess:
    return ChildProcess(
        [sys.executable, "-c", TICK_SCRIPT, now.isoformat()],
        service_env(**env),
        tmp_path / f"{name}.log",
    )


@pytest.fixture
def dst_readers(day_batch) -> dict[int, list[str]]:
    """READERS New York readers, half at 02:00, half at 03:00, every day; their next slot
    as the schedule computes it the day before; and a batch of the DST day."""
    require_postgres()
    require_redis()
    DailyBatch.objects.filter(pk=day_batch.batch.pk).update(date=DST_DAY)
    robotics = day_batch.topics["robotics"]
    by_hour: dict[int, list[str]] = {}
    for hour in DST_HOURS:
        rhythm = schedule.Rhythm(zone="America/New_York", hour=hour, frequency="every_day")
        due = schedule.next_slot(rhythm, DST_SLOT - timedelta(hours=12))
        assert due == DST_SLOT  # 02:00 lands just after the gap, with 03:00
        subscribers = Subscriber.objects.bulk_create(
            SubscriberFactory.build(
                email=f"reader{hour}-{i}@example.org",
                time_zone="America/New_York",
                delivery_hour=hour,
                frequency="every_day",
                next_due_at=due,
            )
            for i in range(READERS // 2)
        )
        Subscriber.topics.through.objects.bulk_create(
            Subscriber.topics.through(subscriber=s, topic=robotics) for s in subscribers
        )
        by_hour[hour] = sorted(s.email for s in subscribers)
    return by_hour


def test_a_tick_killed_mid_slot_on_a_dst_change_sends_everyone_once(
    tmp_path,
    day_batch,
    dst_readers,
    postmark,  # noqa: F811
    worker_env,  # noqa: F811
):
    env = {**worker_env, "DIGEST_BATCH_SIZE": "500"}
    postmark.state.delay = 0.01
    everyone = sorted(dst_readers[2] + dst_readers[3])
    with celery_broker(), celery_worker(tmp_path, **env) as worker:
        first = tick_process(tmp_path, env, DST_SLOT + timedelta(minutes=1), "tick-killed")
        wait_for(
            lambda: Delivery.objects.exists(), timeout=120, interval=0.02, message=first.tail()
        )
        first.kill()  # SIGKILL mid-slot: its first chunk's rows are written (and sending)
        written = Delivery.objects.count()
        assert 0 < written < READERS, f"the tick was not killed mid-slot ({written} rows)"
        assert Subscriber.objects.filter(next_due_at=DST_SLOT).count() == READERS - written

        for minutes in (5, 10):  # the next tick finishes the slot; the one after finds nothing
            tick = tick_process(tmp_path, env, DST_SLOT + timedelta(minutes=minutes), "tick")
            assert tick.process.wait(timeout=120) == 0, tick.tail()
            tick.stop()
        assert "joined=0" in tick.tail(), tick.tail()
        assert not Subscriber.objects.filter(next_due_at__lte=DST_SLOT).exists()
        issue = Issue.objects.get(batch=day_batch.batch)
        sweep_until_done(issue, seconds=120)
        wait_for(
            lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
            timeout=60,
            message=worker.log(),
        )

    received = Counter(postmark.state.recipients())
    assert sorted(received) == everyone  # nobody lost
    assert set(received.values()) == {1}, received.most_common(3)  # nobody twice
    assert Counter(Delivery.objects.values_list("status", flat=True)) == {
        Delivery.Status.SENT: READERS
    }
    assert set(Delivery.objects.values_list("period", flat=True)) == {DST_DAY.isoformat()}
    # The next day the two hours are apart again: 02:00 EDT is 06:00 UTC, 03:00 EDT 07:00.
    for hour, expected in ((2, 6), (3, 7)):
        assert set(
            Subscriber.objects.filter(delivery_hour=hour).values_list("next_due_at", flat=True)
        ) == {datetime(2027, 3, 15, expected, 0, tzinfo=UTC)}
