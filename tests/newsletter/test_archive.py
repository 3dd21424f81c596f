from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from digests.models import BatchEntry, DailyBatch
from newsletter.models import Issue
from newsletter.services.issues import issue_create, issue_start
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(day_batch, django_capture_on_commit_callbacks, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=day_batch.batch))
    return day_batch


def test_it_lists_published_days_and_shows_one(client, published):
    index = client.get("/digests/")
    assert index.status_code == 200
    assert "/digests/2026-03-10/" in index.content.decode()

    day = client.get("/digests/2026-03-10/").content.decode()
    for name in ("r1", "a1", "v1"):  # the whole day, not one subscriber's part
        assert f"Paper {name}" in day


def test_it_hides_hidden_papers_and_unpublished_days(client, published):
    hidden = published.papers["v1"]
    BatchEntry.objects.filter(paper=hidden).update(hidden=True)
    assert "Paper v1" not in client.get("/digests/2026-03-10/").content.decode()
    Issue.objects.update(status=Issue.Status.SCHEDULED)
    assert client.get("/digests/2026-03-10/").status_code == 404
    assert client.get("/digests/not-a-date/").status_code == 404
    assert client.get("/digests/2030-01-01/").status_code == 404


def test_it_publishes_an_atom_feed(client, published):
    response = client.get("/digests/feed.atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    body = response.content.decode()
    assert "<feed" in body and "/digests/2026-03-10/" in body and "Paper r1" in body


def test_the_command_sends_the_day_once_and_summarizes(day_batch, settings, capsys):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    SubscriberFactory(topics=[day_batch.topics["agents"]])

    call_command("send_digest", "--date", "2026-03-10", "--dry-run")
    dry = capsys.readouterr().out
    assert "would send 2, skip 0" in dry and not Issue.objects.exists()

    # Deliberately not wrapped in on-commit capture: the command must work in a real commit.
    call_command("send_digest", "--date", "2026-03-10", "--no-wait")
    out = capsys.readouterr().out
    assert "Digest of 2026-03-10" in out
    assert Issue.objects.get().recipient_count == 2


def test_the_command_refuses_a_day_without_an_approved_batch(day_batch):
    DailyBatch.objects.update(status=DailyBatch.Status.DRAFT)
    with pytest.raises(CommandError, match="no approved batch"):
        call_command("send_digest", "--date", "2026-03-10")
    with pytest.raises(CommandError, match="not YYYY-MM-DD"):
        call_command("send_digest", "--date", "10/03/2026")


@pytest.mark.django_db(transaction=True)
def test_the_command_shows_progress_until_the_issue_is_sent(day_batch, settings, capsys):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    SubscriberFactory(topics=[day_batch.topics["vision"]])

    call_command("send_digest", "--date", "2026-03-10")

    out = capsys.readouterr().out
    assert "] 2/2" in out  # the progress bar reached the end
    assert "sent; sent 2, unknown 0, failed 0, skipped 0, pending 0" in out


def test_a_subscribers_data_export_lists_their_digests(published):
    from subscriptions.models import Subscriber
    from subscriptions.services import subscriber_export

    reader = Subscriber.objects.get()
    export = subscriber_export(subscriber=reader)
    [digest] = export["deliveries"]
    assert digest["digest_date"] == "2026-03-10" and digest["status"] == "sent"
    assert digest["papers"][0] == published.papers["r1"].arxiv_id
