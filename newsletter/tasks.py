"""Thin tasks: ids in, one service call, retries only for transient errors (the provider's,
the database's and the broker's), with backoff and a bound."""

from __future__ import annotations

import hashlib
import random
import uuid

import kombu.exceptions
import psycopg
import redis.exceptions
from celery import shared_task
from django import db
from django.conf import settings
from django.utils import timezone

from newsletter.services.issues import digest_send_for_day
from newsletter.services.rate import RateWait
from newsletter.services.sending import (
    ClaimUnsettled,
    TransientSendError,
    deliveries_release_claim,
    deliveries_send_chunk,
    deliveries_sweep,
)
from newsletter.services.ticks import due_tick

BACKOFF_CAP_SECONDS = 300  # well under the broker's visibility timeout
# A database or broker restarting: the task is retried, not dropped. Anything else is a bug
# and fails loudly.
TRANSIENT_INFRASTRUCTURE_ERRORS = (
    db.OperationalError,
    db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def backoff(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than the provider's Retry-After."""
    ceiling = min(BACKOFF_CAP_SECONDS, settings.DIGEST_RETRY_BACKOFF_SECONDS * 2**retries)
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))  # noqa: S311


def task_claim(task_id: str | None) -> str | None:
    """The claim of a chunk task: derived from its id, which Celery keeps across retries and
    redeliveries, so a task delivered again after its worker died finds the rows it held."""
    if not task_id:
        return None
    try:
        return uuid.UUID(task_id).hex
    except ValueError:
        return hashlib.blake2b(task_id.encode(), digest_size=16).hexdigest()


@shared_task(bind=True, max_retries=8)
def send_issue_chunk(self, issue_id: int, claim: str | None = None) -> int:
    claim = claim or task_claim(self.request.id)
    try:
        return deliveries_send_chunk(issue_id=issue_id, claim=claim)
    except TransientSendError as error:
        if self.request.retries >= self.max_retries:
            # Back to pending: the sweeper enqueues them again later.
            deliveries_release_claim(claim=error.claim, error=str(error))
            return 0
        raise self.retry(
            kwargs={"claim": error.claim},
            countdown=backoff(self.request.retries, error.retry_after),
        ) from error
    except RateWait as error:
        # Waiting for the shared send rate is not a failure: it does not use up retries.
        raise self.retry(
            kwargs={"claim": error.claim},
            countdown=max(0.05, error.seconds),
            max_retries=self.request.retries + 1,
        ) from error
    except ClaimUnsettled as error:
        if self.request.retries >= self.max_retries:
            return 0  # the rows stay claimed; the sweeper settles them after the lease
        raise self.retry(
            kwargs={"claim": error.claim},
            countdown=max(1.0, error.retry_after or backoff(self.request.retries)),
        ) from error
    except TRANSIENT_INFRASTRUCTURE_ERRORS as error:
        # Rows this attempt handed to the provider stay in the claim: the retry asks the
        # provider about them before sending anything again.
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(
            kwargs={"claim": claim}, countdown=backoff(self.request.retries)
        ) from error


@shared_task(bind=True, max_retries=8)
def send_daily_digest(self) -> int | None:
    try:
        issue = digest_send_for_day(day=timezone.now().date())
    except TRANSIENT_INFRASTRUCTURE_ERRORS as error:
        # Creating and starting the day's issue is idempotent: retrying it is safe.
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(countdown=backoff(self.request.retries)) from error
    return issue.pk if issue else None


@shared_task(bind=True, max_retries=3)
def send_due_digests(self) -> int:
    """The due tick. Safe to run any number of times: what it wrote is never written again."""
    try:
        report = due_tick()
    except TRANSIENT_INFRASTRUCTURE_ERRORS as error:
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(countdown=backoff(self.request.retries)) from error
    return report.joined


@shared_task
def sweep_deliveries() -> int:
    return deliveries_sweep()
