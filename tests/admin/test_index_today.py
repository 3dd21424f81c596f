"""The admin says Paperboy and opens with today's batch, what needs doing and the last figures."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from bs4 import BeautifulSoup
from django.utils import timezone

from config.schedules import schedules_install
from digests.models import DailyBatch
from newsletter.models import Delivery, Issue
from tests.factories import DailyBatchFactory, SubscriberFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)  # a Tuesday; the send cron is 13:00 UTC


def today_module(editor_client) -> str:
    page = editor_client.get("/admin/")
    soup = BeautifulSoup(page.content.decode(), "html.parser")
    assert soup.title.get_text().endswith("Paperboy admin")
    assert soup.select_one("#site-name").get_text(strip=True) == "Paperboy"
    return " ".join(soup.select_one("#paperboy-today").get_text().split())


@time_machine.travel(NOW, tick=False)
def test_it_opens_with_the_draft_to_approve_the_send_time_and_the_last_issue(editor_client):
    schedules_install()
    assert "not fetched yet" in today_module(editor_client)

    last = DailyBatchFactory(date=dt.date(2026, 3, 9), status=DailyBatch.Status.SENT)
    issue = Issue.objects.create(batch=last, status=Issue.Status.SENT, recipient_count=4)
    for n in range(4):
        Delivery.objects.create(
            issue=issue,
            subscriber=SubscriberFactory(),
            status=Delivery.Status.SENT,
            sent_at=timezone.now(),
            opened_at=timezone.now() if n < 2 else None,
        )
    DailyBatchFactory(date=NOW.date(), status=DailyBatch.Status.DRAFT)
    # The next send is the next reader's slot (the due tick sends at each reader's hour).
    SubscriberFactory(next_due_at=dt.datetime(2026, 3, 10, 13, 0, tzinfo=dt.UTC))
    SubscriberFactory(next_due_at=dt.datetime(2026, 3, 11, 7, 0, tzinfo=dt.UTC))
    text = today_module(editor_client)
    assert "Today, Tuesday 10 March" in text
    assert "Today's batch: 2026-03-10, Draft" in text
    assert "To do: Today's batch is a draft: review it and approve it" in text
    assert "Scheduled send: Tue 10 Mar, 13:00 UTC" in text
    assert "Last issue, 2026-03-09: 4 sent · 50.0 % opened · 0.0 % clicked" in text

    DailyBatch.objects.filter(date=NOW.date()).update(status=DailyBatch.Status.APPROVED)
    assert "Approved: the digest goes out at 13:00 UTC, or send it now" in (
        today_module(editor_client)
    )
