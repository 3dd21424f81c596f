"""The per-provider benchmark stays runnable: a smoke run at N=300 through every variant.

Only the shape and the bookkeeping of the results are asserted, never timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.external import ROOT, database_url_for_subprocess, require_postgres, require_redis

pytestmark = pytest.mark.slow


def test_it_sends_through_every_provider_and_writes_well_formed_results(tmp_path):
    require_postgres()
    redis_url = require_redis()
    database_url = database_url_for_subprocess() + "_providers_bench"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [
        sys.executable, "bench/providers_bench.py", "--subscribers", "300",
        "--baseline-subscribers", "20", "--name", "smoke", "--results-dir", str(tmp_path),
        "--database-url", database_url, "--redis-url", redis_url, "--fresh", "--drop",
        "--timeout", "300",
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    result = json.loads((tmp_path / "providers-smoke.json").read_text())
    variants = {v["variant"]: v for v in result["variants"]}
    assert set(variants) == {
        "postmark",
        "mailgun-anymail",
        "mailgun",
        "sendgrid",
        "amazon_ses",
        "resend",
        "brevo",
        "mailjet",
        "sparkpost",
        "smtp",
    }
    for variant in variants.values():
        assert variant["emails"] == 300
        assert variant["http_calls"] > 0 and variant["bytes_sent_per_email"] > 0
        assert variant["largest_call_bytes"] > 0 and variant["peak_rss_mb"] > 0
    # The same contents go out as one call each through the providers that merge.
    for name in ("mailgun", "sendgrid", "sparkpost", "brevo"):
        assert variants[name]["http_calls"] == variants[name]["distinct_contents"], name
    # Amazon SES's SendBulkEmail: a content's readers of a claim of 50 in one call.
    ses = variants["amazon_ses"]
    assert ses["distinct_contents"] <= ses["http_calls"] < 300
    # Mailjet's calls carry at most 50 messages: a content of more readers takes more.
    assert variants["mailjet"]["http_calls"] >= variants["mailjet"]["distinct_contents"]
    assert variants["mailjet"]["http_calls"] < 300
    assert (
        variants["mailgun"]["bytes_sent_per_email"]
        < variants["mailgun-anymail"]["bytes_sent_per_email"]
    )
    # SMTP is sent one copy per call: one call per copy; Resend one per claim of 100.
    assert variants["smtp"]["http_calls"] == 300
    assert variants["resend"]["http_calls"] == 3
    assert result["baseline"]["subscribers"] == 20
    assert (tmp_path / "providers-smoke.md").read_text().startswith("300 subscribers")
