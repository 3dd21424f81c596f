"""Issues, deliveries and the dashboard as an editor."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from newsletter.models import Delivery, Issue
from newsletter.selectors import STAT_COUNTS, dashboard_series, issue_rate, issue_stats
from newsletter.services.issues import digest_send_for_day
from subscriptions.services import subscriber_unsubscribe
from tests.admin.conftest import logged
from tests.factories import SubscriberFactory
from tests.newsletter.conftest import DAY

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_issue(day_batch, django_capture_on_commit_callbacks):
    robotics = day_batch.topics["robotics"]
    people = [SubscriberFactory(email=f"r{n}@example.org", topics=[robotics]) for n in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        issue = digest_send_for_day(day=DAY)
    rows = list(Delivery.objects.filter(issue=issue).order_by("subscriber__email"))
    now = timezone.now()
    Delivery.objects.filter(pk=rows[0].pk).update(opened_at=now, clicked_at=now)
    Delivery.objects.filter(pk=rows[1].pk).update(opened_at=now)
    Delivery.objects.filter(pk=rows[2].pk).update(status="bounced", bounced_at=now)
    Delivery.objects.filter(pk=rows[3].pk).update(
        status="failed", sent_at=None, last_error="provider refused"
    )
    return issue, people


def test_the_issue_list_counts_and_rates_match_issue_stats(editor_client, sent_issue):
    issue, _ = sent_issue
    page = editor_client.get("/admin/newsletter/issue/")
    assert page.status_code == 200
    [row] = page.context["cl"].result_list
    stats = issue_stats(issue)
    assert {name: getattr(row, f"c_{name}") for name in STAT_COUNTS} == {
        name: stats[name] for name in STAT_COUNTS
    }
    assert (stats["sent"], stats["failed"], stats["bounced"], stats["opened"]) == (3, 1, 1, 2)
    for name in ("bounced", "complained", "opened", "clicked"):
        assert issue_rate(row, name) == stats[f"{name}_rate"]
    assert b"50.0" in page.content  # opened: 2 of 4 handed over
    assert b"status__exact=failed" in page.content
    detail = editor_client.get(f"/admin/newsletter/issue/{issue.pk}/change/")
    assert b'id="issue-stats"' in detail.content


def test_it_retries_failed_deliveries_and_logs_each(
    editor_client, editor, sent_issue, django_capture_on_commit_callbacks
):
    issue, _ = sent_issue
    failed = Delivery.objects.get(status="failed")
    listing = editor_client.get("/admin/newsletter/delivery/", {"status__exact": "failed"})
    assert [d.pk for d in listing.context["cl"].result_list] == [failed.pk]
    mail.outbox = []

    everyone = list(Delivery.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(
            "/admin/newsletter/delivery/", {"action": "retry", "_selected_action": everyone}
        )

    failed.refresh_from_db()
    assert failed.status == Delivery.Status.SENT
    assert [m.to for m in mail.outbox] == [[failed.subscriber.email]]  # only the failed one
    assert logged(editor, failed) == ["Retried"]
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT


def test_the_dashboard_draws_subscribers_sends_and_opens(editor_client, sent_issue):
    _, people = sent_issue
    subscriber_unsubscribe(subscriber=people[4])
    page = editor_client.get("/admin/newsletter/issue/dashboard/", {"days": "90"})
    assert page.status_code == 200
    data = page.context["data"]
    assert len(data.days) == 90 and data.days[-1] == timezone.localdate()
    assert data.subscribers[-1] == 4  # five confirmed today, one left
    assert data.sends[-1] == 4 and data.opens[-1] == 2  # the bounced one was handed over too
    content = page.content.decode()
    assert content.count("<svg") >= 3 + 1  # two charts (the admin's icons add the rest)
    assert 'aria-label="Subscribers, last 90 days"' in content
    assert "<script" not in content.split('id="content-main"')[1]
    assert editor_client.get("/admin/newsletter/issue/dashboard/").context["days"] == 30
    assert b"/admin/newsletter/issue/dashboard/" in editor_client.get("/admin/").content


def test_the_dashboard_series_counts_by_day():
    today = dt.date(2026, 3, 10)
    tz = timezone.get_current_timezone()
    at = lambda d: dt.datetime.combine(d, dt.time(12), tzinfo=tz)  # noqa: E731
    SubscriberFactory(created_at=at(today - dt.timedelta(days=40)))
    joined = SubscriberFactory(created_at=at(today - dt.timedelta(days=2)))
    SubscriberFactory(created_at=at(today), pending=True)  # not confirmed: not counted
    left = SubscriberFactory(created_at=at(today - dt.timedelta(days=50)))
    left.status, left.unsubscribed_at = "unsubscribed", at(today - dt.timedelta(days=1))
    left.save()
    series = dashboard_series(days=30, today=today)
    assert series.subscribers[-4:] == [2, 3, 2, 2]
    assert joined.confirmed_at.date() == today - dt.timedelta(days=2)
    assert sum(series.sends) == 0


@pytest.mark.parametrize(
    ("esp", "says"),
    [
        ("postmark", b"postmark is asked which messages it accepted"),
        ("resend", b"the deliveries of the call it died in (up to 100, one claim)"),
        ("smtp", b"marked unknown, never re-sent"),
        ("mailgun", b"the deliveries of the call it died in are marked unknown"),
        ("amazon_ses", b"the deliveries of the claim it died in (up to 500, in calls of 50)"),
    ],
)
def test_the_issue_page_says_what_a_crash_mid_send_leaves(
    editor_client, sent_issue, settings, esp, says
):
    issue, _ = sent_issue
    settings.ANYMAIL_ESP = esp
    detail = editor_client.get(f"/admin/newsletter/issue/{issue.pk}/change/")
    assert says in detail.content
