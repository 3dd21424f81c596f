from __future__ import annotations

import pytest
from django.db import connection

from tests.external import REQUIRE_SERVICES, celery_broker


@pytest.mark.django_db
def test_it_reports_healthy_with_tasks_in_process(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "in-process"}


@pytest.mark.django_db
def test_it_reports_healthy_with_a_real_broker(client, settings):
    with celery_broker() as url:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = url
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["broker"] == "ok"


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_down(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unreachable"}


@pytest.mark.django_db
def test_it_answers_503_when_the_database_is_down(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


@pytest.mark.django_db
def test_it_runs_on_postgresql_in_ci():
    # CI exports PAPERBOY_REQUIRE_SERVICES=1 and DATABASE_URL=postgres://...; this proves the
    # suite did not quietly fall back to SQLite there.
    if not REQUIRE_SERVICES:
        pytest.skip("only meaningful where PAPERBOY_REQUIRE_SERVICES=1 (CI)")
    assert connection.vendor == "postgresql"
