"""A chunk finishing while the due tick writes the next slot's rows into the same issue: the
issue must stay sending, or the slot's chunk tasks find a sent issue and send nothing (seen in
the tick benchmark at 1M readers: rows left pending, their tasks done, no sweeper to help,
because it only looks at sending issues)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from newsletter.models import Delivery, Issue
from newsletter.services.issues import issue_finish_if_done
from tests.external import require_postgres
from tests.factories import DailyBatchFactory, SubscriberFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_chunk_finishing_while_the_tick_adds_rows_leaves_the_issue_sending():
    require_postgres()
    earlier, later = SubscriberFactory(), SubscriberFactory()
    issue = Issue.objects.create(
        batch=DailyBatchFactory(), status=Issue.Status.SENDING, started_at=timezone.now()
    )
    Delivery.objects.create(
        issue=issue, subscriber=earlier, status=Delivery.Status.SENT, period="2027-03-14"
    )
    rows_written = threading.Event()
    finisher_waiting = threading.Event()
    finished: list[bool] = []
    errors: list[BaseException] = []

    def tick() -> None:
        # What _tick_chunk does: the issue's row lock, the slot's rows, then commit.
        try:
            with transaction.atomic():
                Issue.objects.select_for_update().get(pk=issue.pk)
                Delivery.objects.create(issue=issue, subscriber=later, period="2027-03-14")
                rows_written.set()
                # Commit only once the finisher is at work (blocked, or done wrongly).
                finisher_waiting.wait(timeout=10)
                threading.Event().wait(0.5)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    def chunk_done() -> None:
        try:
            rows_written.wait(timeout=10)
            finisher_waiting.set()
            finished.append(issue_finish_if_done(issue_id=issue.pk))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick), threading.Thread(target=chunk_done)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert finished == [False]
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENDING  # the new row's chunk task will send it
    assert issue.finished_at is None
