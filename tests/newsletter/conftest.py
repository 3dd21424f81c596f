from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
import redis

from config.mail_providers import provider_settings
from devtools.fakes import resend as resend_fake
from devtools.fakes.amazon_ses import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, FakeAmazonSes
from digests.models import DailyBatch, PaperTopic, Topic
from newsletter.models import IssueContent
from newsletter.services.issues import issue_create, issue_start
from tests.external import require_redis
from tests.factories import BatchEntryFactory, DailyBatchFactory, PaperFactory, TopicFactory

DAY = dt.date(2026, 3, 10)  # a Tuesday


@dataclass
class DayBatch:
    batch: DailyBatch
    topics: dict[str, Topic]
    papers: dict[str, object]


def tag(paper, *topics: Topic) -> None:
    for topic in topics:
        PaperTopic.objects.get_or_create(paper=paper, topic=topic, defaults={"reason": "test"})


def papers_of(delivery) -> list[int]:
    """The paper ids of a delivery's email, in order (from its issue's content)."""
    content = IssueContent.objects.get(issue_id=delivery.issue_id, key=delivery.content_key)
    return [paper_id for paper_id, _ in content.selection]


@pytest.fixture
def day_batch(db) -> DayBatch:
    """An approved batch: robotics papers r1-r3, agents a1-a2, vision v1, one both r+a."""
    topics = {
        slug: TopicFactory(name=slug.capitalize(), slug=slug)
        for slug in ("robotics", "agents", "vision")
    }
    batch = DailyBatchFactory(date=DAY, status=DailyBatch.Status.APPROVED)
    layout = {
        "r1": (["robotics"], 120),
        "r2": (["robotics"], 60),
        "r3": (["robotics"], 5),
        "a1": (["agents"], 90),
        "a2": (["agents"], 30),
        "v1": (["vision"], 300),
        "ra": (["robotics", "agents"], 40),
    }
    papers = {}
    for rank, (name, (slugs, upvotes)) in enumerate(layout.items(), start=1):
        paper = PaperFactory(title=f"Paper {name}", upvotes=upvotes)
        tag(paper, *(topics[s] for s in slugs))
        BatchEntryFactory(batch=batch, paper=paper, rank=rank)
        papers[name] = paper
    return DayBatch(batch=batch, topics=topics, papers=papers)


@pytest.fixture
def sending(day_batch, django_capture_on_commit_callbacks):
    """Starts the day's issue and returns it in 'sending' state; its chunk tasks are not run,
    so the test sends them by hand (deliveries_send_chunk) and sees each call."""

    def start():
        issue = issue_create(batch=day_batch.batch)
        with django_capture_on_commit_callbacks(execute=False):
            assert issue_start(issue=issue)
        return issue

    return start


@pytest.fixture
def resend(settings):
    """ANYMAIL_ESP=resend: Paperboy's Resend backend (newsletter/resend.py, on Anymail's)
    against the local fake."""
    with resend_fake.FakeResend() as fake:
        settings.ANYMAIL_ESP = "resend"
        settings.EMAIL_BACKEND = "newsletter.resend.ResendBatchEmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "RESEND_API_KEY": resend_fake.API_KEY,
            "RESEND_API_URL": fake.url,
        }
        settings.SITE_URL = "https://paperboy.example.org"
        yield fake


def ses_configure(settings, monkeypatch, fake: FakeAmazonSes) -> None:
    """ANYMAIL_ESP=amazon_ses against `fake`, through the same settings code as production:
    region, endpoint and retries."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("ANYMAIL_API_URL", fake.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    anymail = {k: v for k, v in settings.ANYMAIL.items() if not k.startswith("AMAZON_SES")}
    backend, _ = provider_settings("amazon_ses", {"amazon_ses": None}, anymail)
    settings.ANYMAIL_ESP = "amazon_ses"
    settings.EMAIL_BACKEND = backend
    settings.ANYMAIL = anymail
    settings.SITE_URL = "https://paperboy.example.org"


@pytest.fixture
def ses(settings, monkeypatch):
    """ANYMAIL_ESP=amazon_ses: Paperboy's SES backend and boto3 (SendBulkEmail, one call per
    content's readers) against the local fake."""
    with FakeAmazonSes() as fake:
        ses_configure(settings, monkeypatch, fake)
        yield fake


@pytest.fixture
def redis_url(settings):
    """The send rate's Redis, its budgets emptied: each test starts with the whole rate."""
    url = require_redis()
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("paperboy:rate:*"):
        client.delete(key)
    settings.SEND_RATE_REDIS_URL = url
    return url
