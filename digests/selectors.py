"""Reads for digests that other apps (the landing page, the newsletter) build on."""

from __future__ import annotations

from digests.models import BatchEntry, DailyBatch

PREVIEW_STATUSES = (DailyBatch.Status.DRAFT, DailyBatch.Status.APPROVED, DailyBatch.Status.SENT)


def batch_latest_with_papers(*, statuses=PREVIEW_STATUSES) -> DailyBatch | None:
    """The most recent batch that has at least one visible paper."""
    return (
        DailyBatch.objects.daily()
        .filter(status__in=statuses, entries__hidden=False)
        .order_by("-date")
        .distinct()
        .first()
    )


def batch_preview_latest(*, limit: int = 5, statuses=PREVIEW_STATUSES) -> list[BatchEntry]:
    """The top visible entries (pinned first, then upstream rank) of the most recent batch
    with papers. Each entry comes with .paper and .batch loaded and paper.topics prefetched.

    Drafts count by default: their papers are public upstream already, and hidden entries are
    left out. Pass statuses=(APPROVED, SENT) to show only what an editor let through.
    """
    batch = batch_latest_with_papers(statuses=statuses)
    if batch is None:
        return []
    return list(
        BatchEntry.objects.filter(batch=batch, hidden=False)
        .select_related("paper", "batch")
        .prefetch_related("paper__topics")
        .order_by("-pinned", "rank", "pk")[:limit]
    )
