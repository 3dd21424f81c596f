"""The send benchmark stays runnable: a smoke run at N=1,000, end to end, in the suite.

Only the shape and the bookkeeping of the results are asserted, never timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devtools.processes import ChildProcess
from tests.external import ROOT, database_url_for_subprocess, require_postgres, require_redis

pytestmark = pytest.mark.slow

REQUIRED_KEYS = {
    "subscribers": int,
    "wall_s": float,
    "emails_per_s": float,
    "peak_rss_mb": float,
    "baseline_name": str,
    "baseline_subscribers": int,
    "baseline_emails_per_s": float,
    "ratio": float,
    "machine": dict,
}


def test_it_runs_the_benchmark_end_to_end_and_writes_well_formed_results(tmp_path):
    require_postgres()
    redis_url = require_redis()
    # A database of its own next to the test database; the run creates and drops it.
    database_url = database_url_for_subprocess() + "_bench"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [
        sys.executable, "bench/send_bench.py", "--subscribers", "1000",
        "--baseline-subscribers", "50", "--name", "smoke", "--results-dir", str(tmp_path),
        "--database-url", database_url, "--redis-url", redis_url, "--fresh", "--drop",
        "--timeout", "300",
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    result = json.loads((tmp_path / "smoke.json").read_text())
    for key, kind in REQUIRED_KEYS.items():
        assert isinstance(result[key], kind), (key, result.get(key))
    assert result["subscribers"] == 1000
    assert result["emails"] == result["recipients"] == result["provider_accepted"]
    assert result["provider_duplicates"] == 0
    assert result["delivery_statuses"] == {"sent": result["emails"]}
    assert result["baseline_name"].startswith("django-newsletter ")
    assert result["baseline_subscribers"] == 50
    assert result["baseline"]["provider_accepted"] == 50
    assert result["ratio"] > 0 and result["wall_s"] > 0 and result["peak_rss_mb"] > 0
    assert {"worker 1", "worker 2", "fake provider"} <= set(result["peak_rss_mb_by_process"])
    assert result["http_calls"] > 0 and result["http_bytes_sent"] > 0
    assert result["db_queries"] > 0 and result["db_transactions"] > 0
    assert result["machine"]["cores"] >= 1
    assert "| 1,000 |" in run.stdout  # the README table row

    table = subprocess.run(
        [sys.executable, "bench/send_bench.py", "--table", "--results-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert table.stdout.startswith("| Subscribers |") and "| 1,000 |" in table.stdout


def test_a_child_process_waits_for_its_own_marker_not_an_earlier_runs(tmp_path):
    """The benchmark starts new workers each round on the same log files: a round must not
    start its clock on the previous round's "ready"."""
    log = tmp_path / "worker.log"
    first = ChildProcess([sys.executable, "-c", "print('ready.', flush=True)"], {}, log)
    first.wait_for(b"ready.", timeout=10)
    first.process.wait()

    second = ChildProcess([sys.executable, "-c", "import time; time.sleep(30)"], {}, log)
    try:
        with pytest.raises(TimeoutError):
            second.wait_for(b"ready.", timeout=0.5)
        assert second.output() == b""
    finally:
        second.kill()
