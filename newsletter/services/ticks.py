"""The due tick: every few minutes, the digest to each reader whose slot has come.

A reader is due when their ``next_due_at`` (subscriptions.schedule) has passed. The tick reads
due readers through ``subscriber_due_idx`` a chunk at a time, so its cost follows the readers
who are due, never the ones who are not yet. Each due reader gets the latest approved batch
they have not had (a weekly reader: the week to it, ``digests.weekly``): they join that
batch's issue as a Delivery row marked with their period (their slot's local date), and their
``next_due_at`` moves to their next slot, in the same transaction. One row per reader and
issue, and one per reader and period (both unique), so a tick run again after a crash, a
missed tick caught up, or two ticks at once send nobody twice.

A due reader for whom nothing new is approved yet keeps their ``next_due_at``: they stay due,
and the first tick after an approval sends them the new batch at once, not at their next slot.
``TickMark`` records how far the tick got against which batch, so while no new batch comes,
a tick reads only readers who became due since the last one.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from digests.models import DailyBatch
from digests.weekly import WEEK_DAYS, week_batch
from newsletter import ranking
from newsletter.models import Delivery, Issue, TickMark
from newsletter.services.issues import issue_for_batch, issue_join
from newsletter.services.planning import batch_day, issue_plan
from subscriptions import schedule
from subscriptions.models import Subscriber
from subscriptions.selectors import mailable_condition

logger = logging.getLogger(__name__)

TICK_CHUNK = 2000  # due readers read, planned and written per transaction
# A batch older than this many days before a reader's slot is not "today's digest" for them:
# they wait for a newer one (a weekday reader's Monday gets Friday's batch, three days back).
FRESH_DAYS = 3
# A weekly reader's email is the week to the latest batch: any batch of the last week will do.
FRESH_DAYS_WEEKLY = WEEK_DAYS - 1
TICK_LOCK = 0x5061_7065_7254  # pg advisory lock key: one tick at a time


@dataclass
class TickReport:
    batch_id: int | None = None  # the latest approved daily batch
    issue_id: int | None = None  # its issue
    weekly_batch_id: int | None = None  # the week to it, when weekly readers were served
    weekly_issue_id: int | None = None
    due: int = 0  # due readers looked at
    joined: int = 0  # rows written (to be sent, or skipped: nothing matched)
    waiting: int = 0  # due, but nothing new approved for them yet
    moved_on: int = 0  # not mailable now (a pause, a suppression) or period already served
    busy: bool = False  # another tick was running: this one did nothing


@dataclass(frozen=True)
class _Due:
    subscriber_id: int
    due_at: datetime
    rhythm: schedule.Rhythm
    mailable: bool  # confirmed and not suppressed (subscriptions.selectors.mailable_condition)

    @property
    def local_day(self):
        return self.due_at.astimezone(ZoneInfo(self.rhythm.zone)).date()

    @property
    def period(self) -> str:
        return schedule.period_key(self.rhythm, self.due_at)


def latest_batch() -> DailyBatch | None:
    """The newest approved (or already sent) batch whose issue an editor did not cancel."""
    return (
        DailyBatch.objects.daily()
        .filter(status__in=[DailyBatch.Status.APPROVED, DailyBatch.Status.SENT])
        .exclude(issue__status=Issue.Status.CANCELLED)
        .order_by("-date")
        .first()
    )


@contextmanager
def _one_tick_at_a_time():
    """True inside when this process holds the tick (PostgreSQL advisory lock); a second
    tick meanwhile gets False and leaves the work to the one running."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [TICK_LOCK])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [TICK_LOCK])


