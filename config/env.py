"""Strict readers for environment variables.

django-environ does the parsing; these wrappers add what it does not: a bad value stops
start-up with an error that names the variable, instead of silently becoming a default
(``DEBUG=maybe`` would otherwise mean ``False``).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

DATABASE_SCHEMES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
}


def _raw(name: str) -> str | None:
    # os.environ directly: django-environ reads an empty value as "unset", hiding mistakes.
    return os.environ.get(name)


def bad(name: str, value: str, why: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: {why}")


def env_bool(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad(name, raw, "use one of true/false, 1/0, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = _raw(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(name, raw, "expected an integer") from None
    if minimum is not None and value < minimum:
        raise bad(name, raw, f"must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = _raw(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: set[str]) -> str:
    raw = (_raw(name) or "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        raise bad(name, raw, f"the scheme must be one of {', '.join(sorted(schemes))}")
    if parts.scheme in {"http", "https", "redis", "rediss"} and not parts.hostname:
        raise bad(name, raw, "the URL has no host")
    return raw


def env_database(name: str, default: str) -> dict:
    raw = (_raw(name) or "").strip() or default
    scheme = urlsplit(raw).scheme
    if scheme not in DATABASE_SCHEMES or "://" not in raw:
        raise bad(
            name, raw, "expected a URL like postgres://user:pass@host:5432/db or sqlite:///path"
        )
    config = env.db_url_config(raw)
    if not config.get("NAME"):
        raise bad(name, raw, "the URL names no database")
    return config


def env_crontab(name: str, default: str) -> str:
    """A five-field crontab expression ("minute hour day-of-month month day-of-week")."""
    from celery.schedules import crontab

    raw = (_raw(name) or "").strip() or default
    fields = raw.split()
    if len(fields) != 5:
        raise bad(name, raw, "expected five crontab fields: minute hour day month weekday")
    try:
        crontab(*fields[:2], day_of_month=fields[2], month_of_year=fields[3], day_of_week=fields[4])
    except ValueError as exc:
        raise bad(name, raw, str(exc)) from None
    return raw
