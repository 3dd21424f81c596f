"""An issue's life: created with its planned deliveries, started, cancelled, finished.

``issue_create`` plans one Delivery row per eligible subscriber (one transaction, written in
bulk a chunk of readers at a time); ``issue_send_everyone`` adds the readers not in an issue
yet the same way, a chunk at a time in one transaction; ``issue_start`` moves the issue to
"sending" once and enqueues its chunk tasks; the last chunk (or the sweeper) finishes it.
Every state change is a conditional UPDATE, so running any of them twice changes nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import date

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from digests.models import DailyBatch
from digests.services import batch_mark_sent
from newsletter import providers
from newsletter.models import Delivery, Issue, IssueContent
from newsletter.services import planning
from newsletter.services.planning import (
    Plan,
    Written,
    batch_day,
    deliveries_join,
    deliveries_write,
    issue_plan_chunks,
)

logger = logging.getLogger(__name__)


def issue_chunks_enqueue(*, issue_id: int, pending: int) -> None:
    """Enqueue one chunk task per provider batch of `pending` rows. Call it on commit.

    The one place services reach the task queue. The import is here, not at the top, because
    newsletter.tasks imports the services: tasks call services, services only enqueue.
    """
    from newsletter.tasks import send_issue_chunk

    for _ in range(math.ceil(pending / providers.batch_limit())):
        send_issue_chunk.delay(issue_id)


def _deliveries_analyze() -> None:
    """Fresh statistics for rows just loaded in bulk, before workers start claiming: with the
    old ones the planner expects a few pending rows and sorts all of them (1.2-2.7 s a claim
    at 1M) instead of walking delivery_claim_idx (50 ms). The same for the contents: with old
    statistics a chunk's look-up of its 500 contents by key read every content of the issue
    through the issue_id index (85 ms at 100k) instead of the unique (issue, key) index
    (3 ms). Samples, so bounded."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Delivery._meta.db_table}, {IssueContent._meta.db_table}")


def issue_create(*, batch: DailyBatch) -> Issue:
    """The issue of a batch with its Delivery rows; creating it again returns the same one.

    The readers are planned and written a chunk at a time (``issue_plan_chunks``), all in the
    one transaction that creates the issue, so the planner's memory does not grow with the
    audience and a planner that dies mid-plan leaves no issue at all: nothing of it is seen
    until every reader's row is written, and creating it again plans it from the start.
    """
    existing = Issue.objects.filter(batch=batch).first()
    if existing is not None:
        return existing
    the_day = batch_day(batch)
    with transaction.atomic():
        # Lock the batch so two concurrent creators serialize; the loser finds the issue.
        DailyBatch.objects.select_for_update().get(pk=batch.pk)
        existing = Issue.objects.filter(batch=batch).first()
        if existing is not None:
            return existing
        issue = Issue.objects.create(batch=batch)
        written = Written()
        for plan in issue_plan_chunks(batch=batch, the_day=the_day, size=planning.PLAN_CHUNK):
            written += deliveries_write(issue=issue, plan=plan)
        issue.recipient_count, issue.skipped_count = written.pending, written.skipped
        issue.content_count = written.contents
        issue.save(update_fields=["recipient_count", "skipped_count", "content_count"])
    skipped = written.skipped
    _deliveries_analyze()
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


def _issue_unfinished(issue_id: int) -> bool:
    return Delivery.objects.filter(
        issue_id=issue_id, status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING]
    ).exists()


def issue_finish_if_done(*, issue_id: int) -> bool:
    """Mark a sending issue sent (and its batch) once no delivery is pending or sending."""
    if _issue_unfinished(issue_id):
        return False  # the common case, after most chunks: no lock taken
    with transaction.atomic():
        # Looked finished: ask again holding the issue's row lock. The due tick adds rows
        # under that lock (issue_join); without it, a chunk finishing while a tick wrote the
        # next slot's rows saw none of them, then marked the issue sent just after the tick
        # committed, and the slot's chunk tasks found a sent issue and sent nothing.
        Issue.objects.select_for_update().filter(pk=issue_id).values_list("pk").first()
        if _issue_unfinished(issue_id):
            return False
        finished = Issue.objects.filter(pk=issue_id, status=Issue.Status.SENDING).update(
            status=Issue.Status.SENT, finished_at=timezone.now()
        )
        if finished:
            batch_mark_sent(batch=Issue.objects.get(pk=issue_id).batch)
    return bool(finished)


def issue_for_batch(*, batch: DailyBatch) -> Issue:
    """The batch's issue, created empty if it has none yet: the due tick adds readers to it as
    their slots come (``issue_join``)."""
    issue, _ = Issue.objects.get_or_create(batch=batch)
    return issue


