"""Where the benchmark runs: its PostgreSQL databases and the settings of the processes it starts.

Paperboy's processes (and the benchmark's own Django set-up) get production-like settings, DEBUG
off, pointing at the bench database, the Redis broker and the fake Postmark.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devtools.fakes import mailgun, sendgrid
from devtools.fakes.postmark import TOKEN as FAKE_TOKEN

# Each provider the benchmark can send through: its fake's module, the key the fake takes,
# and the path its API sits under on the fake (Anymail appends the endpoint to it).
PROVIDER_FAKES = {
    "postmark": ("devtools.fakes.postmark", FAKE_TOKEN, ""),
    "mailgun": ("devtools.fakes.mailgun", mailgun.API_KEY, "v3/"),
    "sendgrid": ("devtools.fakes.sendgrid", sendgrid.API_KEY, "v3/"),
}

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pb_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_create(url: str, *, fresh: bool) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pipeline_env(args: argparse.Namespace, fake_url: str, query_dir: Path) -> dict[str, str]:
    """Production-like settings (DEBUG off) pointing at the bench database, broker and fake."""
    provider = getattr(args, "provider", "postmark")
    _, key, api_path = PROVIDER_FAKES[provider]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY="bench-only-" + "x" * 50,
        ALLOWED_HOSTS="paperboy.example",
        SITE_URL="https://paperboy.example",
        ANYMAIL_WEBHOOK_SECRET="bench:bench",
        SENDER_POSTAL_ADDRESS="Paperboy Bench; 1 Main St; Springfield",
        DATABASE_URL=args.database_url,
        DATABASE_CONN_MAX_AGE="60",  # as docker-compose.yml runs production
        CELERY_BROKER_URL=args.redis_url,
        ANYMAIL_ESP=provider,
        ANYMAIL_API_KEY=key,
        ANYMAIL_API_URL=fake_url + api_path,
        DIGEST_BATCH_SIZE=str(args.batch_size),
        LOG_LEVEL="INFO",
        PAPERBOY_BENCH_QUERY_DIR=str(query_dir),
        PYTHONUNBUFFERED="1",
    )
    if getattr(args, "email_backend", ""):
        # Another backend for the same provider (bench/celery_app.py): Anymail's own, say,
        # to compare with Paperboy's in the same invocation.
        env["PAPERBOY_BENCH_EMAIL_BACKEND"] = args.email_backend
    if getattr(args, "rate", 0):
        # The shared send rate (newsletter/services/rate.py), its budget in the bench's Redis.
        env.update(SEND_RATE_PER_SECOND=str(args.rate), SEND_RATE_REDIS_URL=args.redis_url)
    return env


def django_setup(args: argparse.Namespace) -> None:
    env = pipeline_env(args, "http://127.0.0.1:1/", Path(tempfile.gettempdir()))
    env.pop("PAPERBOY_BENCH_QUERY_DIR")
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
