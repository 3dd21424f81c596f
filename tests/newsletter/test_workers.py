"""Exactly once with real Celery worker processes, a real Redis broker and real PostgreSQL.

Each test sends one issue to 120 subscribers in chunks of 10 through the fake Postmark API
(answering each call after a short delay, so a crash lands mid-call), breaks something on the
way (a worker killed with SIGKILL, Redis restarted empty, the provider down for seconds),
recovers the way production does (a new worker, the periodic sweeper), and then checks that
every eligible subscriber got exactly one email.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter

import pytest
import redis
from django.db import connection

from devtools.fakes.postmark import TOKEN, FakePostmark
from newsletter.models import Delivery, Issue
from newsletter.services.issues import issue_create, issue_start
from newsletter.tasks import sweep_deliveries
from subscriptions.models import Subscriber
from tests.external import celery_broker, celery_worker, require_postgres, require_redis, wait_for
from tests.factories import SubscriberFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
READERS = 120
LEASE = 2


@pytest.fixture
def postmark(settings):
    with FakePostmark() as fake:
        fake.state.delay = 0.05
        settings.ANYMAIL_ESP = "postmark"
        settings.EMAIL_BACKEND = "newsletter.backends.PostmarkBatchEmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "POSTMARK_SERVER_TOKEN": TOKEN,
            "POSTMARK_API_URL": fake.url,
        }
        settings.DIGEST_BATCH_SIZE = 10
        settings.DIGEST_CLAIM_LEASE_SECONDS = LEASE
        yield fake


@pytest.fixture
def worker_env(postmark):
    return {
        "ANYMAIL_ESP": "postmark",
        "ANYMAIL_API_KEY": TOKEN,
        "ANYMAIL_API_URL": postmark.url,
        "DIGEST_BATCH_SIZE": "10",
        "DIGEST_CLAIM_LEASE_SECONDS": str(LEASE),
        "DIGEST_RETRY_BACKOFF_SECONDS": "1",
        "SITE_URL": "https://paperboy.example.org",
    }


@pytest.fixture
def readers(day_batch) -> list[str]:
    require_postgres()
    require_redis()
    robotics = day_batch.topics["robotics"]
    subscribers = Subscriber.objects.bulk_create(
        SubscriberFactory.build(email=f"reader{i}@example.org") for i in range(READERS)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber=s, topic=robotics) for s in subscribers
    )
    # Not eligible: must get nothing even though they follow the topic.
    paused = SubscriberFactory(status=Subscriber.Status.PAUSED, topics=[robotics])
    assert paused.email not in {s.email for s in subscribers}
    return sorted(s.email for s in subscribers)


def assert_exactly_once(postmark, issue, readers, worker_log=""):
    wait_for(
        lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
        timeout=90,
        message=f"issue not finished: {Counter(Delivery.objects.values_list('status', flat=True))}"
        f"\n{worker_log}",
    )
    received = Counter(postmark.state.recipients())
    assert sorted(received) == readers  # nobody lost, nobody extra
    assert {n for n in received.values()} == {1}, received.most_common(3)  # nobody twice
    statuses = Counter(Delivery.objects.filter(issue=issue).values_list("status", flat=True))
    assert statuses == {Delivery.Status.SENT: READERS}


def start_issue(day_batch) -> Issue:
    issue = issue_create(batch=day_batch.batch)
    assert issue_start(issue=issue)  # enqueues 12 chunk tasks on commit
    return issue


def sweep_until_done(issue, *, seconds=60) -> None:
    """What beat does every minute: run the sweeper (through the broker) until the issue ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT:
            return
        sweep_deliveries.delay()
        time.sleep(LEASE + 0.5)


def test_it_sends_exactly_once_when_a_worker_is_killed_mid_issue(
    tmp_path, day_batch, readers, postmark, worker_env
):
    with celery_broker():
        with celery_worker(tmp_path, **worker_env) as first:
            issue = start_issue(day_batch)
            wait_for(lambda: len(postmark.state.messages) >= 30, timeout=60, message=first.log())
            first.kill()  # SIGKILL to the worker and its pool, mid-chunk
        sent_before = len(postmark.state.messages)
        assert sent_before < READERS, "the worker finished before it could be killed"

        with celery_worker(tmp_path, flush=False, **worker_env) as second:
            sweep_until_done(issue)
            assert_exactly_once(postmark, issue, readers, second.log())


def test_it_sends_exactly_once_across_a_redis_restart(
    tmp_path, day_batch, readers, postmark, worker_env
):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"

    def redis_server() -> subprocess.Popen:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: _pings(url), timeout=10, message="redis-server did not start")
        return process

    server = redis_server()
    try:
        with celery_broker(url), celery_worker(tmp_path, CELERY_BROKER_URL=url, **worker_env) as w:
            issue = start_issue(day_batch)
            wait_for(lambda: len(postmark.state.messages) >= 20, timeout=60, message=w.log())
            server.kill()  # queued tasks are gone with it: this Redis keeps nothing on disk
            server.wait()
            time.sleep(1)
            server = redis_server()
            assert redis.Redis.from_url(url).dbsize() == 0
            sweep_until_done(issue)
            assert_exactly_once(postmark, issue, readers, w.log())
    finally:
        server.kill()
        server.wait()


def test_it_sends_exactly_once_through_a_provider_outage(
    tmp_path, day_batch, readers, postmark, worker_env
):
    with celery_broker(), celery_worker(tmp_path, **worker_env) as worker:
        issue = start_issue(day_batch)
        wait_for(lambda: len(postmark.state.messages) >= 10, timeout=60, message=worker.log())
        postmark.state.outage(4)  # every call answers 503 for four seconds
        # Retries with backoff carry the issue through; no sweeper needed.
        assert_exactly_once(postmark, issue, readers, worker.log())
    retried = Delivery.objects.filter(issue=issue, attempts__gt=1).count()
    assert retried > 0, "the outage did not hit any send"


def test_a_worker_keeps_its_database_session_from_task_to_task(
    tmp_path, day_batch, readers, postmark, worker_env
):
    """Twelve chunk tasks on one worker process: one PostgreSQL session, not one per task."""
    before = _sessions_opened()
    with celery_broker(), celery_worker(tmp_path, DATABASE_CONN_MAX_AGE="60", **worker_env) as w:
        issue = start_issue(day_batch)
        assert_exactly_once(postmark, issue, readers, w.log())
    time.sleep(1.5)  # backends report their statistics about once a second
    # The pool process's session, and at most one of the main worker process.
    assert _sessions_opened() - before <= 2


def _sessions_opened() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _pings(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return False
