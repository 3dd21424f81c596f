"""Benchmark the daily-digest send pipeline against django-newsletter, in one command.

    .venv/bin/python bench/send_bench.py --subscribers 100000 --name 100k

Creates N subscribers (3-5 topics each, Zipf-like topic popularity) and today's batch of 50
papers (the bundled sample, topped up from the shared corpus), then runs the real pipeline:
the ``send_daily_digest`` task on 2 real Celery worker processes plans the issue (selection,
Delivery rows by COPY) and enqueues the chunks; the workers claim, render and send them
through the real Anymail Postmark backend over HTTP to the fake Postmark (its own process),
and record each recipient's status in PostgreSQL. Wall time runs from enqueueing the task to
the issue being marked sent.

django-newsletter (the baseline) sends the same top papers to the first
``--baseline-subscribers`` of the same subscribers through the same backend and fake, in the
same invocation; with ``--repeats`` the two alternate (baseline, Paperboy, baseline, ...) and
medians are reported. Peak RSS is the kernel's high-water mark (VmHWM) of every process, also
sampled with psutil. Figures go to ``bench/results/<name>.json``; ``--table`` prints the
README table of all results.

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL; the defaults use the
databases ``pb_bench``/``pb_bench_baseline`` and Redis db 7, which this script empties).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import itertools
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/send_bench.py`

from devtools.fakes.postmark import TOKEN as FAKE_TOKEN  # noqa: E402
from devtools.processes import ChildProcess  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
SAMPLE = ROOT / "digests" / "sample" / "hf_daily_papers.json"
CORPUS = ROOT / "tests" / "fixtures" / "trending-papers-page.txt"  # provenance beside it
BATCH_PAPERS = 50
ZIPF_EXPONENT = 1.1
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/pb_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
WORKERS = 2

TARGETS = {"emails_per_s_at_100k": 1700, "peak_rss_mb": 300, "ratio": 20}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Processes and their memory ----------------------------------------------------------------


def vm_hwm_mb(pid: int) -> float:
    """The kernel's record of a process's peak resident set, in MB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemoryWatch:
    """Samples the RSS of named process trees every `interval` s; keeps each process's peak."""

    def __init__(self, interval: float = 0.5) -> None:
        # VmHWM is the kernel's exact peak, so sampling only has to catch each process once;
        # a faster poll would take CPU from the processes being measured (2 cores).
        self.interval = interval
        self.roots: dict[str, int] = {}
        self.peaks: dict[str, float] = {}  # "role (pid)" -> MB
        self.cpu: dict[str, float] = {}  # CPU seconds since the watch started
        self._cpu_start: dict[str, float] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, role: str, pid: int) -> None:
        self.roots[role] = pid

    def start(self) -> MemoryWatch:
        self._thread.start()
        return self

    def _processes(self):
        for role, pid in list(self.roots.items()):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                yield f"{role}", root
                if role == "bench":
                    continue  # its children are the other roots
                for index, child in enumerate(root.children(recursive=True), start=1):
                    yield f"{role} child {index}", child

    def sample(self) -> None:
        for role, process in self._processes():
            with contextlib.suppress(psutil.Error):
                name = self._names.setdefault(process.pid, role)
                rss = process.memory_info().rss / 2**20
                peak = max(rss, vm_hwm_mb(process.pid))
                self.peaks[name] = max(self.peaks.get(name, 0.0), peak)
                times = process.cpu_times()
                used = times.user + times.system
                self.cpu[name] = used - self._cpu_start.setdefault(name, used)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.sample()  # last look at every process's high-water mark before they go
        self._stop.set()
        self._thread.join()


