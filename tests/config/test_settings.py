"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.schedules import SCHEDULES

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "config" / "settings.py"
VARIABLES = [
    "SEND_RATE_PER_SECOND",
    "SEND_QUOTA_PER_HOUR",
    "SEND_QUOTA_PER_DAY",
    "SEND_WARMUP_START",
    "SEND_WARMUP_DAILY_CAPS",
    "SEND_RATE_REDIS_URL",
    "SEND_RATE_PARK_AFTER_SECONDS",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "SITE_URL",
    "PORT",
    "SENDER_POSTAL_ADDRESS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "ANYMAIL_ESP",
    "ANYMAIL_API_KEY",
    "ANYMAIL_API_URL",
    "ANYMAIL_WEBHOOK_SECRET",
    "ANYMAIL_WEBHOOK_SIGNING_KEY",
    "ANYMAIL_API_SECRET",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AMAZON_SES_CONFIGURATION_SET",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "DEFAULT_FROM_EMAIL",
    "TIME_ZONE",
    "LOG_LEVEL",
    "PAPERBOY_VAR_DIR",
    "CLEAR_SESSIONS_CRON",
    "CELERY_TASK_TIME_LIMIT",
    "SECURE_HSTS_SECONDS",
    "DIGEST_SOURCE",
    "DIGEST_NO_MATCH",
    "DIGEST_CLAIM_LEASE_SECONDS",
    "ANYMAIL_TIMEOUT_SECONDS",
    "DIGEST_LEASE_MARGIN_SECONDS",
    "DIGEST_REQUEUE_SECONDS",
    *(schedule.variable for schedule in SCHEDULES),
]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-0123456789",
    "ALLOWED_HOSTS": "paperboy.example.org",
    "SITE_URL": "https://paperboy.example.org",
    "ANYMAIL_ESP": "postmark",
    "ANYMAIL_API_KEY": "server-token",
    "ANYMAIL_WEBHOOK_SECRET": "hook:secret",
    "DATABASE_URL": "postgres://paperboy:pw@db:5432/paperboy",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "REDIS_URL": "redis://redis:6379/1",
    "SENDER_POSTAL_ADDRESS": "Paperboy Ltd; 1 Main Street; Springfield",
}


@pytest.fixture
def load(monkeypatch):
    """Evaluate config/settings.py afresh under the given environment; return its names."""

    def _load(**env: str) -> dict:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return _load


def test_it_defaults_to_a_newcomer_setup(load):
    s = load()
    assert s["DEBUG"] is True
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DATABASES"]["default"]["NAME"].endswith("var/paperboy.sqlite3")
    assert s["CELERY_TASK_ALWAYS_EAGER"] is True
    assert s["EMAIL_BACKEND"] == "config.outbox.OutboxEmailBackend"
    assert str(s["EMAIL_OUTBOX_DIR"]).endswith("var/outbox")
    assert s["SITE_URL"] == "http://127.0.0.1:8000"
    assert s["TIME_ZONE"] == "UTC"
    assert s["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")