def _due_chunk(*, now: datetime, since: datetime | None, after: tuple | None) -> list[_Due]:
    rows = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, next_due_at__lte=now)
    if since is not None:
        rows = rows.filter(next_due_at__gt=since)
    if after is not None:
        rows = rows.filter(Q(next_due_at__gt=after[0]) | Q(next_due_at=after[0], pk__gt=after[1]))
    fields = ("pk", "next_due_at", "time_zone", "delivery_hour", "frequency", "weekday")
    # Whether each may be mailed comes with the same read (one query a chunk, not two).
    rows = rows.annotate(mailable=ExpressionWrapper(mailable_condition(), BooleanField()))
    return [
        _Due(
            subscriber_id=pk,
            due_at=due_at,
            rhythm=schedule.Rhythm(
                zone=zone, hour=hour, frequency=frequency, weekday=weekday, paused_until=paused
            ),
            mailable=mailable,
        )
        for pk, due_at, zone, hour, frequency, weekday, paused, mailable in rows.order_by(
            "next_due_at", "pk"
        ).values_list(*fields, "paused_until", "mailable")[:TICK_CHUNK]
    ]


def _next_slots(readers: list[_Due], now: datetime) -> list[datetime]:
    """Each reader's next slot after now, worked out once per rhythm: a slot's readers share a
    few dozen rhythms, and the zone arithmetic reader by reader was 6 % of the tick's CPU."""
    slots: dict[schedule.Rhythm, datetime] = {}
    for reader in readers:
        if reader.rhythm not in slots:
            slots[reader.rhythm] = schedule.next_slot(reader.rhythm, now)
    return [slots[reader.rhythm] for reader in readers]


def _advance(readers: list[_Due], now: datetime) -> None:
    """Each reader's next_due_at to their next slot after now."""
    if not readers:
        return
    if connection.vendor == "postgresql":
        # One UPDATE from two arrays: bulk_update's CASE per row costs seconds a chunk.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Subscriber._meta.db_table} s SET next_due_at = v.due "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, due) WHERE s.id = v.id",
                [[r.subscriber_id for r in readers], _next_slots(readers, now)],
            )
        return
    Subscriber.objects.bulk_update(
        [
            Subscriber(pk=r.subscriber_id, next_due_at=slot)
            for r, slot in zip(readers, _next_slots(readers, now), strict=True)
        ],
        ["next_due_at"],
        batch_size=500,
    )


class _Source:
    """A batch the tick serves readers from, with its issue and papers read on first need:
    the latest approved daily batch, or the week to it (digests.weekly) for weekly readers."""

    def __init__(self, batch: DailyBatch) -> None:
        self.batch = batch
        self.issue_id = Issue.objects.filter(batch=batch).values_list("pk", flat=True).first()
        self._day: ranking.Day | None = None

    @property
    def day(self) -> ranking.Day:
        if self._day is None:
            self._day = batch_day(self.batch)  # once per tick, only when someone is due
        return self._day


class _Sources:
    """The daily source, and the weekly one composed the first time a weekly reader needs it."""

    def __init__(self, daily: DailyBatch | None) -> None:
        self.daily = _Source(daily) if daily is not None else None
        self._weekly: _Source | None = None

    def for_readers(self, weekly: bool) -> _Source:
        if not weekly:
            return self.daily
        if self._weekly is None:
            self._weekly = _Source(week_batch(end=self.daily.batch))
        return self._weekly


def _fresh_days(reader: _Due) -> int:
    return FRESH_DAYS_WEEKLY if reader.rhythm.frequency == schedule.WEEKLY else FRESH_DAYS


def _tick_chunk(chunk: list[_Due], *, now: datetime, sources: _Sources, report: TickReport) -> None:
    paused = {
        r.subscriber_id
        for r in chunk
        if r.rhythm.paused_until is not None and r.local_day < r.rhythm.paused_until
    }
    gone = [r for r in chunk if not r.mailable or r.subscriber_id in paused]
    wanting = [r for r in chunk if r.mailable and r.subscriber_id not in paused]
    fresh = []
    if sources.daily is not None:
        # Too old a batch is nobody's digest of the day: those readers wait for a new one.
        latest = sources.daily.batch.date
        fresh = [r for r in wanting if latest >= r.local_day - timedelta(days=_fresh_days(r))]
    waiting = len(wanting) - len(fresh)
    # Weekly readers get the week to the latest batch; the others the latest batch.
    groups = []
    for weekly in (False, True):
        readers = [r for r in fresh if (r.rhythm.frequency == schedule.WEEKLY) == weekly]
        if readers:
            source = sources.for_readers(weekly)
            plan = issue_plan(
                batch=source.batch,
                subscriber_ids=[r.subscriber_id for r in readers],
                the_day=source.day,
            )
            groups.append((source, readers, plan))
    with transaction.atomic():
        served: list[_Due] = []
        for source, readers, plan in groups:
            joined, stay, moved = _join(source, readers, plan, report)
            served += joined
            waiting += stay
            gone += moved
        # A served reader nothing matched has a skipped row for the period: nothing is sent
        # on a day with nothing for them (unless they asked for the day's top papers).
        _advance(served + gone, now)
    report.due += len(chunk)
    report.waiting += waiting
    report.moved_on += len(gone)


