"""Paperboy's Celery app for benchmark workers: ``celery -A bench.celery_app worker``.

The same app and tasks as ``-A config``; with PAPERBOY_BENCH_QUERY_DIR set, each pool process
counts the SQL statements Django sends (a ``connection.execute_wrapper``) and, after every task,
writes its running totals to ``<dir>/queries-<pid>.json`` for the benchmark to add up. COPY
goes through psycopg directly and is not seen (one statement per issue). With
PAPERBOY_BENCH_EMAIL_BACKEND set, the pool processes send through that backend instead of the
configured provider's (bench/providers_bench.py compares Anymail's own with Paperboy's).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from celery.signals import task_postrun, worker_process_init

from config.celery import app

__all__ = ["app"]

QUERY_DIR = os.environ.get("PAPERBOY_BENCH_QUERY_DIR", "")
EMAIL_BACKEND = os.environ.get("PAPERBOY_BENCH_EMAIL_BACKEND", "")
_counts: Counter[str] = Counter()


def _count(execute, sql, params, many, context):
    _counts[sql.lstrip().split(" ", 1)[0].upper()] += len(params) if many and params else 1
    return execute(sql, params, many, context)


@worker_process_init.connect
def _install(**_: object) -> None:
    if EMAIL_BACKEND:
        from django.conf import settings

        settings.EMAIL_BACKEND = EMAIL_BACKEND
    if not QUERY_DIR:
        return
    from django.db import connections

    for alias in connections:
        # The wrapper list belongs to the connection object, which outlives reconnects.
        connections[alias].execute_wrappers.append(_count)


@task_postrun.connect
def _flush(**_: object) -> None:
    if QUERY_DIR:
        path = Path(QUERY_DIR) / f"queries-{os.getpid()}.json"
        path.write_text(json.dumps(dict(_counts)))