def postgres_cpu_s() -> float:
    """CPU seconds used so far by all PostgreSQL server processes on this machine.

    Backends that have exited count too, through the postmaster's total for its reaped
    children: a worker that reconnects (CELERY_DB_REUSE_MAX) ends a backend mid-run.
    """
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in {"postgres", "postmaster"}:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Configuration -----------------------------------------------------------------------------


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY="bench-only-" + "x" * 50,
        ALLOWED_HOSTS="paperboy.example",
        SITE_URL="https://paperboy.example",
        ANYMAIL_WEBHOOK_SECRET="bench:bench",
        DATABASE_URL=args.database_url,
        DATABASE_CONN_MAX_AGE="60",  # as docker-compose.yml runs production
        CELERY_BROKER_URL=args.redis_url,
        ANYMAIL_ESP="postmark",
        ANYMAIL_API_KEY=FAKE_TOKEN,
        ANYMAIL_API_URL=fake_url,
        DIGEST_BATCH_SIZE=str(args.batch_size),
        LOG_LEVEL="INFO",
        PAPERBOY_BENCH_QUERY_DIR=str(query_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


# --- Data --------------------------------------------------------------------------------------


def corpus_papers(count: int) -> list[dict]:
    """Extra papers in the HF API's shape from the shared corpus (title line, abstract line)."""
    if count <= 0 or not CORPUS.is_file():
        return []
    blocks = [b.strip() for b in CORPUS.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    papers = []
    for title, abstract in itertools.pairwise(blocks):
        if len(papers) == count:
            break
        if 20 < len(title) < 250 and "\n" not in title and len(abstract) > 400:
            number = f"2699.{len(papers) + 1:05d}"
            papers.append(
                {
                    "paper": {
                        "id": number,
                        "title": title,
                        "summary": abstract,
                        "upvotes": max(1, 40 - len(papers)),
                        "authors": [{"name": "Corpus Author"}],
                        "publishedAt": "2026-01-01T00:00:00.000Z",
                    },
                    "title": title,
                    "summary": abstract,
                }
            )
    return papers


def papers_file(directory: Path) -> Path:
    items = json.loads(SAMPLE.read_text(encoding="utf-8"))[:BATCH_PAPERS]
    items += corpus_papers(BATCH_PAPERS - len(items))
    path = directory / "papers.json"
    path.write_text(json.dumps(items))
    return path


def batch_ensure(day: dt.date, directory: Path):
    """Today's approved batch of the benchmark papers; an earlier run's issue is removed."""
    from django.db import connection

    from digests.models import DailyBatch
    from digests.services import batch_approve, batch_ingest
    from newsletter.models import Delivery, Issue, IssueContent, TrackingEvent

    tables = ", ".join(m._meta.db_table for m in (TrackingEvent, Delivery, IssueContent, Issue))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")
    batch = DailyBatch.objects.filter(date=day).first()
    if batch is None or batch.entries.count() < BATCH_PAPERS:
        batch_ingest(day=day, path=papers_file(directory))
        batch = DailyBatch.objects.get(date=day)
    DailyBatch.objects.filter(pk=batch.pk).update(status=DailyBatch.Status.DRAFT)
    batch.refresh_from_db()
    return batch_approve(batch=batch)


def topic_choices(rng: random.Random, topic_ids: list[int], k: int) -> list[int]:
    weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, len(topic_ids) + 1)]
    chosen: set[int] = set()
    while len(chosen) < k:
        chosen.update(rng.choices(topic_ids, weights=weights, k=k - len(chosen)))
    return sorted(chosen)


def subscribers_seed(n: int, seed: int) -> None:
    """N active, confirmed subscribers with 3-5 topics each (Zipf-like); COPY, ids 1..N."""
    from django.db import connection

    from digests.models import Topic
    from subscriptions.models import Subscriber

    subscriber_table = Subscriber._meta.db_table
    through_table = Subscriber.topics.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), coalesce(max(id), 0) FROM {subscriber_table}")
        count, top = cursor.fetchone()
    if count == n and top == n:
        log(f"reusing {n:,} subscribers")
        return
    log(f"seeding {n:,} subscribers")
    topic_ids = list(Topic.objects.filter(is_active=True).order_by("id").values_list("id", flat=1))
    rng = random.Random(seed)
    rng.shuffle(topic_ids)  # popularity order: a random but fixed ranking of the topics
    now = dt.datetime.now(dt.UTC)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {subscriber_table} RESTART IDENTITY CASCADE")
        raw = cursor.cursor
        columns = "key, email, email_hash, status, created_at, confirmed_at"
        with raw.copy(f"COPY {subscriber_table} ({columns}) FROM STDIN") as copy:
            for i in range(1, n + 1):
                email = f"reader{i:07d}@bench.example.com"
                digest = hashlib.sha256(email.encode()).hexdigest()
                key = uuid.UUID(int=rng.getrandbits(128))
                copy.write_row((key, email, digest, "active", now, now))
        with raw.copy(f"COPY {through_table} (subscriber_id, topic_id) FROM STDIN") as copy:
            for i in range(1, n + 1):
                for topic_id in topic_choices(rng, topic_ids, rng.choice((3, 4, 5))):
                    copy.write_row((i, topic_id))
        cursor.execute(f"SELECT count(*), max(id) FROM {subscriber_table}")
        assert cursor.fetchone() == (n, n), "subscriber ids are not 1..N"
        cursor.execute(f"ANALYZE {subscriber_table}; ANALYZE {through_table}")