def test_it_reads_each_variable(load, tmp_path):
    s = load(
        **PRODUCTION,
        DEFAULT_FROM_EMAIL="Digest <digest@example.org>",
        TIME_ZONE="Europe/Paris",
        PAPERBOY_VAR_DIR=str(tmp_path),
        ANYMAIL_API_URL="http://127.0.0.1:9999/",
        LOG_LEVEL="warning",
        CLEAR_SESSIONS_CRON="5 4 * * 1",
        CELERY_TASK_TIME_LIMIT="120",
    )
    assert s["DEBUG"] is False
    assert s["SECRET_KEY"] == PRODUCTION["SECRET_KEY"]
    assert s["ALLOWED_HOSTS"] == ["paperboy.example.org"]
    assert s["SITE_URL"] == "https://paperboy.example.org"
    db = s["DATABASES"]["default"]
    assert (db["ENGINE"], db["HOST"], db["PORT"], db["NAME"], db["USER"]) == (
        "django.db.backends.postgresql",
        "db",
        5432,
        "paperboy",
        "paperboy",
    )
    assert s["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["CACHES"]["default"]["LOCATION"] == "redis://redis:6379/1"
    assert s["EMAIL_BACKEND"] == "newsletter.backends.PostmarkBatchEmailBackend"
    assert s["ANYMAIL"]["POSTMARK_SERVER_TOKEN"] == "server-token"
    assert s["ANYMAIL"]["POSTMARK_API_URL"] == "http://127.0.0.1:9999/"
    assert s["ANYMAIL"]["WEBHOOK_SECRET"] == "hook:secret"
    assert s["DEFAULT_FROM_EMAIL"] == "Digest <digest@example.org>"
    assert s["TIME_ZONE"] == "Europe/Paris"
    assert s["EMAIL_OUTBOX_DIR"] == tmp_path / "outbox"
    assert s["LOG_LEVEL"] == "WARNING"
    assert s["PAPERBOY_SCHEDULES"]["Clear expired sessions"]["crontab"] == "5 4 * * 1"
    assert s["CELERY_TASK_TIME_LIMIT"] == 120
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SESSION_COOKIE_SECURE"] is True


def test_it_reads_every_schedule_from_its_variable(load):
    times = {s.variable: f"{i} 5 * * *" for i, s in enumerate(SCHEDULES)}
    loaded = load(**times)["PAPERBOY_SCHEDULES"]
    assert {name: spec["crontab"] for name, spec in loaded.items()} == {
        s.name: times[s.variable] for s in SCHEDULES
    }
    assert {spec["task"] for spec in loaded.values()} == {s.task for s in SCHEDULES}


def test_it_folds_the_case_of_names_it_knows(load):
    s = load(ANYMAIL_ESP="Postmark", ANYMAIL_API_KEY="k", LOG_LEVEL="debug")
    assert (s["ANYMAIL_ESP"], s["LOG_LEVEL"]) == ("postmark", "DEBUG")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DATABASE_URL": "not-a-url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql2://x/y"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://host:5432/"}, "DATABASE_URL"),
        ({"CELERY_BROKER_URL": "localhost:6379"}, "CELERY_BROKER_URL"),
        ({"REDIS_URL": "http://redis"}, "REDIS_URL"),
        ({"SITE_URL": "paperboy.example.org"}, "SITE_URL"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"ANYMAIL_ESP": "pigeon"}, "ANYMAIL_ESP"),
        ({"ANYMAIL_ESP": "postmark"}, "ANYMAIL_API_KEY"),
        ({"ANYMAIL_ESP": "resend"}, "ANYMAIL_API_KEY is required for resend"),
        ({"ANYMAIL_ESP": "mailjet", "ANYMAIL_API_KEY": "k"}, "ANYMAIL_API_SECRET"),
        ({"ANYMAIL_ESP": "smtp"}, "EMAIL_HOST is required for smtp"),
        ({"ANYMAIL_ESP": "smtp", "EMAIL_HOST": "mx", "EMAIL_PORT": "x"}, "EMAIL_PORT"),
        ({"CLEAR_SESSIONS_CRON": "every day"}, "CLEAR_SESSIONS_CRON"),
        ({"CLEAR_SESSIONS_CRON": "99 3 * * *"}, "CLEAR_SESSIONS_CRON"),
        ({"CELERY_TASK_TIME_LIMIT": "soon"}, "CELERY_TASK_TIME_LIMIT"),
        ({"DIGEST_TICK_CRON": "0 25 * * *"}, "DIGEST_TICK_CRON"),
        ({"DIGEST_SOURCE": "arxiv"}, "DIGEST_SOURCE"),
        ({"DIGEST_NO_MATCH": "all"}, "DIGEST_NO_MATCH"),
        # A lease a call the provider accepts late could outlive: its rows would be sent twice.
        ({"DIGEST_CLAIM_LEASE_SECONDS": "30"}, "DIGEST_CLAIM_LEASE_SECONDS"),
        (
            {"DIGEST_CLAIM_LEASE_SECONDS": "70", "ANYMAIL_TIMEOUT_SECONDS": "40"},
            "DIGEST_CLAIM_LEASE_SECONDS=70 must exceed ANYMAIL_TIMEOUT_SECONDS=40",
        ),
        ({"DIGEST_REQUEUE_SECONDS": "0"}, "DIGEST_REQUEUE_SECONDS"),
        (
            {"ANYMAIL_ESP": "postmark", "ANYMAIL_API_KEY": "k", "ANYMAIL_API_URL": "ftp://x"},
            "ANYMAIL_API_URL",
        ),
        ({"SEND_RATE_PER_SECOND": "fast"}, "SEND_RATE_PER_SECOND"),
        ({"SEND_QUOTA_PER_DAY": "-5"}, "SEND_QUOTA_PER_DAY"),
        # A limit no worker can share: no Redis to keep the budget in.
        ({"SEND_RATE_PER_SECOND": "14"}, "SEND_RATE_REDIS_URL"),
        (
            {"REDIS_URL": "redis://r/1", "SEND_WARMUP_DAILY_CAPS": "50,lots"},
            "SEND_WARMUP_DAILY_CAPS",
        ),
        ({"REDIS_URL": "redis://r/1", "SEND_WARMUP_DAILY_CAPS": "50,0"}, "SEND_WARMUP_DAILY_CAPS"),
        ({"REDIS_URL": "redis://r/1", "SEND_WARMUP_DAILY_CAPS": "50,100"}, "SEND_WARMUP_START"),
        (
            {"SEND_WARMUP_START": "12/01/2026", "SEND_WARMUP_DAILY_CAPS": "50"},
            "SEND_WARMUP_START",
        ),
        ({"SEND_RATE_PARK_AFTER_SECONDS": "4000"}, "SEND_RATE_PARK_AFTER_SECONDS"),
        ({**PRODUCTION, "SECRET_KEY": ""}, "SECRET_KEY"),
        ({**PRODUCTION, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
        ({**PRODUCTION, "SITE_URL": "http://paperboy.example.org"}, "SITE_URL"),
        ({**PRODUCTION, "ANYMAIL_ESP": ""}, "ANYMAIL_ESP"),
        ({**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": ""}, "ANYMAIL_WEBHOOK_SECRET"),
        ({**PRODUCTION, "ANYMAIL_WEBHOOK_SIGNING_KEY": "k"}, "ANYMAIL_WEBHOOK_SIGNING_KEY"),
    ],
)
def test_it_refuses_a_bad_value_naming_the_variable(load, env, named):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load(**env)
    assert str(excinfo.value).startswith(named)


def test_it_reads_the_send_rate_and_shares_it_through_redis(load):
    names = load(
        SEND_RATE_PER_SECOND="14",
        SEND_QUOTA_PER_DAY="50000",
        SEND_WARMUP_START="2026-12-01",
        SEND_WARMUP_DAILY_CAPS="50, 100,500",
        CELERY_BROKER_URL="redis://broker:6379/0",
    )
    assert names["SEND_RATE_PER_SECOND"] == 14
    assert names["SEND_QUOTA_PER_DAY"] == 50000
    assert names["SEND_WARMUP_DAILY_CAPS"] == [50, 100, 500]
    assert names["SEND_WARMUP_START"].isoformat() == "2026-12-01"
    assert names["SEND_RATE_REDIS_URL"] == "redis://broker:6379/0"  # the broker, lacking REDIS_URL


def test_it_passes_mailguns_webhook_signing_key_to_anymail(load):
    s = load(ANYMAIL_ESP="mailgun", ANYMAIL_API_KEY="api-key", ANYMAIL_WEBHOOK_SIGNING_KEY="sig")
    assert s["ANYMAIL"]["MAILGUN_WEBHOOK_SIGNING_KEY"] == "sig"
    assert (
        "MAILGUN_WEBHOOK_SIGNING_KEY"
        not in load(ANYMAIL_ESP="mailgun", ANYMAIL_API_KEY="k")["ANYMAIL"]
    )


def test_amazon_ses_needs_boto3_and_a_region(load):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load(ANYMAIL_ESP="amazon_ses")
    if importlib.util.find_spec("boto3") is None:
        assert str(excinfo.value).startswith("ANYMAIL_ESP=amazon_ses needs boto3")
    else:
        assert str(excinfo.value).startswith("AWS_REGION is required for amazon_ses")
        s = load(ANYMAIL_ESP="amazon_ses", AWS_REGION="eu-west-1", ANYMAIL_API_URL="http://f/")
        assert s["ANYMAIL"]["AMAZON_SES_CLIENT_PARAMS"] == {
            "region_name": "eu-west-1",
            "endpoint_url": "http://f/",
            "config": {"retries": {"total_max_attempts": 1, "mode": "standard"}},
        }


@pytest.mark.parametrize(
    ("esp", "key_setting", "backend"),
    [
        ("resend", "RESEND_API_KEY", "newsletter.resend.ResendBatchEmailBackend"),
        ("brevo", "BREVO_API_KEY", "anymail.backends.brevo.EmailBackend"),
        ("sparkpost", "SPARKPOST_API_KEY", "anymail.backends.sparkpost.EmailBackend"),
    ],
)
def test_each_api_provider_gets_its_key_and_endpoint(load, esp, key_setting, backend):
    s = load(ANYMAIL_ESP=esp, ANYMAIL_API_KEY="k", ANYMAIL_API_URL="http://127.0.0.1:9/")
    assert s["EMAIL_BACKEND"] == backend
    assert s["ANYMAIL"][key_setting] == "k"
    assert s["ANYMAIL"][f"{esp.upper()}_API_URL"] == "http://127.0.0.1:9/"


def test_mailjet_gets_its_secret(load):
    s = load(ANYMAIL_ESP="mailjet", ANYMAIL_API_KEY="k", ANYMAIL_API_SECRET="s")
    assert (s["ANYMAIL"]["MAILJET_API_KEY"], s["ANYMAIL"]["MAILJET_SECRET_KEY"]) == ("k", "s")


def test_smtp_reads_the_mail_server(load):
    s = load(ANYMAIL_ESP="smtp", EMAIL_HOST="mail.example.org", EMAIL_HOST_USER="u")
    assert s["EMAIL_BACKEND"] == "newsletter.smtp.SmtpEmailBackend"
    server = (s["EMAIL_HOST"], s["EMAIL_PORT"], s["EMAIL_HOST_USER"])
    assert server == ("mail.example.org", 587, "u")
    assert (s["EMAIL_USE_TLS"], s["EMAIL_USE_SSL"]) == (True, False)
    assert load(ANYMAIL_ESP="smtp", EMAIL_HOST="mx", EMAIL_PORT="465")["EMAIL_USE_SSL"] is True


def test_it_builds_the_development_site_url_from_the_port(load):
    assert load(PORT="8101")["SITE_URL"] == "http://127.0.0.1:8101"
    # An explicit SITE_URL (a proxy, a host name) wins over the port.
    assert load(PORT="8101", SITE_URL="http://localhost:9000/")["SITE_URL"] == (
        "http://localhost:9000"
    )


@pytest.mark.parametrize("port", ["eighty", "0", "70000"])
def test_it_refuses_a_bad_port_naming_it(load, port):
    with pytest.raises(ImproperlyConfigured, match="PORT"):
        load(PORT=port)


def test_it_requires_an_explicit_site_url_in_production_whatever_the_port(load):
    env = {k: v for k, v in PRODUCTION.items() if k != "SITE_URL"}
    with pytest.raises(ImproperlyConfigured, match="SITE_URL is required"):
        load(**env, PORT="8101")


def test_it_requires_the_senders_postal_address_in_production(load):
    env = {k: v for k, v in PRODUCTION.items() if k != "SENDER_POSTAL_ADDRESS"}
    with pytest.raises(ImproperlyConfigured, match="SENDER_POSTAL_ADDRESS"):
        load(**env)
    with pytest.raises(ImproperlyConfigured, match="SENDER_POSTAL_ADDRESS"):
        load(**env, SENDER_POSTAL_ADDRESS="   ")
    assert load(**PRODUCTION)["SENDER_POSTAL_ADDRESS"] == PRODUCTION["SENDER_POSTAL_ADDRESS"]


def test_it_gives_development_a_placeholder_postal_address(load):
    assert "SENDER_POSTAL_ADDRESS" in load()["SENDER_POSTAL_ADDRESS"]
