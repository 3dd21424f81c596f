from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from digests.models import BatchEntry
from newsletter.models import Issue


def issues_published() -> QuerySet[Issue]:
    """Issues that went out, newest first: what the public archive shows."""
    return (
        Issue.objects.filter(status__in=[Issue.Status.SENDING, Issue.Status.SENT])
        .select_related("batch")
        .order_by("-batch__date")
    )


def issue_published_for_day(day: date) -> Issue | None:
    return issues_published().filter(batch__date=day).first()


def issue_papers(issue: Issue) -> list[BatchEntry]:
    """The day's visible papers in digest order: pinned first, then upstream rank."""
    return list(
        BatchEntry.objects.filter(batch=issue.batch, hidden=False)
        .select_related("paper")
        .prefetch_related("paper__topics")
        .order_by("-pinned", "rank")
    )
