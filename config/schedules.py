"""The periodic tasks Paperboy runs: defined here once, read from the environment by settings
(PAPERBOY_SCHEDULES) and installed into django-celery-beat's tables by `install_schedules`.

Times are crontab expressions in UTC. Installing creates only what is missing: once an entry
exists, editors own its time in admin (Periodic tasks).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from config.env import env_crontab


@dataclass(frozen=True)
class Schedule:
    name: str  # the periodic task's name in admin
    task: str
    variable: str  # the environment variable holding its crontab
    default: str


SCHEDULES = (
    Schedule(
        "Clear expired sessions",
        "config.tasks.clear_expired_sessions",
        "CLEAR_SESSIONS_CRON",
        "17 3 * * *",
    ),
    Schedule(
        "Purge unconfirmed subscribers",
        "subscriptions.tasks.purge_stale_pending",
        "PURGE_PENDING_CRON",
        "41 4 * * *",
    ),
    Schedule(
        "Ingest trending papers",
        "digests.tasks.ingest_recent_days",
        "DIGEST_INGEST_CRON",
        "5 */6 * * *",
    ),
    Schedule(
        "Send due digests",
        "newsletter.tasks.send_due_digests",
        "DIGEST_TICK_CRON",
        "*/5 * * * *",
    ),
    Schedule(
        "Sweep stuck deliveries",
        "newsletter.tasks.sweep_deliveries",
        "DIGEST_SWEEP_CRON",
        "* * * * *",
    ),
)


# Entries an earlier version installed that nothing runs any more: removed on install. The
# single daily send gave way to the due tick (each reader's own hour).
RETIRED = ("Send the daily digest",)


def schedules_from_env() -> dict[str, dict[str, str]]:
    """{name: {"task", "crontab"}} with each crontab from its variable (settings reads this)."""
    return {
        s.name: {"task": s.task, "crontab": env_crontab(s.variable, default=s.default)}
        for s in SCHEDULES
    }


@transaction.atomic
def schedules_install() -> list[str]:
    """Create the periodic tasks from settings.PAPERBOY_SCHEDULES that do not exist yet.

    Existing entries are left alone: once installed, editors own the times in admin. Retired
    entries are deleted. Returns the names of the entries created.
    """
    # Imported here: settings.py imports this module before any app (or model) is loaded.
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    PeriodicTask.objects.filter(name__in=RETIRED).delete()
    created = []
    for name, spec in settings.PAPERBOY_SCHEDULES.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        minute, hour, day_of_month, month_of_year, day_of_week = spec["crontab"].split()
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone="UTC",
        )
        PeriodicTask.objects.create(name=name, task=spec["task"], crontab=schedule)
        created.append(name)
    return created
