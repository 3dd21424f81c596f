"""Exactly once through every provider but Postmark (tests/newsletter/test_workers.py), with
real Celery workers on PostgreSQL and Redis, each against its fake over HTTP (SMTP: the local
SMTP server).

None of these providers can be asked which messages of a call it took. So a worker killed
(SIGKILL) while a call it made was taken but not yet answered must leave that claim's rows
`unknown`: possibly sent, never sent again, for an operator to check in the provider's own
log. Every other reader gets exactly one email. Where the provider gets one call per copy
(newsletter/providers.py ``merges`` and ``one_call_per_chunk`` false; Resend's copies share
one call), the rows of the killed claim not yet sent are `unknown` too: the worker recorded
nothing of the claim before it died, so which copies went out is not known here either. And
a storm of 429 and 503 answers is ridden out by the retries: everybody gets exactly one email,
nobody is failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.fakes import amazon_ses, brevo, mailgun, mailjet, resend, sendgrid, sparkpost
from devtools.fakes.smtp import FakeSmtp
from newsletter.models import Delivery, Issue
from newsletter.providers import PROVIDERS
from newsletter.services.issues import issue_create, issue_start
from subscriptions.models import Subscriber
from tests.external import celery_broker, celery_worker, require_postgres, require_redis, wait_for
from tests.factories import SubscriberFactory
from tests.newsletter.test_workers import LEASE, MARGIN, REQUEUE, TIMEOUT, sweep_until_done

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
READERS = 40
CHUNK = 10


@dataclass(frozen=True)
class Setup:
    """How a provider's fake is started and a worker pointed at it."""

    fake_class: type
    key: str = ""  # ANYMAIL_API_KEY
    settings: tuple[tuple[str, str], ...] = ()

    def env(self, name: str, fake: Any) -> dict[str, str]:
        env = {"ANYMAIL_ESP": name, **dict(self.settings)}
        if self.key:
            env["ANYMAIL_API_KEY"] = self.key
        if name == "smtp":
            env.update(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(fake.port), EMAIL_USE_TLS="false")
        else:
            env["ANYMAIL_API_URL"] = fake.url
        return env


SETUPS = {
    "mailgun": Setup(mailgun.FakeMailgun, mailgun.API_KEY),
    "sendgrid": Setup(sendgrid.FakeSendGrid, sendgrid.API_KEY),
    "amazon_ses": Setup(
        amazon_ses.FakeAmazonSes,
        settings=(
            ("AWS_ACCESS_KEY_ID", amazon_ses.ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", amazon_ses.SECRET_ACCESS_KEY),
            ("AWS_REGION", amazon_ses.REGION),
        ),
    ),
    "resend": Setup(resend.FakeResend, resend.API_KEY),
    "brevo": Setup(brevo.FakeBrevo, brevo.API_KEY),
    "mailjet": Setup(
        mailjet.FakeMailjet, mailjet.API_KEY, (("ANYMAIL_API_SECRET", mailjet.SECRET_KEY),)
    ),
    "sparkpost": Setup(sparkpost.FakeSparkPost, sparkpost.API_KEY),
    "smtp": Setup(FakeSmtp),
}


def storm(name: str, fake: Any, answers: list[int]) -> None:
    """Make the fake answer its next calls with these HTTP statuses (SMTP: 4xx replies)."""
    if name == "smtp":
        fake.state.failures.extend("451 4.3.0 try again later" for _ in answers)
    else:
        fake.state.fail_next(*answers)


@pytest.fixture(params=sorted(SETUPS))
def provider(request, settings):
    name = request.param
    setup = SETUPS[name]
    with setup.fake_class() as fake:
        settings.ANYMAIL_ESP = name
        fake.name, fake.env = (
            name,
            {
                **setup.env(name, fake),
                "DIGEST_BATCH_SIZE": str(CHUNK),
                "DIGEST_CLAIM_LEASE_SECONDS": str(LEASE),
                "ANYMAIL_TIMEOUT_SECONDS": str(TIMEOUT),
                "DIGEST_LEASE_MARGIN_SECONDS": str(MARGIN),
                "DIGEST_REQUEUE_SECONDS": str(REQUEUE),
                "DIGEST_RETRY_BACKOFF_SECONDS": "1",
                "SITE_URL": "https://paperboy.example.org",
            },
        )
        settings.DIGEST_BATCH_SIZE = CHUNK
        settings.DIGEST_CLAIM_LEASE_SECONDS = LEASE
        settings.ANYMAIL_TIMEOUT_SECONDS = TIMEOUT
        settings.DIGEST_LEASE_MARGIN_SECONDS = MARGIN
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


def emails_of(issue, status: str) -> set[str]:
    rows = Delivery.objects.filter(issue=issue, status=status)
    return set(rows.values_list("subscriber__email", flat=True))


def issue_sent_wait(issue, worker) -> None:
    wait_for(
        lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
        timeout=90,
        message=f"{statuses_of(issue)}\n{worker.log()}",
    )


def test_a_worker_killed_mid_call_leaves_unknown_never_resent(
    tmp_path, day_batch, readers, provider
):
    # Each call is taken at once and answered half a second later (within the client's
    # timeout): a worker killed meanwhile never learns that it was taken.
    provider.counters.answer_delay = 0.5
    with celery_broker():
        with celery_worker(tmp_path, **provider.env) as first:
            issue = issue_create(batch=day_batch.batch)
            assert issue_start(issue=issue)
            wait_for(lambda: provider.state.recipients(), timeout=60, message=first.log())
            first.kill()  # SIGKILL to the worker and its pool, waiting for the answer
        taken = set(provider.state.recipients())
        assert len(taken) < READERS, "the worker finished before it could be killed"
        provider.counters.answer_delay = 0

        with celery_worker(tmp_path, flush=False, **provider.env) as second:
            sweep_until_done(issue)
            issue_sent_wait(issue, second)

    received = Counter(provider.state.recipients())
    assert set(received.values()) == {1}, received.most_common(3)  # nobody twice
    unknown = emails_of(issue, Delivery.Status.UNKNOWN)
    sent = emails_of(issue, Delivery.Status.SENT)
    assert statuses_of(issue) == {Delivery.Status.UNKNOWN: len(unknown), "sent": len(sent)}
    assert sent <= set(received)  # every row recorded sent was sent, once
    # Possibly sent, not re-sent: the killed call's rows, at most one claim's.
    assert taken & unknown and len(unknown) <= CHUNK
    row = PROVIDERS[provider.name]
    if row.merges or row.one_call_per_chunk:
        assert unknown <= taken  # one call per chunk: the call it died in, all taken
    assert set(received) - sent <= unknown  # nobody the records say nothing of
    assert sorted(sent | unknown) == readers  # nobody lost from view


def test_a_storm_of_429_and_503_answers_sends_everyone_exactly_once(
    tmp_path, day_batch, readers, provider
):
    storm(provider.name, provider, [429, 503, 503, 429, 503, 429])
    with celery_broker(), celery_worker(tmp_path, **provider.env) as worker:
        issue = issue_create(batch=day_batch.batch)
        assert issue_start(issue=issue)
        issue_sent_wait(issue, worker)

    received = Counter(provider.state.recipients())
    assert sorted(received) == readers  # nobody lost
    assert set(received.values()) == {1}, received.most_common(3)  # nobody twice
    assert statuses_of(issue) == {Delivery.Status.SENT: READERS}
    retried = Delivery.objects.filter(issue=issue, attempts__gt=1).count()
    assert retried > 0, "the storm did not hit any send"
