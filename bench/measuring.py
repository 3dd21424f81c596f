"""One timed round: Paperboy sending the day's issue on its workers, or django-newsletter (the
baseline) sending the same top papers; each round checks that no mail was lost or repeated."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.environment import WORKERS, pipeline_env
from bench.probes import MemoryWatch, fake_stats, pg_xact_commit, postgres_cpu_s
from bench.seeding import batch_ensure
from devtools.fakes.postmark import TOKEN as FAKE_TOKEN
from devtools.processes import ChildProcess


@dataclass
class Run:
    kind: str
    subscribers: int
    wall_s: float = 0.0
    emails: int = 0
    emails_per_s: float = 0.0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def paperboy_run(args: argparse.Namespace, fake_url: str, fake_pid: int, workdir: Path) -> Run:
    import redis
    from django.db import connections

    batch = batch_ensure(dt.datetime.now(dt.UTC).date(), workdir)
    connections.close_all()
    redis.Redis.from_url(args.redis_url).flushdb()  # our own db: no stale tasks
    fake_stats(fake_url, reset=True)
    query_dir = workdir / f"queries-{time.monotonic_ns()}"
    query_dir.mkdir()
    env = pipeline_env(args, fake_url, query_dir)
    workers: list[ChildProcess] = []
    try:
        return _paperboy_measure(args, batch, fake_url, fake_pid, workers, env, workdir, query_dir)
    finally:
        for worker in workers:  # also when one failed to start: never leave a worker behind
            worker.stop()


def _paperboy_measure(args, batch, fake_url, fake_pid, workers, env, workdir, query_dir) -> Run:
    import psycopg

    from newsletter.tasks import send_daily_digest

    _workers_start(workers, env, workdir)
    watch = MemoryWatch()
    for index, worker in enumerate(workers, start=1):
        watch.watch(f"worker {index}", worker.process.pid)
    watch.watch("fake provider", fake_pid)
    watch.watch("bench", os.getpid())
    watch.start()
    commits_before = pg_xact_commit(args.database_url)
    pg_cpu_before = postgres_cpu_s()
    machine_before = psutil.cpu_times()
    try:
        started = time.perf_counter()
        started_at = dt.datetime.now(dt.UTC)
        send_daily_digest.delay()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            row, polls = _issue_wait_sent(conn, batch.pk, workers, args.timeout)
            wall = time.perf_counter() - started
            pg_cpu = postgres_cpu_s() - pg_cpu_before  # before the workers' sessions end
            machine_after = psutil.cpu_times()
            issue_id, _, created_at, sent_started_at, finished_at = row[:5]
            recipients, contents = row[5], row[6]
            statuses = dict(
                conn.execute(
                    "SELECT status, count(*) FROM newsletter_delivery WHERE issue_id = %s"
                    " GROUP BY status",
                    [issue_id],
                ).fetchall()
            )
    finally:
        watch.stop()
        for worker in workers:
            worker.stop()  # before counting: the pool processes write their totals per task
    time.sleep(1.0)  # PostgreSQL flushes its transaction counters about once a second
    # Less this script's own polling (one autocommit SELECT each) and final count.
    commits = pg_xact_commit(args.database_url) - commits_before - polls - 1
    busy = _machine_busy_s(machine_before, machine_after)
    ours = sum(watch.cpu.values()) + pg_cpu
    provider = fake_stats(fake_url)
    queries = _query_counts(query_dir)
    sent = statuses.get("sent", 0)
    run = Run(kind="paperboy", subscribers=args.subscribers, wall_s=round(wall, 3), emails=sent)
    run.emails_per_s = round(sent / wall, 1)
    run.peak_rss_mb = {k: round(v, 1) for k, v in sorted(watch.peaks.items())}
    run.cpu_s = {k: round(v, 2) for k, v in sorted(watch.cpu.items())}
    run.cpu_s["postgresql (all backends)"] = round(pg_cpu, 2)
    total_queries = sum(queries.values())
    run.extra = {
        "phases_s": {
            "plan (select, rank)": round((created_at - started_at).total_seconds(), 3),
            "write deliveries + start": round((sent_started_at - created_at).total_seconds(), 3),
            "send (claim, render, HTTP, record)": round(
                (finished_at - sent_started_at).total_seconds(), 3
            ),
        },
        "machine_cpu_busy_pct": round(100 * busy / (wall * (os.cpu_count() or 1)), 1),
        "other_processes_cpu_s": round(max(busy - ours, 0.0), 1),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "recipients": recipients,
        "distinct_contents": contents,
        "delivery_statuses": statuses,
        # CPU of workers, fake provider and PostgreSQL per 1,000 emails: unlike wall time,
        # not inflated when other processes share the machine.
        "cpu_s_per_1000_emails": round(
            1000 * (sum(v for k, v in watch.cpu.items() if k != "bench") + pg_cpu) / max(sent, 1),
            3,
        ),
        "db_queries": total_queries,
        "db_queries_by_kind": queries,
        "db_queries_per_1000_emails": round(1000 * total_queries / max(sent, 1), 1),
        "db_transactions": commits,
        "db_transactions_per_1000_emails": round(1000 * commits / max(sent, 1), 1),
        "http_calls": provider["http_calls"],
        "http_bytes_sent": provider["bytes_in"],
        "http_bytes_sent_per_email": round(provider["bytes_in"] / max(sent, 1)),
        "http_bytes_received": provider["bytes_out"],
        "largest_call_bytes": provider.get("largest_call_bytes"),
        "provider_accepted": provider["accepted"],
        "provider_duplicates": provider["duplicates"],
        # Most emails the fake accepted in calls that arrived within any one second.
        "provider_peak_per_second": provider.get("peak_per_second"),
        "send_rate_per_second": args.rate or None,
    }
    if provider["accepted"] != sent or provider["duplicates"] or sent != recipients:
        raise AssertionError(f"lost or repeated mail: sent={sent} {provider} {statuses}")
    return run


def _workers_start(workers: list[ChildProcess], env: dict[str, str], workdir: Path) -> None:
    """WORKERS Celery workers of one pool process each; returns when all are ready."""
    for index in range(1, WORKERS + 1):
        workers.append(
            ChildProcess(
                [
                    sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker",
                    "--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "--loglevel=INFO", f"--hostname=bench{index}@%h",
                ],
                env,
                workdir / f"worker{index}.log",
            )
        )  # fmt: skip
    for worker in workers:
        worker.wait_for(b" ready.")


def _issue_wait_sent(conn, batch_id: int, workers: list[ChildProcess], timeout: float):
    """Poll until the batch's issue is sent: its row and how many SELECTs that took."""
    polls = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT id, status, created_at, started_at, finished_at, recipient_count,"
            " content_count FROM newsletter_issue WHERE batch_id = %s",
            [batch_id],
        ).fetchone()
        polls += 1
        if row and row[1] == "sent":
            return row, polls
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker died:\n{worker.tail()}")
        time.sleep(0.05)
    raise TimeoutError(f"issue not sent within {timeout}s: {row}")


