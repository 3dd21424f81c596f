"""An issue planned and written a chunk of readers at a time (``issue_plan_chunks``): the same
rows and contents as a plan made whole, each content once, the editors' counts right, and a
planner that dies mid-plan leaves no issue behind."""

from __future__ import annotations

import pytest
from django.core import mail

from newsletter.models import Delivery, Issue, IssueContent
from newsletter.services import issues, planning
from newsletter.services.issues import digest_send_for_day, issue_create
from newsletter.services.planning import issue_plan
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
