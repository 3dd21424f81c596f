"""Benchmark the daily-digest send pipeline against django-newsletter, in one command.

    .venv/bin/python bench/send_bench.py --subscribers 100000 --name 100k

Creates N subscribers (3-5 topics each, Zipf-like topic popularity) and today's batch of 50
papers (the bundled sample, topped up from the shared corpus), then runs the real pipeline:
the ``send_daily_digest`` task on 2 real Celery worker processes plans the issue (selection,
Delivery rows by COPY) and enqueues the chunks; the workers claim, render and send them
through the real Anymail Postmark backend over HTTP to the fake Postmark (its own process),
and record each recipient's status in PostgreSQL. Wall time runs from enqueueing the task to
the issue being marked sent.

``--rate 50`` sets the shared send rate (emails per second) for Paperboy's workers; the
report then gives the most emails the fake received within any one second.

``--distinct`` is the worst case of personal ranking: every subscriber also gets a profile of
their own (a "what I work on" vector near a random mix of the day's papers, focus anywhere in
0-100), so nearly every selection is distinct and nothing is rendered for two readers alike;
the report gives the number of distinct contents the issue had.

django-newsletter (the baseline) sends the same top papers to the first
``--baseline-subscribers`` of the same subscribers through the same backend and fake, in the
same invocation; with ``--repeats`` the two alternate (baseline, Paperboy, baseline, ...) and
medians are reported. Peak RSS is the kernel's high-water mark (VmHWM) of every process, also
sampled with psutil. Figures go to ``bench/results/<name>.json``; ``--table`` prints the
README table of all results.

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL; the defaults use the
databases ``pb_bench``/``pb_bench_baseline`` and Redis db 7, which this script empties).

This file is the command line and the order of the steps; each step lives beside it:
``environment`` (databases, settings), ``seeding`` (subscribers, the batch), ``measuring`` (one
round of Paperboy or of the baseline), ``probes`` (memory, CPU and counters a round reads) and
``reporting`` (progress, the results file, the table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/send_bench.py`

from bench.environment import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    database_create,
    database_drop,
    django_setup,
    free_port,
    with_database,
)
from bench.measuring import Run, baseline_run, paperboy_run  # noqa: E402
from bench.reporting import RESULTS_DIR, log, report, summarize, table  # noqa: E402
from bench.seeding import batch_ensure, profiles_seed, subscribers_seed  # noqa: E402
from devtools.processes import ChildProcess  # noqa: E402


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
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="every subscriber's selection distinct (a profile each: interest vector, focus)",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="SEND_RATE_PER_SECOND for Paperboy's workers (0: none); the report gives the "
        "fake's peak emails in any second",
    )
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
        profiles_seed(args.subscribers, args.seed, distinct=args.distinct)  # reads the papers
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


if __name__ == "__main__":
    main()
