"""Ingest under real concurrency (PostgreSQL) and through a real Celery worker (plus Redis)."""

from __future__ import annotations

import datetime as dt
import threading
import warnings

import pytest
from celery.exceptions import AlwaysEagerIgnored
from django.db import connection
from django.utils import timezone

from config.celery import app
from digests.models import BatchEntry, DailyBatch, Paper
from digests.services import batch_ingest
from tests.digests.conftest import API_SAMPLE
from tests.external import TEST_REDIS_URL, celery_worker, require_postgres, wait_for

# Committed data, for threads and worker processes to see. No serialized_rollback: mixed with
# other transactional tests it restores content types that their flush already recreated
# (a duplicate-key error). pytest-django runs transactional tests last, and none of them needs
# the seeded topics.
db_committed = pytest.mark.django_db(transaction=True)


@db_committed
def test_concurrent_runs_store_each_paper_and_entry_once():
    require_postgres()
    days = [dt.date(2026, 5, 8), dt.date(2026, 5, 8), dt.date(2026, 5, 9), dt.date(2026, 5, 9)]
    start = threading.Barrier(len(days))
    failures: list[BaseException] = []

    def ingest(day: dt.date) -> None:
        try:
            start.wait()
            batch_ingest(day=day, path=API_SAMPLE)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert Paper.objects.count() == 37
    assert DailyBatch.objects.count() == 2
    assert BatchEntry.objects.count() == 74
    assert set(DailyBatch.objects.values_list("entry_count", flat=True)) == {37}


@db_committed
def test_a_real_worker_runs_the_beat_task(tmp_path):
    with celery_worker(tmp_path, DIGEST_SOURCE="file", DIGEST_SOURCE_FILE=str(API_SAMPLE)) as w:
        # As beat does: a message on the broker (this test process itself runs tasks eagerly).
        with app.connection_for_write(TEST_REDIS_URL) as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            app.send_task("digests.tasks.ingest_recent_days", connection=conn)

        today = timezone.now().astimezone(dt.UTC).date()
        expected = {today - dt.timedelta(days=n) for n in range(3)}

        def done() -> bool:
            ready = DailyBatch.objects.filter(entry_count=37).values_list("date", flat=True)
            return set(ready) == expected

        wait_for(done, timeout=60, message=f"batches not ingested by the worker:\n{w.log()}")
    assert Paper.objects.count() == 37
