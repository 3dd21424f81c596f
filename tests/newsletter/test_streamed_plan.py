"""An issue planned and written a chunk of readers at a time (``issue_plan_chunks``): the same
rows and contents as a plan made whole, each content once, the editors' counts right, and a
planner that dies mid-plan leaves no issue behind. The same for an editor's send to everyone
on an issue the due tick already gave some readers (``issue_send_everyone``): joined a chunk
at a time, and a planner that dies mid-plan leaves the issue as it was."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail

from newsletter.models import Delivery, Issue, IssueContent
from newsletter.services import issues, planning
from newsletter.services.issues import digest_send_for_day, issue_create, issue_send_everyone
from newsletter.services.planning import issue_plan
from newsletter.services.ticks import due_tick
from subscriptions.models import Subscriber
from subscriptions.profiles import profile_update
from tests.factories import SubscriberFactory
from tests.newsletter.conftest import DAY

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(day_batch, settings):
    """Readers whose equal selections fall in different chunks of two: three who wrote the
    same words (ranked one by one, as personal readers are), three who follow robotics only
    (ranked once, shared) and one whom nothing matches (skipped)."""
    settings.DIGEST_NO_MATCH = "skip"
    t = day_batch.topics
    readers = []
    for i in range(3):
        reader = SubscriberFactory(email=f"words{i}@example.org", topics=[t["agents"]])
        profile_update(subscriber=reader, interests="robot hands", follows=[], muted=[], focus=50)
        readers.append(reader)
        readers.append(SubscriberFactory(email=f"robots{i}@example.org", topics=[t["robotics"]]))
    readers.append(SubscriberFactory(email="nothing@example.org", topics=[]))
    return readers


def rows_of(issue: Issue) -> dict[int, tuple[str, str]]:
    return {
        subscriber: (status, key)
        for subscriber, status, key in Delivery.objects.filter(issue=issue).values_list(
            "subscriber_id", "status", "content_key"
        )
    }


def test_it_writes_the_same_rows_in_chunks_as_a_whole_plan_with_each_content_once(
    day_batch, audience, monkeypatch
):
    monkeypatch.setattr(planning, "PLAN_CHUNK", 2)
    whole = issue_plan(batch=day_batch.batch)
    expected = {s: (st, k) for s, st, _, k in whole.rows}
    assert len(whole.contents) == 2  # the words readers' content and the robotics one

    issue = issue_create(batch=day_batch.batch)

    assert rows_of(issue) == expected
    keys = set(IssueContent.objects.filter(issue=issue).values_list("key", flat=True))
    assert keys == whole.contents  # each stored once though four chunks had one
    issue.refresh_from_db()
    assert (issue.recipient_count, issue.skipped_count, issue.content_count) == (6, 1, 2)


def test_a_planner_that_dies_mid_plan_leaves_no_issue_and_the_next_plans_it_whole(
    day_batch, audience, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    monkeypatch.setattr(planning, "PLAN_CHUNK", 2)
    write = issues.deliveries_write
    chunks_written = []

    def dies_after_two_chunks(*, issue, plan):
        if len(chunks_written) == 2:
            raise SystemExit("the planner's process ends here")
        chunks_written.append(write(issue=issue, plan=plan))
        return chunks_written[-1]

    monkeypatch.setattr(issues, "deliveries_write", dies_after_two_chunks)
    with pytest.raises(SystemExit):
        issue_create(batch=day_batch.batch)
    assert len(chunks_written) == 2  # four readers' rows were written, then rolled back
    assert not Issue.objects.exists()
    assert not Delivery.objects.exists() and not IssueContent.objects.exists()

    monkeypatch.setattr(issues, "deliveries_write", write)
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        issue = digest_send_for_day(day=DAY)  # its chunk tasks run in-process on commit
    issue.refresh_from_db()
    assert (issue.recipient_count, issue.skipped_count, issue.content_count) == (6, 1, 2)
    sent_to = sorted(address for message in mail.outbox for address in message.to)
    expected = sorted(r.email for r in audience if r.email != "nothing@example.org")
    assert sent_to == expected  # each reader once, the skipped one not at all
    statuses = Delivery.objects.filter(issue=issue).values_list("status", flat=True)
    assert sorted(statuses) == [Delivery.Status.SENT] * 6 + [Delivery.Status.SKIPPED]


TICK_AT = datetime(DAY.year, DAY.month, DAY.day, 7, 0, tzinfo=UTC)  # the default 07:00 UTC


@pytest.fixture
def ticked(audience, settings, django_capture_on_commit_callbacks):
    """The due tick has sent the first words reader the day's issue (the only one due), so the
    issue holds its row and the words content, not the robotics one, and is sent."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    first = audience[0]
    Subscriber.objects.filter(pk=first.pk).update(next_due_at=TICK_AT)
    with time_machine.travel(TICK_AT, tick=False), django_capture_on_commit_callbacks(execute=True):
        report = due_tick()
    issue = Issue.objects.get(pk=report.issue_id)
    assert [address for message in mail.outbox for address in message.to] == [first.email]
    assert issue.status == Issue.Status.SENT
    assert (issue.recipient_count, issue.skipped_count, issue.content_count) == (1, 0, 1)
    mail.outbox = []
    return issue