def _machine_busy_s(before, after) -> float:
    """CPU seconds the whole machine spent busy between two psutil.cpu_times() readings."""
    return sum(
        getattr(after, f) - getattr(before, f)
        for f in ("user", "system", "nice", "irq", "softirq", "steal")
        if hasattr(after, f)
    )


def _query_counts(query_dir: Path) -> dict[str, int]:
    """SQL statements by kind, added up over the pool processes' files (bench/celery_app.py)."""
    queries: dict[str, int] = {}
    for path in query_dir.glob("queries-*.json"):
        for kind, count in json.loads(path.read_text()).items():
            queries[kind] = queries.get(kind, 0) + count
    return queries


def baseline_inputs(n: int, directory: Path) -> tuple[Path, Path]:
    """The first n subscribers' addresses and the day's top papers, for django-newsletter."""

    from digests.models import BatchEntry, DailyBatch
    from subscriptions.models import Subscriber

    emails = directory / "baseline-emails.txt"
    emails.write_text(
        "\n".join(Subscriber.objects.order_by("id").values_list("email", flat=True)[:n])
    )
    batch = DailyBatch.objects.get(date=dt.datetime.now(dt.UTC).date())
    entries = (
        BatchEntry.objects.filter(batch=batch, hidden=False)
        .select_related("paper")
        # As many papers as the seeded readers get (the default choice), so both send alike.
        .order_by("rank")[: Subscriber._meta.get_field("papers_per_email").default]
    )
    papers = directory / "baseline-papers.json"
    papers.write_text(
        json.dumps(
            [
                {
                    "title": e.paper.title,
                    "summary": e.paper.ai_summary or e.paper.abstract,
                    "url": e.paper.hf_url or e.paper.arxiv_url,
                }
                for e in entries
            ]
        )
    )
    return emails, papers


def baseline_run(args: argparse.Namespace, fake_url: str, fake_pid: int, workdir: Path) -> Run:
    from django.db import connections

    emails, papers = baseline_inputs(args.baseline_subscribers, workdir)
    connections.close_all()
    fake_stats(fake_url, reset=True)
    out = workdir / "baseline.json"
    env = {
        **os.environ,
        "BASELINE_DATABASE_URL": args.baseline_database_url,
        "ANYMAIL_API_KEY": FAKE_TOKEN,
        "ANYMAIL_API_URL": fake_url,
        "PYTHONWARNINGS": "ignore",
    }
    watch = MemoryWatch()
    watch.watch("fake provider", fake_pid)
    child = ChildProcess(
        [sys.executable, "-m", "bench.baseline", "--emails", str(emails), "--papers",
         str(papers), "--out", str(out)],
        env,
        workdir / "baseline.log",
    )  # fmt: skip
    watch.watch("django-newsletter", child.process.pid)
    watch.start()
    try:
        code = child.process.wait(timeout=args.timeout)
    finally:
        watch.stop()
        child.stop()
    if code != 0:
        raise RuntimeError(f"baseline failed:\n{child.tail()}")
    result = json.loads(out.read_text())
    provider = fake_stats(fake_url)
    run = Run(
        kind="baseline",
        subscribers=result["subscribers"],
        wall_s=result["wall_s"],
        emails=provider["accepted"],
        emails_per_s=result["emails_per_s"],
    )
    run.peak_rss_mb = {k: round(v, 1) for k, v in sorted(watch.peaks.items())}
    run.peak_rss_mb["django-newsletter"] = max(
        run.peak_rss_mb.get("django-newsletter", 0.0), result["peak_rss_mb"]
    )
    run.cpu_s = {k: round(v, 2) for k, v in sorted(watch.cpu.items())}
    run.extra = {
        "version": result["version"],
        # Its process while sending (not its start-up and data set-up), and the fake's.
        "cpu_s_per_1000_emails": round(
            1000
            * (result["cpu_s"] + watch.cpu.get("fake provider", 0.0))
            / max(result["subscribers"], 1),
            3,
        ),
        "db_queries": result["db_queries"],
        "db_queries_per_1000_emails": round(
            1000 * result["db_queries"] / max(result["subscribers"], 1), 1
        ),
        "http_calls": provider["http_calls"],
        "http_bytes_sent": provider["bytes_in"],
        "provider_accepted": provider["accepted"],
    }
    if provider["accepted"] != result["subscribers"]:
        raise AssertionError(f"baseline lost mail: {provider}")
    return run
