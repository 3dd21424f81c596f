"""The send rate with real Celery workers: two worker processes share one budget in Redis, so
the fake Postmark never receives more than the limit in any second, and a pause the provider
asks for stops both of them, not only the one that got the answer: a Postmark 429's
Retry-After, an Amazon SES SendBulkEmail destination answered ACCOUNT_THROTTLED, and SES's
daily quota answered used up (ACCOUNT_DAILY_QUOTA_EXCEEDED), which holds both far longer."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from devtools.fakes.postmark import TOKEN, FakePostmark
from devtools.fakes.serving import peak_per_second
from newsletter.models import Delivery, Issue
from newsletter.services import rate
from newsletter.services.issues import issue_create, issue_start
from newsletter.services.sending import deliveries_sweep
from subscriptions.models import Subscriber
from tests.external import celery_broker, celery_worker, require_postgres, require_redis, wait_for
from tests.factories import SubscriberFactory
from tests.newsletter.test_provider_workers import SETUPS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
READERS = 300
LIMIT = 50  # emails per second


@pytest.fixture
def postmark(settings):
    with FakePostmark() as fake:
        settings.ANYMAIL_ESP = "postmark"
        settings.EMAIL_BACKEND = "newsletter.backends.PostmarkBatchEmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "POSTMARK_SERVER_TOKEN": TOKEN,
            "POSTMARK_API_URL": fake.url,
        }
        settings.SEND_RATE_PER_SECOND = LIMIT  # chunks enqueued here are cut to the limit
        yield fake


@pytest.fixture
def limited_ses(ses, settings):
    """The fake Amazon SES (tests/newsletter/conftest.py), chunks enqueued here cut to the
    limit as the workers cut them."""
    settings.SEND_RATE_PER_SECOND = LIMIT
    return ses


def rate_env(**provider: str) -> dict[str, str]:
    """A worker's environment: the provider's settings, and LIMIT emails a second shared
    through Redis."""
    return {
        **provider,
        "SEND_RATE_PER_SECOND": str(LIMIT),
        "SEND_RATE_REDIS_URL": require_redis(),
        "DIGEST_RETRY_BACKOFF_SECONDS": "1",
        "SITE_URL": "https://paperboy.example.org",
    }


@pytest.fixture
def worker_env(postmark):
    return rate_env(ANYMAIL_ESP="postmark", ANYMAIL_API_KEY=TOKEN, ANYMAIL_API_URL=postmark.url)


@pytest.fixture
def ses_worker_env(limited_ses):
    return rate_env(**SETUPS["amazon_ses"].env("amazon_ses", limited_ses))


@pytest.fixture
def readers(day_batch) -> list[str]:
    require_postgres()
    robotics = day_batch.topics["robotics"]
    subscribers = Subscriber.objects.bulk_create(
        SubscriberFactory.build(email=f"reader{i}@example.org") for i in range(READERS)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber=s, topic=robotics) for s in subscribers
    )
    return sorted(s.email for s in subscribers)


def send_with_two_workers(tmp_path, day_batch, worker_env, before=None) -> float:
    """Send the issue with two worker processes; when it was started (time.time())."""
    with (
        celery_broker(),
        celery_worker(tmp_path, **worker_env) as first,
        celery_worker(tmp_path, flush=False, **worker_env) as second,
    ):
        if before:
            before()
        started = time.time()
        issue = issue_create(batch=day_batch.batch)
        assert issue_start(issue=issue)
        wait_for(
            lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
            timeout=90,
            message=f"{Counter(Delivery.objects.values_list('status', flat=True))}\n"
            f"{first.log()}\n{second.log()}",
        )
        logs = first.log() + second.log()
    assert "send_issue_chunk" in logs
    return started


def assert_each_once(fake, readers) -> None:
    received = Counter(fake.state.recipients())
    assert sorted(received) == readers
    assert set(received.values()) == {1}


def test_two_workers_never_exceed_the_limit_in_any_second(
    tmp_path, day_batch, readers, postmark, worker_env
):
    send_with_two_workers(tmp_path, day_batch, worker_env)
    assert_each_once(postmark, readers)
    arrivals = sorted(postmark.state.arrivals)
    assert postmark.state.peak_per_second() <= LIMIT
    # And not much slower than the limit either: 300 emails in calls of 50, about 1 s apart.
    assert {n for _, n in arrivals} == {LIMIT}
    span = arrivals[-1][0] - arrivals[0][0]
    assert (READERS / LIMIT - 1) <= span <= (READERS / LIMIT - 1) * 1.5 + 1, arrivals


def test_a_429_with_retry_after_pauses_every_worker(
    tmp_path, day_batch, readers, postmark, worker_env
):
    postmark.state.retry_after = "3"

    def refuse_first_call():
        postmark.state.fail_next(429)

    started = send_with_two_workers(tmp_path, day_batch, worker_env, before=refuse_first_call)
    assert_each_once(postmark, readers)
    assert postmark.state.calls["/email/batch"] == READERS / LIMIT + 1  # the refused one
    arrivals = sorted(postmark.state.arrivals)
    # Nothing was taken during the pause: the first accepted call came 3 s after the 429,
    # whichever worker made it, and the limit held afterwards.
    assert arrivals[0][0] - started >= 3.0, arrivals
    assert postmark.state.peak_per_second() <= LIMIT


def test_a_throttled_ses_destination_pauses_every_worker(
    tmp_path, day_batch, readers, limited_ses, ses_worker_env
):
    # One destination of a SendBulkEmail call answered ACCOUNT_THROTTLED (once), the call's
    # others taken. reader0 is in one of the first two claims (rows are claimed in id
    # order), so both workers still have claims to send when SES answers it.
    limited_ses.state.throttled.add("reader0@example.org")

    send_with_two_workers(tmp_path, day_batch, ses_worker_env)

    # Every reader once, the throttled one by its claim's retry: one more call.
    assert_each_once(limited_ses, readers)
    assert limited_ses.state.bulk_calls == READERS / LIMIT + 1
    [throttled_at] = limited_ses.state.throttled_at
    arrivals = sorted(limited_ses.state.arrivals)
    later = [when for when, _ in arrivals if when > throttled_at]
    # A throttled destination pauses the provider's shared budget for DEFAULT_PAUSE_SECONDS
    # (SES gives no Retry-After): no call from either worker reached SES meanwhile, and the
    # claims still to send when it answered, the retry's included, came after it.
    assert len(later) >= READERS / LIMIT - 1, arrivals
    assert later[0] - throttled_at >= rate.DEFAULT_PAUSE_SECONDS, (throttled_at, arrivals)
    assert peak_per_second(arrivals) <= LIMIT


QUOTA_HOLD_SECONDS = 4  # the hold's hour, shortened: only that it holds both workers matters


def test_ses_answering_its_daily_quota_used_up_holds_every_worker(
    tmp_path, day_batch, readers, limited_ses, ses_worker_env, settings
):
    # SES takes two calls' worth, then answers every destination ACCOUNT_DAILY_QUOTA_EXCEEDED.
    # The test stands for the rolling window making room at once, and for the beat's sweeper.
    limited_ses.state.daily_quota = 2 * LIMIT
    settings.DIGEST_REQUEUE_SECONDS = 1
    env = {
        **ses_worker_env,
        "SEND_PROVIDER_QUOTA_RETRY_SECONDS": str(QUOTA_HOLD_SECONDS),
        "SEND_RATE_PARK_AFTER_SECONDS": "1",  # the short hold parks the issue as an hour does
        "DIGEST_REQUEUE_SECONDS": "1",
    }
    with (
        celery_broker(),
        celery_worker(tmp_path, **env) as first,
        celery_worker(tmp_path, flush=False, **env) as second,
    ):
        issue = issue_create(batch=day_batch.batch)
        assert issue_start(issue=issue)
        deadline = time.monotonic() + 90
        while Issue.objects.get(pk=issue.pk).status != Issue.Status.SENT:
            assert time.monotonic() < deadline, (
                f"{Counter(Delivery.objects.values_list('status', flat=True))}\n"
                f"{first.log()}\n{second.log()}"
            )
            if limited_ses.state.quota_exceeded_at:
                limited_ses.state.daily_quota = None
            deliveries_sweep()  # enqueues the waiting rows once the issue's wait is over
            time.sleep(0.2)

    assert_each_once(limited_ses, readers)
    # One call answered so: the other worker's next call, waiting for its turn of the send
    # rate meanwhile, did not go out, and no call of either reached SES until the hold ended.
    [quota_at] = limited_ses.state.quota_exceeded_at
    assert limited_ses.state.bulk_calls == READERS / LIMIT + 1
    arrivals = sorted(limited_ses.state.arrivals)
    later = [when for when, _ in arrivals if when > quota_at]
    assert len(later) == READERS / LIMIT - 2, arrivals
    assert later[0] - quota_at >= QUOTA_HOLD_SECONDS, (quota_at, arrivals)
    # Nothing failed for it, and waiting counted no attempt: each row was tried once.
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
