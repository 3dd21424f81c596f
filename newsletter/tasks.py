"""Thin tasks: ids in, one service call, retries only for transient provider errors."""

from __future__ import annotations

import random

from celery import shared_task
from django.utils import timezone

from newsletter import services

BACKOFF_BASE_SECONDS = 5
BACKOFF_CAP_SECONDS = 300  # well under the broker's visibility timeout


def backoff(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**retries)
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))  # noqa: S311


@shared_task(bind=True, max_retries=8)
def send_issue_chunk(self, issue_id: int) -> int:
    try:
        return services.deliveries_send_chunk(issue_id=issue_id)
    except services.TransientSendError as error:
        # After the last retry the rows stay pending and the sweeper enqueues them again.
        raise self.retry(countdown=backoff(self.request.retries, error.retry_after)) from error


@shared_task
def send_daily_digest() -> int | None:
    issue = services.digest_send_for_day(day=timezone.now().date())
    return issue.pk if issue else None


@shared_task
def sweep_deliveries() -> int:
    return services.deliveries_sweep()
