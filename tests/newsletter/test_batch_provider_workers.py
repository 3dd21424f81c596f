"""Mailgun and SendGrid with real Celery workers: a worker killed mid-call leaves `unknown`.

Neither provider can be asked which messages of a call it took, so the rows of a call that
was taken but never answered (the worker died waiting) must end `unknown`, possibly sent, and
never be sent again; every other reader gets exactly one email. As tests/newsletter/
test_workers.py does for Postmark: a real worker on PostgreSQL and Redis, SIGKILL, a second
worker and the sweeper.
"""

from __future__ import annotations

from collections import Counter

import pytest

from devtools.fakes.mailgun import FakeMailgun
from devtools.fakes.sendgrid import FakeSendGrid
from newsletter.models import Delivery, Issue
from newsletter.services.issues import issue_create, issue_start
from subscriptions.models import Subscriber
from tests.external import celery_broker, celery_worker, require_postgres, require_redis, wait_for
from tests.factories import SubscriberFactory
from tests.newsletter.test_workers import LEASE, MARGIN, REQUEUE, TIMEOUT, sweep_until_done

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
READERS = 40
CHUNK = 10


@pytest.fixture(params=["mailgun", "sendgrid"])
def provider(request, settings):
    fake_class = FakeMailgun if request.param == "mailgun" else FakeSendGrid
    with fake_class() as fake:
        # Each call is taken at once and answered half a second later (within the client's
        # timeout): a worker killed meanwhile never learns that it was taken.
        fake.state.answer_delay = 0.5
        settings.ANYMAIL_ESP = request.param
        settings.DIGEST_BATCH_SIZE = CHUNK
        settings.DIGEST_CLAIM_LEASE_SECONDS = LEASE
        settings.ANYMAIL_TIMEOUT_SECONDS = TIMEOUT
        settings.DIGEST_LEASE_MARGIN_SECONDS = MARGIN
        fake.env = {
            "ANYMAIL_ESP": request.param,
            "ANYMAIL_API_KEY": fake.state.api_key,
            "ANYMAIL_API_URL": fake.url,
            "DIGEST_BATCH_SIZE": str(CHUNK),
            "DIGEST_CLAIM_LEASE_SECONDS": str(LEASE),
            "ANYMAIL_TIMEOUT_SECONDS": str(TIMEOUT),
            "DIGEST_LEASE_MARGIN_SECONDS": str(MARGIN),
            "DIGEST_REQUEUE_SECONDS": str(REQUEUE),
            "DIGEST_RETRY_BACKOFF_SECONDS": "1",
            "SITE_URL": "https://paperboy.example.org",
        }
        yield fake


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
    return sorted(s.email for s in subscribers)


def statuses_of(issue) -> Counter:
    return Counter(Delivery.objects.filter(issue=issue).values_list("status", flat=True))


def test_a_worker_killed_mid_call_leaves_unknown_never_resent(
    tmp_path, day_batch, readers, provider
):
    with celery_broker():
        with celery_worker(tmp_path, **provider.env) as first:
            issue = issue_create(batch=day_batch.batch)
            assert issue_start(issue=issue)
            # The first call is taken; its answer is half a second away.
            wait_for(lambda: len(provider.state.copies) >= CHUNK, timeout=60, message=first.log())
            first.kill()  # SIGKILL to the worker and its pool, waiting for the answer
        taken = set(provider.state.recipients())
        assert len(taken) < READERS, "the worker finished before it could be killed"

        with celery_worker(tmp_path, flush=False, **provider.env) as second:
            sweep_until_done(issue)
            wait_for(
                lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
                timeout=60,
                message=f"{statuses_of(issue)}\n{second.log()}",
            )

    received = Counter(provider.state.recipients())
    assert sorted(received) == readers  # nobody lost
    assert set(received.values()) == {1}, received.most_common(3)  # nobody twice
    unknown = set(
        Delivery.objects.filter(issue=issue, status=Delivery.Status.UNKNOWN).values_list(
            "subscriber__email", flat=True
        )
    )
    # The killed call's rows: possibly sent, not re-sent; the provider did take them.
    assert unknown and unknown <= taken
    statuses = statuses_of(issue)
    sent = READERS - len(unknown)
    assert statuses == {Delivery.Status.UNKNOWN: len(unknown), Delivery.Status.SENT: sent}
