"""What the benchmark tells its reader: progress lines, the summary of a run's rounds (written to
bench/results/<name>.json), its printed report and the README's table of all results."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench import ROOT
from bench.environment import DEFAULT_DATABASE_URL, WORKERS

if TYPE_CHECKING:
    from bench.measuring import Run

RESULTS_DIR = ROOT / "bench" / "results"

TARGETS = {"emails_per_s_at_100k": 1700, "peak_rss_mb": 300, "ratio": 20}
# Every selection distinct (--distinct): the rate at 100k, and 1M within five minutes.
DISTINCT_TARGETS = {"emails_per_s_at_100k": 4000, "wall_s_at_1m": 300}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict:
    import django
    import psycopg

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    server = ""
    with (
        contextlib.suppress(Exception),
        psycopg.connect(DEFAULT_DATABASE_URL.rsplit("/", 1)[0] + "/postgres") as conn,
    ):
        server = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": server,
    }


def git_commit() -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
    return ""


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else 0.0


def cpu_ratio(ours: list[Run], base: list[Run]) -> float | None:
    if not base:
        return None
    per_email = "cpu_s_per_1000_emails"
    return round(
        statistics.median([r.extra[per_email] for r in base])
        / statistics.median([r.extra[per_email] for r in ours]),
        1,
    )


def baseline_details(base: list[Run]) -> dict | None:
    if not base:
        return None
    return {
        "peak_rss_mb_by_process": base[0].peak_rss_mb,
        "wall_s": [r.wall_s for r in base],
        **base[0].extra,
    }


def run_summary(run: Run) -> dict:
    return {
        "kind": run.kind,
        "subscribers": run.subscribers,
        "wall_s": run.wall_s,
        "emails_per_s": run.emails_per_s,
        "peak_rss_mb": max(run.peak_rss_mb.values()),
    }


def targets_met(args: argparse.Namespace, result: dict) -> dict:
    """Which of the benchmark's targets this result meets (the worst case has its own)."""
    rate, peak = result["emails_per_s"], result["peak_rss_mb"]
    targets = {
        "emails_per_s >= 1700": rate >= TARGETS["emails_per_s_at_100k"],
        "peak_rss_mb <= 300": peak <= TARGETS["peak_rss_mb"],
        "ratio >= 20": bool(result["ratio"] and result["ratio"] >= TARGETS["ratio"]),
    }
    if result["distinct"]:
        del targets["emails_per_s >= 1700"]
        if args.subscribers >= 1_000_000:
            limit = DISTINCT_TARGETS["wall_s_at_1m"]
            targets[f"wall_s <= {limit} at 1M"] = result["wall_s"] <= limit
        else:
            rate_target = DISTINCT_TARGETS["emails_per_s_at_100k"]
            targets[f"emails_per_s >= {rate_target}"] = rate >= rate_target
    return targets


