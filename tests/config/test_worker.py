from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from config.tasks import clear_expired_sessions
from tests.external import celery_broker, celery_worker, wait_for


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_in_a_real_worker(tmp_path):
    expired = SessionStore()
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timedelta(days=1)
    )
    live = SessionStore()
    live.create()

    with celery_worker(tmp_path) as worker, celery_broker():
        clear_expired_sessions.delay()
        wait_for(
            lambda: not Session.objects.filter(pk=expired.session_key).exists(),
            timeout=30,
            message=f"the worker did not run the task:\n{worker.log()}",
        )
    assert Session.objects.filter(pk=live.session_key).exists()
    assert "config.tasks.clear_expired_sessions" in worker.log()
