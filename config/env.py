"""Strict readers for environment variables: the one way settings.py reads them.

A bad value stops start-up with an error that names the variable, instead of silently becoming
a default (``DEBUG=maybe`` would otherwise mean ``False``). Values are read literally from
os.environ; django-environ is used only where it adds something (parsing database URLs).
An unset or blank variable gives the default, except in env_str and env_list, where a blank
value is a value.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Callable, Iterable
from datetime import date
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

DATABASE_SCHEMES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
}


def _raw(name: str) -> str | None:
    # os.environ directly: django-environ reads an empty value as "unset", hiding mistakes,
    # and treats a value starting with "$" as the name of another variable.
    return os.environ.get(name)


def _given(name: str) -> str | None:
    """The value stripped, or None when the variable is unset or blank."""
    raw = _raw(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def bad(name: str, value: str, why: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: {why}")


def env_str(name: str, default: str) -> str:
    """The value as given (a blank value included); the default only when unset."""
    raw = _raw(name)
    return default if raw is None else raw


def env_choice(
    name: str,
    default: str,
    *,
    choices: Iterable[str],
    fold: Callable[[str], str] | None = None,
) -> str:
    """One of `choices`; `fold` (e.g. str.lower) is applied first, for case-insensitive names."""
    allowed = tuple(choices)
    value = _given(name)
    if value is None:
        return default
    folded = fold(value) if fold else value
    if folded not in allowed:
        raise bad(name, value, f"use one of {', '.join(allowed)}")
    return folded


def env_bool(name: str, default: bool) -> bool:
    value = _given(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise bad(name, str(_raw(name)), "use one of true/false, 1/0, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _given(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad(name, str(_raw(name)), "expected an integer") from None
    if minimum is not None and number < minimum:
        raise bad(name, str(_raw(name)), f"must be at least {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated items; a blank value is an empty list."""
    raw = _raw(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: set[str]) -> str:
    """A URL with one of `schemes`. An empty default makes the variable optional ("")."""
    raw = _given(name) or default
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        raise bad(name, raw, f"the scheme must be one of {', '.join(sorted(schemes))}")
    if parts.scheme in {"http", "https", "redis", "rediss"} and not parts.hostname:
        raise bad(name, raw, "the URL has no host")
    return raw


def env_database(name: str, default: str) -> dict:
    raw = _given(name) or default
    scheme = urlsplit(raw).scheme
    if scheme not in DATABASE_SCHEMES or "://" not in raw:
        raise bad(
            name, raw, "expected a URL like postgres://user:pass@host:5432/db or sqlite:///path"
        )
    config = environ.Env.db_url_config(raw)
    if not config.get("NAME"):
        raise bad(name, raw, "the URL names no database")
    return config


def env_time_zone(name: str, default: str) -> str:
    """An IANA time zone name such as "Europe/Paris"."""
    raw = _raw(name)
    value = default if raw is None else raw
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise bad(name, value, "not a known time zone") from None
    return value


def env_crontab(name: str, default: str) -> str:
    """A five-field crontab expression ("minute hour day-of-month month day-of-week")."""
    from celery.schedules import crontab

    raw = _given(name) or default
    fields = raw.split()
    if len(fields) != 5:
        raise bad(name, raw, "expected five crontab fields: minute hour day month weekday")
    try:
        crontab(*fields[:2], day_of_month=fields[2], month_of_year=fields[3], day_of_week=fields[4])
    except ValueError as exc:
        raise bad(name, raw, str(exc)) from None
    return raw


def env_date(name: str) -> date | None:
    """An ISO date (YYYY-MM-DD), or None when unset or blank."""
    value = _given(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad(name, value, "expected a date like 2026-12-01") from None


def env_int_list(name: str, *, minimum: int | None = None) -> list[int]:
    """Comma-separated integers ("50,100,500"); unset or blank is an empty list."""
    numbers = []
    for item in env_list(name, default=[]):
        try:
            number = int(item)
        except ValueError:
            raise bad(name, str(_raw(name)), f"{item!r} is not an integer") from None
        if minimum is not None and number < minimum:
            raise bad(name, str(_raw(name)), f"every item must be at least {minimum}")
        numbers.append(number)
    return numbers
