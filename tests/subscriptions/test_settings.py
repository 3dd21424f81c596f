"""Bad subscription settings stop start-up with an error naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.external import ROOT


def _load_settings(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.SITE_URL"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CONFIRM_LINK_MAX_AGE_DAYS": "a week"}, "CONFIRM_LINK_MAX_AGE_DAYS='a week'"),
        ({"SIGNUP_RATE_LIMIT": "0"}, "SIGNUP_RATE_LIMIT='0'"),
        ({"SIGNUP_EMAIL_INTERVAL_SECONDS": "1h"}, "SIGNUP_EMAIL_INTERVAL_SECONDS='1h'"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT='-1'"),
        ({"PURGE_PENDING_CRON": "daily"}, "PURGE_PENDING_CRON='daily'"),
        (
            {"CONFIRM_LINK_MAX_AGE_DAYS": "10", "PENDING_PURGE_AFTER_DAYS": "3"},
            "PENDING_PURGE_AFTER_DAYS=3 must be at least CONFIRM_LINK_MAX_AGE_DAYS=10",
        ),
    ],
)
def test_it_fails_loudly_on_bad_values(env, named):
    result = _load_settings(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr


def test_it_accepts_good_values():
    result = _load_settings(CONFIRM_LINK_MAX_AGE_DAYS="3", SIGNUP_RATE_LIMIT="5")
    assert result.returncode == 0, result.stderr
