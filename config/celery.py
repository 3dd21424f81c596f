"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("paperboy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections_tidy(task=None, **_: object) -> None:
    """Drop connections that are broken or older than CONN_MAX_AGE, as Django does around
    each request; the rest are reused (see CELERY_DB_REUSE_MAX in settings).

    Not for eager tasks: they run inside the caller's request or transaction.
    """
    if task is not None and task.request.is_eager:
        return
    from django.db import close_old_connections

    close_old_connections()