def summarize(args: argparse.Namespace, runs: list[Run]) -> dict:
    ours = [r for r in runs if r.kind == "paperboy"]
    base = [r for r in runs if r.kind == "baseline"]
    best = sorted(ours, key=lambda r: r.wall_s)[len(ours) // 2]  # the median run's details
    peak = max(max(r.peak_rss_mb.values()) for r in ours)
    rate = median([r.emails_per_s for r in ours])
    base_rate = median([r.emails_per_s for r in base])
    result = {
        "name": args.name,
        "subscribers": args.subscribers,
        "distinct": bool(getattr(args, "distinct", False)),
        "wall_s": round(statistics.median([r.wall_s for r in ours]), 2),
        "emails_per_s": rate,
        "peak_rss_mb": peak,
        "baseline_name": "django-newsletter " + (base[0].extra["version"] if base else ""),
        "baseline_subscribers": base[0].subscribers if base else 0,
        "baseline_emails_per_s": base_rate,
        "ratio": round(rate / base_rate, 1) if base_rate else None,
        # The same comparison in CPU per email (workers + fake + PostgreSQL against
        # django-newsletter + fake): what the ratio would be on a machine of its own.
        "cpu_ratio": cpu_ratio(ours, base),
        "machine": machine(),
        "emails": best.emails,
        "workers": WORKERS,
        "provider_batch": args.batch_size,
        "peak_rss_mb_by_process": best.peak_rss_mb,
        "cpu_s_by_process": best.cpu_s,
        **best.extra,
        "baseline": baseline_details(base),
        "runs": [run_summary(r) for r in runs],
        "commit": git_commit(),
        "ran_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/send_bench.py " + " ".join(sys.argv[1:]),
    }
    result["targets"] = targets_met(args, result)
    return result


TABLE_HEADER = (
    "| Subscribers | Wall | Emails/s | Peak RSS (largest process) | DB queries / 1k emails "
    "| HTTP calls | MB sent | django-newsletter emails/s (N) | Ratio |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(r: dict) -> str:
    return (
        f"| {r['subscribers']:,} | {r['wall_s']:.1f} s | {r['emails_per_s']:,.0f} "
        f"| {r['peak_rss_mb']:.0f} MB | {r.get('db_queries_per_1000_emails', 0):.0f} "
        f"| {r.get('http_calls', 0):,} | {r.get('http_bytes_sent', 0) / 1e6:,.0f} "
        f"| {r['baseline_emails_per_s']:,.1f} ({r['baseline_subscribers']:,}) "
        f"| {r['ratio'] or 0:.0f}x |"
    )


DISTINCT_HEADER = (
    "| Subscribers, every selection distinct | Distinct contents | Wall | Emails/s "
    "| Peak RSS (largest process) | CPU s / 1k emails | django-newsletter emails/s (N) | Ratio |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def distinct_row(r: dict) -> str:
    return (
        f"| {r['subscribers']:,} | {r['distinct_contents']:,} | {r['wall_s']:.1f} s "
        f"| {r['emails_per_s']:,.0f} | {r['peak_rss_mb']:.0f} MB "
        f"| {r.get('cpu_s_per_1000_emails', 0):.2f} "
        f"| {r['baseline_emails_per_s']:,.1f} ({r['baseline_subscribers']:,}) "
        f"| {r['ratio'] or 0:.0f}x |"
    )


def table(directory: Path) -> str:
    """The README's tables: shared contents (the default), then every selection distinct."""
    results = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    results = [r for r in results if "emails_per_s" in r and "baseline_subscribers" in r]
    results.sort(key=lambda r: r["subscribers"])
    shared = [r for r in results if not r.get("distinct")]
    distinct = [r for r in results if r.get("distinct")]
    lines = [TABLE_HEADER, *(table_row(r) for r in shared)]
    if distinct:
        lines += ["", DISTINCT_HEADER, *(distinct_row(r) for r in distinct)]
    return "\n".join(lines)


def report(result: dict, path: Path) -> None:
    out = io.StringIO()
    out.write(f"\nPaperboy, {result['subscribers']:,} subscribers, {result['workers']} workers:\n")
    out.write(
        f"  wall {result['wall_s']:.2f} s, {result['emails_per_s']:,.0f} emails/s, "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (largest process)\n"
    )
    for phase, seconds in result["phases_s"].items():
        out.write(f"    {phase}: {seconds:.2f} s\n")
    for process, mb in result["peak_rss_mb_by_process"].items():
        cpu = result["cpu_s_by_process"].get(process)
        out.write(f"    {process}: {mb:.0f} MB peak" + (f", {cpu:.1f} s CPU\n" if cpu else "\n"))
    out.write(f"    postgresql: {result['cpu_s_by_process']['postgresql (all backends)']} s CPU\n")
    out.write(
        f"    machine CPU busy {result['machine_cpu_busy_pct']}% of {result['machine']['cores']}"
        f" cores; processes outside the benchmark used {result['other_processes_cpu_s']} s\n"
    )
    out.write(
        f"  {result['cpu_s_per_1000_emails']} CPU s per 1,000 emails (workers, fake, PostgreSQL);"
        f" {result['distinct_contents']:,} distinct contents; DB "
        f"{result['db_queries_per_1000_emails']} queries and "
        f"{result['db_transactions_per_1000_emails']} transactions per 1,000 emails; "
        f"{result['http_calls']:,} HTTP calls, {result['http_bytes_sent'] / 1e6:,.1f} MB sent\n"
    )
    if result["baseline"]:
        out.write(
            f"django-newsletter {result['baseline_name'].split()[-1]}, "
            f"{result['baseline_subscribers']:,} subscribers: "
            f"{result['baseline_emails_per_s']:,.1f} emails/s\n"
            f"ratio: {result['ratio']}x django-newsletter's emails/s; "
            f"{result['cpu_ratio']}x less CPU per email\n"
        )
    out.write(f"targets: {result['targets']}\nwrote {path}\n\n")
    if result["distinct"]:
        out.write(f"{DISTINCT_HEADER}\n{distinct_row(result)}\n")
    else:
        out.write(f"{TABLE_HEADER}\n{table_row(result)}\n")
    print(out.getvalue(), flush=True)