# --- One Paperboy run ------------------------------------------------------------------------


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


def fake_stats(url: str, *, reset: bool = False) -> dict:
    if reset:
        urlopen(Request(url + "_fake/reset", data=b"", method="POST"), timeout=10).read()  # noqa: S310
    with urlopen(url + "_fake/stats", timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def pg_xact_commit(url: str) -> int:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [name]
        ).fetchone()
    return int(row[0])


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
    watch = MemoryWatch()
    for index, worker in enumerate(workers, start=1):
        watch.watch(f"worker {index}", worker.process.pid)
    watch.watch("fake provider", fake_pid)
    watch.watch("bench", os.getpid())
    watch.start()
    commits_before = pg_xact_commit(args.database_url)
    pg_cpu_before = postgres_cpu_s()
    machine_before = psutil.cpu_times()
    polls = 0
    try:
        started = time.perf_counter()
        started_at = dt.datetime.now(dt.UTC)
        send_daily_digest.delay()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT id, status, created_at, started_at, finished_at, recipient_count,"
                    " content_count FROM newsletter_issue WHERE batch_id = %s",
                    [batch.pk],
                ).fetchone()
                polls += 1
                if row and row[1] == "sent":
                    break
                for worker in workers:
                    if worker.process.poll() is not None:
                        raise RuntimeError(f"worker died:\n{worker.tail()}")
                time.sleep(0.05)
            else:
                raise TimeoutError(f"issue not sent within {args.timeout}s: {row}")
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
    busy = sum(
        getattr(machine_after, f) - getattr(machine_before, f)
        for f in ("user", "system", "nice", "irq", "softirq", "steal")
        if hasattr(machine_after, f)
    )
    ours = sum(watch.cpu.values()) + pg_cpu
    provider = fake_stats(fake_url)
    queries: dict[str, int] = {}
    for path in query_dir.glob("queries-*.json"):
        for kind, count in json.loads(path.read_text()).items():
            queries[kind] = queries.get(kind, 0) + count
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
        "http_bytes_received": provider["bytes_out"],
        "provider_accepted": provider["accepted"],
        "provider_duplicates": provider["duplicates"],
    }
    if provider["accepted"] != sent or provider["duplicates"] or sent != recipients:
        raise AssertionError(f"lost or repeated mail: sent={sent} {provider} {statuses}")
    return run


# --- One baseline run ------------------------------------------------------------------------


def baseline_inputs(n: int, directory: Path) -> tuple[Path, Path]:
    """The first n subscribers' addresses and the day's top papers, for django-newsletter."""
    from django.conf import settings

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
        .order_by("rank")[: settings.DIGEST_MAX_PAPERS]
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


# --- Reporting -------------------------------------------------------------------------------


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
        "wall_s": round(statistics.median([r.wall_s for r in ours]), 2),
        "emails_per_s": rate,
        "peak_rss_mb": peak,
        "baseline_name": "django-newsletter " + (base[0].extra["version"] if base else ""),
        "baseline_subscribers": base[0].subscribers if base else 0,
        "baseline_emails_per_s": base_rate,
        "ratio": round(rate / base_rate, 1) if base_rate else None,
        # The same comparison in CPU per email (workers + fake + PostgreSQL against
        # django-newsletter + fake): what the ratio would be on a machine of its own.
        "cpu_ratio": (
            round(
                statistics.median([r.extra["cpu_s_per_1000_emails"] for r in base])
                / statistics.median([r.extra["cpu_s_per_1000_emails"] for r in ours]),
                1,
            )
            if base
            else None
        ),
        "machine": machine(),
        "emails": best.emails,
        "workers": WORKERS,
        "provider_batch": args.batch_size,
        "peak_rss_mb_by_process": best.peak_rss_mb,
        "cpu_s_by_process": best.cpu_s,
        **best.extra,
        "baseline": (
            {
                "peak_rss_mb_by_process": base[0].peak_rss_mb,
                "wall_s": [r.wall_s for r in base],
                **base[0].extra,
            }
            if base
            else None
        ),
        "runs": [
            {
                "kind": r.kind,
                "subscribers": r.subscribers,
                "wall_s": r.wall_s,
                "emails_per_s": r.emails_per_s,
                "peak_rss_mb": max(r.peak_rss_mb.values()),
            }
            for r in runs
        ],
        "commit": git_commit(),
        "ran_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/send_bench.py " + " ".join(sys.argv[1:]),
    }
    result["targets"] = {
        "emails_per_s >= 1700": rate >= TARGETS["emails_per_s_at_100k"],
        "peak_rss_mb <= 300": peak <= TARGETS["peak_rss_mb"],
        "ratio >= 20": bool(result["ratio"] and result["ratio"] >= TARGETS["ratio"]),
    }
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