def _issue_counts_add(*, issue_id: int, added: Written) -> None:
    Issue.objects.filter(pk=issue_id).update(
        recipient_count=F("recipient_count") + added.pending,
        skipped_count=F("skipped_count") + added.skipped,
        content_count=F("content_count") + added.contents,
    )


def _issue_send_added(*, issue_id: int, pending: int) -> None:
    """Send `pending` rows just added to an issue: a scheduled issue starts, a sent one sends
    again; their chunk tasks are enqueued on commit. In the caller's transaction."""
    reopened = Issue.objects.filter(
        pk=issue_id, status__in=[Issue.Status.SCHEDULED, Issue.Status.SENT]
    ).update(status=Issue.Status.SENDING, started_at=timezone.now(), finished_at=None)
    if reopened:
        logger.info("issue sending", extra={"issue": issue_id})
    transaction.on_commit(lambda: issue_chunks_enqueue(issue_id=issue_id, pending=pending))


def issue_join(
    *, issue: Issue, plan: Plan, periods: dict[int, str] | None = None, already_in: set[int]
) -> int:
    """Add the readers of `plan` to an issue (their rows, its counts) and send them: a
    scheduled issue starts, a sending one gets more chunks, a sent one sends again. Runs in
    the caller's transaction, which holds the issue's row lock; readers in `already_in`
    (already in the issue) are left out. Returns the rows added."""
    if already_in:
        plan = plan.without(already_in)
    joined = deliveries_join(issue=issue, plan=plan, periods=periods)
    _issue_counts_add(issue_id=issue.pk, added=joined)
    if joined.pending:
        _issue_send_added(issue_id=issue.pk, pending=joined.pending)
    return joined.pending + joined.skipped


def _subscribers_in_issue(*, issue: Issue, subscriber_ids: Iterable[int]) -> set[int]:
    """Which of these readers already have a row in the issue: one indexed look-up of a
    chunk's ids (the unique (issue, subscriber) index), not every row of the issue."""
    return set(
        Delivery.objects.filter(
            issue=issue, subscriber_id__any_of=list(subscriber_ids)
        ).values_list("subscriber_id", flat=True)
    )


def issue_send_everyone(*, issue: Issue) -> int:
    """An editor's send: every sendable reader not in the issue yet joins it now (readers of
    the due tick already in it keep their one row). Returns the rows added.

    Planned and joined a chunk of readers at a time (``issue_plan_chunks``), as
    ``issue_create`` writes, so the planner's memory does not grow with the audience; all in
    one transaction holding the issue's row lock (the tick and the finishing chunk wait for
    it), so a planner that dies mid-plan adds nothing and sending again plans from the start.
    The counts are summed over the chunks and the chunk tasks enqueued once, on commit, for
    every row added.
    """
    the_day = batch_day(issue.batch)  # the papers, before the lock: they do not change with it
    added = Written()
    with transaction.atomic():
        issue = Issue.objects.select_for_update().get(pk=issue.pk)
        if issue.status == Issue.Status.CANCELLED:
            return 0
        chunks = issue_plan_chunks(batch=issue.batch, the_day=the_day, size=planning.PLAN_CHUNK)
        for plan in chunks:
            already_in = _subscribers_in_issue(issue=issue, subscriber_ids=plan.subscriber_ids)
            joining = plan.without(already_in) if already_in else plan
            if joining.subscriber_ids:
                added += deliveries_join(issue=issue, plan=joining)
        _issue_counts_add(issue_id=issue.pk, added=added)
        if added.pending:
            _issue_send_added(issue_id=issue.pk, pending=added.pending)
    if added.pending:
        # After the commit, as issue_create does, so the issue's row lock is not held through
        # it; the chunk tasks enqueued on commit may claim once or twice with old statistics.
        _deliveries_analyze()
    logger.info(
        "issue joined by everyone",
        extra={
            "issue": issue.pk,
            "recipients": added.pending,
            "skipped": added.skipped,
            "contents": added.contents,
        },
    )
    return added.pending + added.skipped


def digest_send_for_day(*, day: date) -> Issue | None:
    """Send the approved batch of `day` to everyone, once each. None when there is no
    approved batch. Readers the due tick already gave this batch are not sent it again."""
    batch = DailyBatch.objects.daily().filter(date=day).first()
    if batch is None or batch.status not in {DailyBatch.Status.APPROVED, DailyBatch.Status.SENT}:
        logger.info("no approved batch to send", extra={"day": day.isoformat()})
        return None
    existing = Issue.objects.filter(batch=batch).first()
    if existing is None:
        issue = issue_create(batch=batch)
    else:
        issue = existing
        issue_send_everyone(issue=issue)
    issue_start(issue=issue)  # a scheduled issue starts; one already sending is left as is
    issue.refresh_from_db()
    return issue
