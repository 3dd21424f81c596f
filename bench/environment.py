"""Where the benchmark runs: its PostgreSQL databases and the settings of the processes it starts.

Paperboy's processes (and the benchmark's own Django set-up) get production-like settings, DEBUG
off, pointing at the bench database, the Redis broker and the fake Postmark.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devtools.fakes import amazon_ses, brevo, mailgun, mailjet, resend, sendgrid, sparkpost
from devtools.fakes.postmark import TOKEN as FAKE_TOKEN


@dataclass(frozen=True)
class ProviderFake:
    """A provider the benchmark can send through, and how Paperboy is pointed at its fake."""

    module: str  # the fake's, run with ``python -m``
    key: str = ""  # ANYMAIL_API_KEY ("" for a provider without one)
    api_path: str = ""  # where its API sits under the fake's root (Anymail appends endpoints)
    settings: dict[str, str] = field(default_factory=dict)  # what else it needs set


PROVIDER_FAKES = {
    "postmark": ProviderFake("devtools.fakes.postmark", FAKE_TOKEN),
    "mailgun": ProviderFake("devtools.fakes.mailgun", mailgun.API_KEY, "v3/"),
    "sendgrid": ProviderFake("devtools.fakes.sendgrid", sendgrid.API_KEY, "v3/"),
    "amazon_ses": ProviderFake(
        "devtools.fakes.amazon_ses",
        settings={
            "AWS_ACCESS_KEY_ID": amazon_ses.ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": amazon_ses.SECRET_ACCESS_KEY,
            "AWS_REGION": amazon_ses.REGION,
        },
    ),
    "resend": ProviderFake("devtools.fakes.resend", resend.API_KEY),
    "brevo": ProviderFake("devtools.fakes.brevo", brevo.API_KEY, "v3/"),
    "mailjet": ProviderFake(
        "devtools.fakes.mailjet",
        mailjet.API_KEY,
        "v3.1/",
        settings={"ANYMAIL_API_SECRET": mailjet.SECRET_KEY},
    ),
    "sparkpost": ProviderFake("devtools.fakes.sparkpost", sparkpost.API_KEY, "api/v1/"),
    # The SMTP fake serves its counters over HTTP on a port of their own (fake_url); the
    # mail goes to args.smtp_port.
    "smtp": ProviderFake("devtools.fakes.smtp", settings={"EMAIL_HOST": "127.0.0.1"}),
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
    fake = PROVIDER_FAKES[provider]
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
        DIGEST_BATCH_SIZE=str(args.batch_size),
        LOG_LEVEL="INFO",
        PAPERBOY_BENCH_QUERY_DIR=str(query_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(fake.settings)
    if fake.key:
        env["ANYMAIL_API_KEY"] = fake.key
    if provider == "smtp":
        env.update(EMAIL_PORT=str(args.smtp_port), EMAIL_USE_TLS="false")
    else:
        env["ANYMAIL_API_URL"] = fake_url + fake.api_path
    if getattr(args, "email_backend", ""):
        # Another backend for the same provider (bench/celery_app.py): Anymail's own, say,
        # to compare with Paperboy's in the same invocation.
        env["PAPERBOY_BENCH_EMAIL_BACKEND"] = args.email_backend
    if getattr(args, "send_concurrency", 0):
        env["SEND_CONCURRENCY"] = str(args.send_concurrency)
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