def state_of(issue: Issue) -> tuple:
    """Everything a send to everyone may change: the issue's row, its rows and contents."""
    issue = Issue.objects.get(pk=issue.pk)
    rows = sorted(
        Delivery.objects.filter(issue=issue).values_list(
            "pk", "subscriber_id", "status", "content_key", "period"
        )
    )
    keys = sorted(IssueContent.objects.filter(issue=issue).values_list("key", flat=True))
    counts = (issue.recipient_count, issue.skipped_count, issue.content_count)
    return issue.status, issue.started_at, issue.finished_at, counts, rows, keys


@pytest.fixture
def enqueued(monkeypatch):
    """(issue, pending) of every issue_chunks_enqueue call; the real one runs."""
    calls = []
    enqueue = issues.issue_chunks_enqueue

    def recorded(*, issue_id, pending):
        calls.append((issue_id, pending))
        enqueue(issue_id=issue_id, pending=pending)

    monkeypatch.setattr(issues, "issue_chunks_enqueue", recorded)
    return calls


def test_an_editors_send_to_everyone_joins_the_others_chunk_by_chunk_each_content_counted_once(
    day_batch, audience, ticked, monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(planning, "PLAN_CHUNK", 2)
    join = issues.deliveries_join
    joined_chunks = []

    def seen(*, issue, plan, periods=None):
        joined_chunks.append(list(plan.subscriber_ids))
        return join(issue=issue, plan=plan, periods=periods)

    monkeypatch.setattr(issues, "deliveries_join", seen)
    tick_row = Delivery.objects.get(issue=ticked)
    whole = issue_plan(batch=day_batch.batch)
    expected = {s: k for s, _, _, k in whole.rows}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        added = issue_send_everyone(issue=ticked)

    assert added == 6  # five to send, one skipped; the ticked reader is not added again
    # Chunks of two in subscriber order, the ticked reader left out of the first: the robotics
    # content is new in the first chunk and seen again in the next two.
    ids = [r.pk for r in audience]
    assert joined_chunks == [[ids[1]], ids[2:4], ids[4:6], [ids[6]]]
    assert {s: key for s, (_, key) in rows_of(ticked).items()} == expected
    assert Delivery.objects.get(issue=ticked, subscriber=audience[0]) == tick_row
    assert Delivery.objects.get(pk=tick_row.pk).period == tick_row.period != ""
    keys = set(IssueContent.objects.filter(issue=ticked).values_list("key", flat=True))
    assert keys == whole.contents
    ticked.refresh_from_db()
    # Counted per chunk, the robotics content would make the count 4; it is 2.
    assert (ticked.recipient_count, ticked.skipped_count, ticked.content_count) == (6, 1, 2)
    # One enqueue on commit for the five rows added, not one per chunk; they were all sent.
    assert len(callbacks) == 1 and enqueued == [(ticked.pk, 5)]
    sent_to = sorted(address for message in mail.outbox for address in message.to)
    assert sent_to == sorted(r.email for r in audience[1:6])
    statuses = Delivery.objects.filter(issue=ticked).values_list("status", flat=True)
    assert sorted(statuses) == [Delivery.Status.SENT] * 6 + [Delivery.Status.SKIPPED]
    assert ticked.status == Issue.Status.SENT  # reopened for the five, then finished again


def test_a_send_to_everyone_that_dies_mid_plan_leaves_the_issue_as_it_was(
    day_batch, audience, ticked, monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(planning, "PLAN_CHUNK", 2)
    plan_chunks = issues.issue_plan_chunks
    chunks_planned = []

    def dies_in_the_second_chunk(**kwargs):
        for plan in plan_chunks(**kwargs):
            if chunks_planned:
                raise SystemExit("the planner's process ends here")
            chunks_planned.append(plan)
            yield plan

    before = state_of(ticked)
    monkeypatch.setattr(issues, "issue_plan_chunks", dies_in_the_second_chunk)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(SystemExit),
    ):
        issue_send_everyone(issue=ticked)
    assert len(chunks_planned) == 1  # its reader's row was written, then rolled back
    assert state_of(ticked) == before
    assert callbacks == [] and enqueued == [] and mail.outbox == []

    monkeypatch.setattr(issues, "issue_plan_chunks", plan_chunks)
    with django_capture_on_commit_callbacks(execute=True):
        assert issue_send_everyone(issue=ticked) == 6  # planned from the start
    ticked.refresh_from_db()
    assert (ticked.recipient_count, ticked.skipped_count, ticked.content_count) == (6, 1, 2)
    assert enqueued == [(ticked.pk, 5)]
    sent_to = sorted(address for message in mail.outbox for address in message.to)
    assert sent_to == sorted(r.email for r in audience[1:6])


def test_a_second_send_to_everyone_adds_nothing(
    day_batch, audience, ticked, monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(planning, "PLAN_CHUNK", 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert issue_send_everyone(issue=ticked) == 6
    after_first = state_of(ticked)
    mail.outbox = []

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert issue_send_everyone(issue=ticked) == 0

    assert state_of(ticked) == after_first
    assert callbacks == [] and enqueued == [(ticked.pk, 5)] and mail.outbox == []