def _join(
    source: _Source, readers: list[_Due], plan, report: TickReport
) -> tuple[list[_Due], int, list[_Due]]:
    """Readers of a planned chunk join the source's issue; in the caller's transaction.
    Returns (served, how many wait for a newer batch, those whose period is served)."""
    if source.issue_id is None:
        source.issue_id = issue_for_batch(batch=source.batch).pk
    issue = Issue.objects.select_for_update().get(pk=source.issue_id)
    periods = {r.subscriber_id: r.period for r in readers}
    # The readers' rows in this issue and their rows for their periods, in one round trip;
    # a UNION ALL so each part probes its own unique index ((issue, subscriber) and
    # (subscriber, period)) instead of reading every reader's whole history.
    ids = list(periods)
    fields = ("subscriber_id", "issue_id", "period")
    rows = Delivery.objects.filter(issue=issue, subscriber_id__any_of=ids).values_list(*fields)
    for_periods = (
        Delivery.objects.filter(subscriber_id__any_of=ids, period__any_of=set(periods.values()))
        .exclude(period="")  # the unique index's own condition, so the planner can use it
        .values_list(*fields)
    )
    in_issue, period_taken = set(), set()
    for subscriber_id, issue_id, period in rows.union(for_periods, all=True):
        if issue_id == issue.pk:
            in_issue.add(subscriber_id)
        if periods[subscriber_id] == period:
            period_taken.add(subscriber_id)
    # Got this batch already (and nothing newer exists): they wait for the next one. Their
    # period served by an earlier batch (a changed hour, the same local day): they move on.
    waiting = len(in_issue - period_taken)
    moved = [r for r in readers if r.subscriber_id in period_taken]
    served = [r for r in readers if r.subscriber_id not in in_issue | period_taken]
    if served:
        report.joined += issue_join(
            issue=issue, plan=plan, periods=periods, already_in=in_issue | period_taken
        )
    if source.batch.is_weekly:
        report.weekly_batch_id, report.weekly_issue_id = source.batch.pk, source.issue_id
    else:
        report.issue_id = source.issue_id
    return served, waiting, moved


def due_tick(*, now: datetime | None = None) -> TickReport:
    """Send whatever is due at `now`: one pass over the due readers, a chunk at a time."""
    now = now or timezone.now()
    report = TickReport()
    with _one_tick_at_a_time() as mine:
        if not mine:
            report.busy = True
            return report
        batch = latest_batch()
        mark = TickMark.objects.order_by("pk").first() or TickMark.objects.create()
        # The same batch as the last complete tick: readers due before it were all looked
        # at, and those still due are waiting for a newer batch.
        since = mark.covered_until if batch is not None and mark.batch_id == batch.pk else None
        sources = _Sources(batch)
        if batch is not None:
            report.batch_id = batch.pk
            report.issue_id = sources.daily.issue_id
        after = None
        while chunk := _due_chunk(now=now, since=since, after=after):
            _tick_chunk(chunk, now=now, sources=sources, report=report)
            after = (chunk[-1].due_at, chunk[-1].subscriber_id)
        TickMark.objects.filter(pk=mark.pk).update(
            batch=batch, covered_until=max(now, mark.covered_until or now)
        )
    if report.due:
        logger.info("due tick", extra=vars(report))
    return report
