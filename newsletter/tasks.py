"""Thin tasks: ids in, one service call, retries only for transient provider errors."""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from newsletter.services.issues import digest_send_for_day
from newsletter.services.sending import (
    TransientSendError,
    deliveries_release_claim,
    deliveries_send_chunk,
    deliveries_sweep,
)

BACKOFF_CAP_SECONDS = 300  # well under the broker's visibility timeout


def backoff(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than the provider's Retry-After."""
    ceiling = min(BACKOFF_CAP_SECONDS, settings.DIGEST_RETRY_BACKOFF_SECONDS * 2**retries)
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))  # noqa: S311


@shared_task(bind=True, max_retries=8)
def send_issue_chunk(self, issue_id: int, claim: str | None = None) -> int:
    try:
        return deliveries_send_chunk(issue_id=issue_id, claim=claim)
    except TransientSendError as error:
        if self.request.retries >= self.max_retries:
            # Back to pending: the sweeper enqueues them again later.
            deliveries_release_claim(claim=error.claim, error=str(error))
            return 0
        raise self.retry(
            args=(issue_id,),
            kwargs={"claim": error.claim},
            countdown=backoff(self.request.retries, error.retry_after),
        ) from error


@shared_task
def send_daily_digest() -> int | None:
    issue = digest_send_for_day(day=timezone.now().date())
    return issue.pk if issue else None


@shared_task
def sweep_deliveries() -> int:
    return deliveries_sweep()