def table(directory: Path) -> str:
    results = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    results.sort(key=lambda r: r["subscribers"])
    return "\n".join([TABLE_HEADER, *(table_row(r) for r in results)])


# --- Main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", "-n", type=int, default=100_000)
    parser.add_argument("--name", help="results file name (default: the subscriber count)")
    parser.add_argument(
        "--baseline-subscribers",
        type=int,
        default=2_000,
        help="django-newsletter's N (it sends one by one; rates are compared per email)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternate baseline and Paperboy runs this often"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="DIGEST_BATCH_SIZE")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--fresh", action="store_true", help="recreate the bench databases")
    parser.add_argument("--drop", action="store_true", help="drop the bench databases at the end")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--baseline-database-url", default=None)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--table", action="store_true", help="print the README table and exit")
    args = parser.parse_args(argv)
    args.name = args.name or str(args.subscribers)
    args.baseline_subscribers = min(args.baseline_subscribers, args.subscribers)
    if args.baseline_database_url is None:
        name = urlsplit(args.database_url).path.lstrip("/")
        args.baseline_database_url = with_database(args.database_url, f"{name}_baseline")
    return args


def django_setup(args: argparse.Namespace) -> None:
    env = pipeline_env(args, "http://127.0.0.1:1/", Path(tempfile.gettempdir()))
    env.pop("PAPERBOY_BENCH_QUERY_DIR")
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.table:
        print(table(args.results_dir))
        return None
    database_create(args.database_url, fresh=args.fresh)
    if not args.no_baseline:
        database_create(args.baseline_database_url, fresh=True)
    django_setup(args)
    workdir = Path(tempfile.mkdtemp(prefix="send-bench-"))
    runs: list[Run] = []
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/"
    fake = ChildProcess(
        [sys.executable, "-m", "devtools.fakes.postmark", "--port", str(port), "--no-store"],
        os.environ.copy(),
        workdir / "fake.log",
    )
    try:
        fake.wait_for(b"fake Postmark at")
        started = time.perf_counter()
        subscribers_seed(args.subscribers, args.seed)
        batch_ensure(dt.datetime.now(dt.UTC).date(), workdir)
        log(f"seeded in {time.perf_counter() - started:.1f}s")
        for repeat in range(1, args.repeats + 1):
            if not args.no_baseline:
                log(f"baseline {repeat}/{args.repeats}: N={args.baseline_subscribers:,}")
                runs.append(baseline_run(args, fake_url, fake.process.pid, workdir))
                log(f"  {runs[-1].emails_per_s:,.1f} emails/s ({runs[-1].wall_s:.1f}s)")
            log(f"paperboy {repeat}/{args.repeats}: N={args.subscribers:,}")
            runs.append(paperboy_run(args, fake_url, fake.process.pid, workdir))
            log(f"  {runs[-1].emails_per_s:,.1f} emails/s ({runs[-1].wall_s:.1f}s)")
        if not args.no_baseline and args.repeats > 1:
            log("baseline, closing the alternation")
            runs.append(baseline_run(args, fake_url, fake.process.pid, workdir))
    finally:
        fake.stop()
        if args.drop:
            from django.db import connections

            connections.close_all()
            database_drop(args.database_url)
            if not args.no_baseline:
                database_drop(args.baseline_database_url)
    result = summarize(args, runs)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    report(result, path)
    return result


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
    out.write(f"targets: {result['targets']}\nwrote {path}\n\n{TABLE_HEADER}\n")
    out.write(table_row(result) + "\n")
    print(out.getvalue(), flush=True)


if __name__ == "__main__":
    main()
