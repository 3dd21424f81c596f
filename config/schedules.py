from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask


@transaction.atomic
def schedules_install() -> list[str]:
    """Create the periodic tasks from settings.PAPERBOY_SCHEDULES that do not exist yet.

    Existing entries are left alone: once installed, editors own the times in admin.
    Returns the names of the entries created.
    """
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
