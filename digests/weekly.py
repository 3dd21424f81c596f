"""The week's batch: the papers of a week's approved daily batches, for the weekly readers.

A weekly reader's email is "the week's best papers for them": their ranking runs over every
paper an editor let through in the seven days to the latest approved batch. Those papers are
gathered into one batch of kind "weekly", dated the week's last day, so everything built on a
batch works for it unchanged: an issue of its own with its counts in admin, planning and
rendering, the editor's pins and notes, "View in browser", and what a reader already got
(planning leaves out papers of earlier issues they were sent, daily ones included).

It is composed once, the first time a weekly reader is due against that latest daily batch,
and approved as it is: each of its papers was approved on its day. An editor may still pin,
hide or note its entries in admin before its readers' slots come, or cancel its issue.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from digests.models import BatchEntry, DailyBatch

WEEK_DAYS = 7
# The most upvoted papers of the week kept, pins aside: about a day and a half of upstream's
# papers, enough for any reader's 20 after muting and what they already got, while ranking a
# weekly reader costs no more than a few days' batches.
WEEK_PAPERS = 120


def week_batches(end: dt.date):
    """The approved (or sent) daily batches of the seven days to `end` whose issue an editor
    did not cancel, newest first."""
    from newsletter.models import Issue  # the newsletter app builds on digests, not back

    start = end - dt.timedelta(days=WEEK_DAYS - 1)
    return (
        DailyBatch.objects.filter(
            kind=DailyBatch.Kind.DAILY,
            date__range=(start, end),
            status__in=[DailyBatch.Status.APPROVED, DailyBatch.Status.SENT],
        )
        .filter(Q(issue__isnull=True) | ~Q(issue__status=Issue.Status.CANCELLED))
        .order_by("-date")
    )


def week_batch(*, end: DailyBatch) -> DailyBatch:
    """The weekly batch of the week to `end` (a daily batch), composed on first use."""
    existing = DailyBatch.objects.filter(kind=DailyBatch.Kind.WEEKLY, date=end.date).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            week = DailyBatch.objects.create(
                kind=DailyBatch.Kind.WEEKLY,
                date=end.date,
                source="week",
                status=DailyBatch.Status.APPROVED,
                approved_at=timezone.now(),
                fetched_at=timezone.now(),
            )
            entries = _week_entries(week, end=end.date)
            BatchEntry.objects.bulk_create(entries)
            DailyBatch.objects.filter(pk=week.pk).update(entry_count=len(entries))
    except IntegrityError:  # composed at the same moment by another tick: theirs stands
        return DailyBatch.objects.get(kind=DailyBatch.Kind.WEEKLY, date=end.date)
    week.refresh_from_db()
    return week


def _week_entries(week: DailyBatch, *, end: dt.date) -> list[BatchEntry]:
    """One entry per paper visible on any day of the week: pinned if an editor pinned it on a
    day, with the newest editor's note; pins first, then the week's most upvoted."""
    by_paper: dict[int, BatchEntry] = {}
    rows = (
        BatchEntry.objects.filter(batch__in=week_batches(end), hidden=False)
        .select_related("paper")
        .only("paper_id", "paper__upvotes", "pinned", "editor_note")
        .order_by("-batch__date", "rank")
    )
    for entry in rows:  # newest day first: its note is the one kept
        kept = by_paper.get(entry.paper_id)
        if kept is None:
            by_paper[entry.paper_id] = BatchEntry(
                batch=week,
                paper_id=entry.paper_id,
                rank=0,
                upvotes_at_fetch=entry.paper.upvotes,
                pinned=entry.pinned,
                editor_note=entry.editor_note,
            )
        else:
            kept.pinned = kept.pinned or entry.pinned
            kept.editor_note = kept.editor_note or entry.editor_note
    ordered = sorted(by_paper.values(), key=lambda e: (not e.pinned, -e.upvotes_at_fetch))
    pins = [e for e in ordered if e.pinned]
    chosen = pins + [e for e in ordered if not e.pinned][:WEEK_PAPERS]
    for rank, entry in enumerate(chosen, start=1):
        entry.rank = rank
    return chosen
