"""An issue's life: created with its planned deliveries, started, cancelled, finished.

``issue_create`` plans one Delivery row per eligible subscriber (one transaction, written in
bulk); ``issue_start`` moves the issue to "sending" once and enqueues its chunk tasks; the last
chunk (or the sweeper) finishes it. Every state change is a conditional UPDATE, so running
any of them twice changes nothing.
"""

from __future__ import annotations

import logging
import math
from datetime import date

from django.db import connection, transaction
from django.utils import timezone

from digests.models import DailyBatch
from digests.services import batch_mark_sent
from newsletter import providers
from newsletter.models import Delivery, Issue, IssueContent
from newsletter.services.planning import deliveries_write, issue_plan

logger = logging.getLogger(__name__)


def issue_chunks_enqueue(*, issue_id: int, pending: int) -> None:
    """Enqueue one chunk task per provider batch of `pending` rows. Call it on commit.

    The one place services reach the task queue. The import is here, not at the top, because
    newsletter.tasks imports the services: tasks call services, services only enqueue.
    """
    from newsletter.tasks import send_issue_chunk

    for _ in range(math.ceil(pending / providers.batch_limit())):
        send_issue_chunk.delay(issue_id)


def issue_create(*, batch: DailyBatch) -> Issue:
    """The issue of a batch with its Delivery rows; creating it again returns the same one."""
    existing = Issue.objects.filter(batch=batch).first()
    if existing is not None:
        return existing
    plan = issue_plan(batch=batch)
    with transaction.atomic():
        # Lock the batch so two concurrent creators serialize; the loser finds the issue.
        DailyBatch.objects.select_for_update().get(pk=batch.pk)
        existing = Issue.objects.filter(batch=batch).first()
        if existing is not None:
            return existing
        skipped = plan.skipped
        issue = Issue.objects.create(
            batch=batch,
            recipient_count=len(plan.subscriber_ids) - skipped,
            skipped_count=skipped,
            content_count=len(plan.keys),
        )
        deliveries_write(issue=issue, plan=plan)
    if connection.vendor == "postgresql":
        # Fresh statistics for the rows just loaded, before workers start claiming: with the
        # old ones the planner expects a few pending rows and sorts all of them (1.2-2.7 s a
        # claim at 1M) instead of walking delivery_claim_idx (50 ms). The same for the
        # contents: with old statistics a chunk's look-up of its 500 contents by key read
        # every content of the issue through the issue_id index (85 ms at 100k) instead of
        # the unique (issue, key) index (3 ms). Samples, so bounded.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Delivery._meta.db_table}, {IssueContent._meta.db_table}")
    logger.info(
        "issue planned",
        extra={
            "issue": issue.pk,
            "recipients": issue.recipient_count,
            "skipped": skipped,
            "contents": issue.content_count,
        },
    )
    return issue


def issue_start(*, issue: Issue) -> bool:
    """Move a scheduled issue to sending and enqueue its chunks. False if it already started."""
    with transaction.atomic():
        started = Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
            status=Issue.Status.SENDING, started_at=timezone.now()
        )
        if not started:
            return False
        pending = Delivery.objects.filter(issue=issue, status=Delivery.Status.PENDING).count()
        transaction.on_commit(lambda: issue_chunks_enqueue(issue_id=issue.pk, pending=pending))
    if not pending:
        issue_finish_if_done(issue_id=issue.pk)
    return True


def issue_cancel(*, issue: Issue) -> bool:
    """Cancel an issue that has not started sending."""
    return bool(
        Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
            status=Issue.Status.CANCELLED
        )
    )


def issue_finish_if_done(*, issue_id: int) -> bool:
    """Mark a sending issue sent (and its batch) once no delivery is pending or sending."""
    unfinished = Delivery.objects.filter(
        issue_id=issue_id, status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING]
    ).exists()
    if unfinished:
        return False
    with transaction.atomic():
        finished = Issue.objects.filter(pk=issue_id, status=Issue.Status.SENDING).update(
            status=Issue.Status.SENT, finished_at=timezone.now()
        )
        if finished:
            batch_mark_sent(batch=Issue.objects.get(pk=issue_id).batch)
    return bool(finished)


def digest_send_for_day(*, day: date) -> Issue | None:
    """Send the approved batch of `day`, once. None when there is no approved batch."""
    batch = DailyBatch.objects.filter(date=day).first()
    if batch is None or batch.status not in {DailyBatch.Status.APPROVED, DailyBatch.Status.SENT}:
        logger.info("no approved batch to send", extra={"day": day.isoformat()})
        return None
    issue = issue_create(batch=batch)
    issue_start(issue=issue)
    return issue
