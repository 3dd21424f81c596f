"""The weekly email: the week's batch gathered from its approved days, sent to the readers who
chose weekly and to no one else, with its own public page and "View in browser" link."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core import mail

from digests.models import BatchEntry, DailyBatch
from digests.weekly import week_batch
from newsletter.composition import messages_per_recipient
from newsletter.models import Delivery, Issue
from newsletter.services.issues import digest_send_for_day, issue_create, issue_start
from subscriptions import schedule
from subscriptions.links import view_token
from tests.factories import (
    BatchEntryFactory,
    DailyBatchFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
)
from tests.newsletter.conftest import tag

pytestmark = pytest.mark.django_db

END = date(2026, 11, 27)  # a Friday
APPROVED, SENT, DRAFT = DailyBatch.Status.APPROVED, DailyBatch.Status.SENT, DailyBatch.Status.DRAFT


@pytest.fixture(autouse=True)
def test_backend(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.SITE_URL = "https://paperboy.example.org"


@pytest.fixture
def topic():
    return TopicFactory(name="Robotics", slug="robotics")


def day_of(day: date, topic, papers: dict[str, int], *, status=APPROVED, **entry_fields):
    """A daily batch of `day` with papers {title: upvotes}; entry_fields: {title: {...}}."""
    batch = DailyBatchFactory(date=day, status=status)
    for rank, (title, upvotes) in enumerate(papers.items(), start=1):
        paper = PaperFactory(title=title, upvotes=upvotes)
        tag(paper, topic)
        BatchEntryFactory(batch=batch, paper=paper, rank=rank, **entry_fields.get(title, {}))
    return batch


def test_the_week_gathers_each_paper_an_editor_let_through_in_its_seven_days_once(topic):
    monday = day_of(
        END - timedelta(days=4),
        topic,
        {"A": 10, "B": 30, "Hidden": 99},
        A={"pinned": True, "editor_note": "Read this one."},
        Hidden={"hidden": True},
    )
    tuesday = day_of(END - timedelta(days=3), topic, {"C": 50}, status=SENT)
    BatchEntryFactory(batch=tuesday, paper=monday.entries.get(paper__title="A").paper, rank=2)
    day_of(END - timedelta(days=2), topic, {"Draft": 80}, status=DRAFT)
    cancelled = day_of(END - timedelta(days=1), topic, {"Cancelled": 70})
    Issue.objects.create(batch=cancelled, status=Issue.Status.CANCELLED)
    day_of(END - timedelta(days=7), topic, {"Last week": 90})
    friday = day_of(END, topic, {"G": 20})

    week = week_batch(end=friday)

    assert (week.kind, week.date, week.status) == ("weekly", END, APPROVED)
    entries = list(BatchEntry.objects.filter(batch=week).order_by("rank").select_related("paper"))
    # The pin first (pinned on its day), then the week's most upvoted.
    assert [e.paper.title for e in entries] == ["A", "C", "B", "G"]
    assert (entries[0].pinned, entries[0].editor_note) == (True, "Read this one.")
    assert week.entry_count == 4
    # Composed once: asked again (another tick, the same day), the same batch.
    assert week_batch(end=friday) == week
    assert BatchEntry.objects.filter(batch=week).count() == 4
    # The daily batch of that date is still the day's; the week is a batch beside it.
    assert DailyBatch.objects.daily().get(date=END) == friday


def test_an_editors_send_reaches_only_the_readers_of_the_batchs_kind(
    topic, django_capture_on_commit_callbacks
):
    daily = SubscriberFactory(topics=[topic], email="daily@example.org")
    weekly = SubscriberFactory(
        topics=[topic], email="weekly@example.org", frequency=schedule.WEEKLY, weekday=4
    )
    day_of(END - timedelta(days=1), topic, {"Thursday paper": 40})
    friday = day_of(END, topic, {"Friday paper": 20})

    with django_capture_on_commit_callbacks(execute=True):
        digest_send_for_day(day=END)
    assert [e.to for e in mail.outbox] == [[daily.email]]

    mail.outbox.clear()
    week = week_batch(end=friday)
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=week))
    (email,) = mail.outbox
    assert email.to == [weekly.email]
    # The daily reader had Friday's paper; the weekly one gets the whole week's.
    assert "Thursday paper" in email.body and "Friday paper" in email.body
    assert email.subject == "Week to Fri 27 Nov: Thursday paper + 1 more"
    assert "Your week in papers · to Fri 27 Nov 2026" in email.body
    assert set(Delivery.objects.values_list("subscriber__email", "issue__batch__kind")) == {
        (daily.email, "daily"),
        (weekly.email, "weekly"),
    }


def test_the_weekly_email_links_to_its_own_page_and_to_the_readers_own_copy(
    client, topic, django_capture_on_commit_callbacks
):
    weekly = SubscriberFactory(
        topics=[topic], email="weekly@example.org", frequency=schedule.WEEKLY, weekday=4
    )
    friday = day_of(END, topic, {"Friday paper": 20})
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=friday))  # nobody: the one reader is weekly
        issue_start(issue=issue_create(batch=week_batch(end=friday)))
    ((_, email),) = [one for m in mail.outbox for one in messages_per_recipient(m)]

    yours = f"/digests/weeks/{END.isoformat()}/yours/{view_token(weekly)}/"
    assert f"View in browser: https://paperboy.example.org{yours}" in email.body
    page = client.get(yours)
    assert page.status_code == 200 and "Friday paper" in page.content.decode()
    # The daily route does not show the weekly issue: nothing of that day went to this reader.
    daily_yours = f"/digests/{END.isoformat()}/yours/{view_token(weekly)}/"
    assert client.get(daily_yours).status_code == 404

    public = client.get(f"/digests/weeks/{END.isoformat()}/")
    assert public.status_code == 200
    assert "The week in papers · to Friday 27 November 2026" in public.content.decode()
    assert f"https://paperboy.example.org/digests/weeks/{END.isoformat()}/" in email.body
    # The archive and its feed list the days (Friday once); the week repeats their papers.
    index = client.get("/digests/").content.decode()
    assert index.count(f'href="/digests/{END.isoformat()}/"') == 1
    assert client.get("/digests/feed.atom").content.decode().count("<entry>") == 1
