from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from digests.services import batch_ingest


@shared_task
def ingest_day(day: str, source_name: str | None = None) -> dict:
    """Ingest one day (YYYY-MM-DD) into its batch. A failed fetch is recorded on the batch,
    not raised: the HTTP client already retried what was worth retrying."""
    report = batch_ingest(day=dt.date.fromisoformat(day), source_name=source_name)
    return {"day": day, "status": report.status, "new": report.new, "failed": report.failed}


@shared_task
def ingest_recent_days() -> list[str]:
    """Run by beat: today (UTC) and the previous DIGEST_REFRESH_DAYS days, whose upvotes are
    still moving. One task per day, so one slow day does not hold up the others."""
    today = timezone.now().astimezone(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in range(settings.DIGEST_REFRESH_DAYS + 1)]
    for day in days:
        ingest_day.delay(day.isoformat())
    return [day.isoformat() for day in days]
