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
from datetime import timedelta

import pytest
import redis
from django.db import connection

from devtools.fakes.postmark import TOKEN, FakePostmark
from digests.models import DailyBatch
from newsletter.models import Delivery, Issue
from newsletter.selectors import issue_stats
from newsletter.services.issues import issue_create, issue_start
from newsletter.services.sending import deliveries_retry
from newsletter.tasks import sweep_deliveries
from subscriptions.models import Subscriber
from tests.external import (
    TcpProxy,
    WorkerProcess,
    celery_broker,
    celery_worker,
    database_address,
    database_url_for_subprocess,
    require_postgres,
    require_redis,
    service_env,
    wait_for,
)
from tests.factories import BatchEntryFactory, DailyBatchFactory, PaperFactory, SubscriberFactory
from tests.newsletter.conftest import DAY, papers_of, tag

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
READERS = 120
# The shortest lease the settings accept with this client timeout and margin.
TIMEOUT, MARGIN = 1, 1
LEASE = TIMEOUT + MARGIN + 1
REQUEUE = 2


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
        settings.ANYMAIL_TIMEOUT_SECONDS = TIMEOUT
        settings.DIGEST_LEASE_MARGIN_SECONDS = MARGIN
        yield fake


@pytest.fixture
def worker_env(postmark):
    return {
        "ANYMAIL_ESP": "postmark",
        "ANYMAIL_API_KEY": TOKEN,
        "ANYMAIL_API_URL": postmark.url,
        "DIGEST_BATCH_SIZE": "10",
        "DIGEST_CLAIM_LEASE_SECONDS": str(LEASE),
        "ANYMAIL_TIMEOUT_SECONDS": str(TIMEOUT),
        "DIGEST_LEASE_MARGIN_SECONDS": str(MARGIN),
        "DIGEST_REQUEUE_SECONDS": str(REQUEUE),
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
    assert statuses == {Delivery.Status.SENT: len(readers)}


def start_issue(day_batch) -> Issue:
    issue = issue_create(batch=day_batch.batch)
    assert issue_start(issue=issue)  # enqueues 12 chunk tasks on commit
    return issue


def sweep_until_done(issue, *, seconds=60, every=LEASE + 0.5) -> None:
    """What beat does every minute: run the sweeper (through the broker) until the issue ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT:
            return
        sweep_deliveries.delay()
        time.sleep(every)


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

    # The lost chunks are enqueued again after DIGEST_REQUEUE_SECONDS without progress, well
    # before the lease would run out.
    env = {**worker_env, "DIGEST_CLAIM_LEASE_SECONDS": "60"}
    server = redis_server()
    try:
        with celery_broker(url), celery_worker(tmp_path, CELERY_BROKER_URL=url, **env) as w:
            issue = start_issue(day_batch)
            wait_for(lambda: len(postmark.state.messages) >= 20, timeout=60, message=w.log())
            server.kill()  # queued tasks are gone with it: this Redis keeps nothing on disk
            server.wait()
            time.sleep(1)
            server = redis_server()
            assert redis.Redis.from_url(url).dbsize() == 0
            restarted = time.monotonic()
            sweep_until_done(issue, seconds=20, every=1)
            assert_exactly_once(postmark, issue, readers, w.log())
            assert time.monotonic() - restarted < 30
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


def statuses_of(issue) -> Counter:
    return Counter(Delivery.objects.filter(issue=issue).values_list("status", flat=True))


def test_it_settles_a_redelivered_retry_with_the_provider_before_sending_again(
    tmp_path, day_batch, readers, postmark, worker_env
):
    """The pool process dies while a retry's call is in flight and the provider has taken it;
    the same task is delivered again at once (acks_late, reject_on_worker_lost)."""
    env = {**worker_env, "DIGEST_BATCH_SIZE": "60", "ANYMAIL_TIMEOUT_SECONDS": "5"}
    env["DIGEST_CLAIM_LEASE_SECONDS"] = "30"  # no sweeper runs in this test anyway
    postmark.state.fail_next(503, 503)  # both chunks' first calls: retried in their claim
    postmark.state.answer_delay = 2  # retries are taken at once and answered 2 s later
    with celery_broker(), celery_worker(tmp_path, **env) as worker:
        issue = start_issue(day_batch)
        wait_for(lambda: len(postmark.state.messages) >= 60, timeout=30, message=worker.log())
        assert postmark.state.calls["/email/batch"] >= 3  # two 503s, then a retry
        assert statuses_of(issue)[Delivery.Status.SENT] == 0  # its answer is not back yet
        assert worker.kill_children(), "no pool process to kill"
        assert_exactly_once(postmark, issue, readers, worker.log())
        assert b"WorkerLostError" in worker.output()


def test_it_refuses_a_lease_a_late_accept_outlives_and_settles_late_accepts_once(
    tmp_path, day_batch, readers, postmark, worker_env
):
    # A lease that does not exceed the client timeout plus the margin: refused at start-up.
    short = {**worker_env, "ANYMAIL_TIMEOUT_SECONDS": "2", "DIGEST_CLAIM_LEASE_SECONDS": "3"}
    refused = WorkerProcess(service_env(**short), tmp_path / "refused.log")
    try:
        assert refused.process.wait(timeout=30) != 0
    finally:
        refused.stop()
    assert "DIGEST_CLAIM_LEASE_SECONDS=3 must exceed ANYMAIL_TIMEOUT_SECONDS=2" in refused.tail()

    # The provider takes every call only after our client gave up (1 s): each call's outcome
    # is unknown, and its rows are sent again only if the provider, asked once the call is
    # too old to be taken still, does not have them.
    postmark.state.delay = 1.5
    env = {**worker_env, "DIGEST_BATCH_SIZE": "40", "DIGEST_LEASE_MARGIN_SECONDS": "2"}
    env["DIGEST_CLAIM_LEASE_SECONDS"] = "4"
    with celery_broker(), celery_worker(tmp_path, **env) as worker:
        issue = start_issue(day_batch)
        assert_exactly_once(postmark, issue, readers, worker.log())
    assert postmark.state.calls["/email/batch"] == 3  # one call per chunk, none repeated


def crash_with_search_down(tmp_path, day_batch, postmark, worker_env) -> Issue:
    """Kill a worker while the provider holds a call it took, its message search down; let a
    new worker and the sweeper finish the issue. Returns it, some of its rows unknown."""
    postmark.state.answer_delay = 1
    postmark.state.search_outage(600)
    with celery_worker(tmp_path, **worker_env) as first:
        issue = start_issue(day_batch)
        wait_for(lambda: len(postmark.state.messages) >= 30, timeout=60, message=first.log())
        first.kill()  # the call just taken is never answered to it
    postmark.state.answer_delay = 0
    with celery_worker(tmp_path, flush=False, **worker_env) as second:
        sweep_until_done(issue, seconds=30)
        wait_for(
            lambda: statuses_of(issue)[Delivery.Status.UNKNOWN] > 0,
            timeout=20,
            message=f"{statuses_of(issue)}\n{second.log()}",
        )
    return issue


def test_it_keeps_possibly_sent_mail_unknown_while_the_provider_search_is_down(
    tmp_path, day_batch, readers, postmark, worker_env
):
    with celery_broker():
        issue = crash_with_search_down(tmp_path, day_batch, postmark, worker_env)
        statuses = statuses_of(issue)
        assert statuses[Delivery.Status.FAILED] == 0, statuses
        unknown = statuses[Delivery.Status.UNKNOWN]
        assert issue_stats(issue)["unknown"] == unknown
        # The provider has them: an editor's "retry failed" must not send them again.
        assert deliveries_retry(deliveries=Delivery.objects.filter(issue=issue)) == 0
        assert statuses_of(issue)[Delivery.Status.UNKNOWN] == unknown

        postmark.state.search_outage(0)  # the search answers again: the sweeper settles them
        with celery_worker(tmp_path, flush=False, **worker_env) as worker:
            wait_for(
                lambda: sweep_deliveries.delay() and statuses_of(issue) == {"sent": READERS},
                timeout=30,
                interval=1,
                message=f"{statuses_of(issue)}\n{worker.log()}",
            )
            assert_exactly_once(postmark, issue, readers, worker.log())


def test_it_repeats_no_paper_on_day_two_to_anyone_possibly_sent_day_one(
    tmp_path, day_batch, readers, postmark, worker_env
):
    with celery_broker():
        day_one = crash_with_search_down(tmp_path, day_batch, postmark, worker_env)
        possibly_sent = {
            d.subscriber_id: set(papers_of(d))
            for d in Delivery.objects.filter(issue=day_one, status=Delivery.Status.UNKNOWN)
        }
        assert possibly_sent

        # Day two's trending papers include day one's (still trending) and a new one.
        batch = DailyBatchFactory(date=DAY + timedelta(days=1), status=DailyBatch.Status.APPROVED)
        for rank, paper in enumerate(day_batch.papers.values(), start=1):
            BatchEntryFactory(batch=batch, paper=paper, rank=rank)
        fresh = PaperFactory(title="Paper r4", upvotes=10)
        tag(fresh, day_batch.topics["robotics"])
        BatchEntryFactory(batch=batch, paper=fresh, rank=99)
        day_two = issue_create(batch=batch)
        assert issue_start(issue=day_two)
        postmark.state.reset()
        with celery_worker(tmp_path, flush=False, **worker_env) as worker:
            wait_for(
                lambda: Issue.objects.get(pk=day_two.pk).status == Issue.Status.SENT,
                timeout=30,
                message=worker.log(),
            )
    for delivery in Delivery.objects.filter(issue=day_two, subscriber_id__in=possibly_sent):
        repeated = set(papers_of(delivery)) & possibly_sent[delivery.subscriber_id]
        assert not repeated, f"day two repeats papers {repeated} of a possibly sent day one"
    assert Counter(postmark.state.recipients()) == {email: 1 for email in readers}


def test_it_retries_chunks_through_a_database_outage(
    tmp_path, day_batch, readers, postmark, worker_env
):
    """The worker's database goes away for seconds (a PostgreSQL restart as it sees it):
    chunk tasks are retried with backoff, not dropped; no sweeper is needed."""
    proxy = TcpProxy(*database_address())
    env = {**worker_env, "DATABASE_URL": database_url_for_subprocess(port=proxy.port)}
    env["DIGEST_CLAIM_LEASE_SECONDS"] = "60"
    postmark.state.delay = 0.4  # twelve chunks take about five seconds
    try:
        with celery_broker(), celery_worker(tmp_path, **env) as worker:
            issue = start_issue(day_batch)
            wait_for(lambda: len(postmark.state.messages) >= 20, timeout=60, message=worker.log())
            proxy.down()
            assert statuses_of(issue)[Delivery.Status.PENDING] > 0
            time.sleep(3)
            proxy.up()
            assert_exactly_once(postmark, issue, readers, worker.log())
            assert b"retry: Retry in" in worker.output()  # the outage did hit tasks
    finally:
        proxy.down()
