"""The due tick's queries, measured: the two query forms its chunk changed, and where its time
in PostgreSQL goes.

    .venv/bin/python bench/tick_queries.py [-n 100000] [--suppressions 200000] [--rounds 2]

On a bench database of N readers (bench/seeding.py, the tick benchmark's rhythms) it measures,
alternating the old and the new form in each round (A B A B):

1. **2,000 ids in one query**: ``pk__in=[...]`` (one placeholder per id) against
   ``pk__any_of=[...]`` (one array, config/lookups.py): CPU of this process and wall, per query
   (median of 20 a round).
2. **The suppression check** of 2,000 readers against S suppressions: the form before,
   ``exclude(email_hash__in=<suppressions>)`` (PostgreSQL's NOT IN subplan), against
   ``subscribers_mailable()`` (NOT EXISTS). Wall per query.
3. **The tick's statements**: the real ``due_tick(now=...)`` every 5 minutes of the day's first
   8 simulated hours (no worker runs the sends), each statement's wall time summed by its kind
   (its first words).

Results: ``bench/results/tick-queries.json`` and ``.md``. Needs PostgreSQL
(BENCH_DATABASE_URL; default database ``bench_tickqueries``, which this script fills).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.environment import DEFAULT_DATABASE_URL, database_create, pipeline_env, with_database
from bench.reporting import git_commit, log, machine

RESULTS = Path(__file__).resolve().parent / "results"
IDS = 2000
REPEATS = 20
TICK_HOURS = 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", "-n", type=int, default=100_000)
    parser.add_argument("--suppressions", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", with_database(DEFAULT_DATABASE_URL, "bench_tickqueries")
        ),
    )
    args = parser.parse_args(argv)
    args.redis_url, args.batch_size, args.rate = "redis://127.0.0.1:6379/4", 500, 0
    return args


def _timed(run, repeats: int) -> dict:
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        run()
        cpu.append(1000 * (time.process_time() - c))
        wall.append(1000 * (time.perf_counter() - w))
    return {
        "cpu_ms": round(statistics.median(cpu), 2),
        "wall_ms": round(statistics.median(wall), 2),
    }


def ids_query(rounds: int) -> list[dict]:
    from subscriptions.models import Subscriber

    ids = list(range(5001, 5001 + IDS))
    forms = {
        "pk__in": lambda: list(Subscriber.objects.filter(pk__in=ids).values_list("pk", flat=True)),
        "pk__any_of": lambda: list(
            Subscriber.objects.filter(pk__any_of=ids).values_list("pk", flat=True)
        ),
    }
    runs = []
    for round_ in range(1, rounds + 1):
        for form, run in forms.items():
            run()  # warm
            runs.append({"round": round_, "form": form, **_timed(run, REPEATS)})
    return runs


def suppressions_seed(count: int) -> None:
    from django.db import connection

    from subscriptions.models import Suppression

    table = Suppression._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute(
            f"INSERT INTO {table} (email_hash, reason, created_at) "
            "SELECT md5('s' || g) || md5('t' || g), 'bounced', now() "
            "FROM generate_series(1, %s) g",
            [count],
        )
        cursor.execute(f"ANALYZE {table}")


def suppression_check(rounds: int) -> list[dict]:
    from subscriptions.models import Subscriber, Suppression
    from subscriptions.selectors import subscribers_mailable

    ids = list(range(5001, 5001 + IDS))
    before = Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, confirmed_at__isnull=False
    ).exclude(email_hash__in=Suppression.objects.values("email_hash"))
    forms = {
        "NOT IN (subquery), before": lambda: len(
            list(before.filter(pk__any_of=ids).values_list("pk", flat=True))
        ),
        "NOT EXISTS, now": lambda: len(
            list(subscribers_mailable().filter(pk__any_of=ids).values_list("pk", flat=True))
        ),
    }
    runs = []
    for round_ in range(1, rounds + 1):
        for form, run in forms.items():
            started = time.perf_counter()
            found = run()
            runs.append(
                {
                    "round": round_,
                    "form": form,
                    "readers": found,
                    "wall_ms": round(1000 * (time.perf_counter() - started), 1),
                }
            )
            log(f"  {form}: {runs[-1]['wall_ms']:,} ms")
    return runs


def tick_statements(n: int) -> dict:
    from django.db import connection

    from bench import tick_bench
    from bench.seeding import batch_ensure
    from newsletter.services.ticks import due_tick

    day = dt.datetime.now(dt.UTC).date()
    day_start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    batch_ensure(day, Path(tempfile.mkdtemp(prefix="tick-queries-")))
    tick_bench.issues_clear()
    tick_bench.rhythms_seed(n, 14, day_start)
    totals: dict[str, list] = {}

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = " ".join(sql.split()[:4])[:80]
            entry = totals.setdefault(kind, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    joined, moment = 0, day_start
    cpu, wall = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(timed):
        while moment <= day_start + dt.timedelta(hours=TICK_HOURS):
            joined += due_tick(now=moment).joined
            moment += dt.timedelta(minutes=5)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    in_statements = sum(s for _, s in totals.values())
    return {
        "readers_joined": joined,
        "tick_cpu_s": round(cpu, 2),
        "tick_wall_s": round(wall, 2),
        "statements_wall_s": round(in_statements, 2),
        "statements": [
            {
                "kind": kind,
                "count": n,
                "wall_s": round(s, 3),
                "share": round(s / in_statements, 3),
            }
            for kind, (n, s) in sorted(totals.items(), key=lambda kv: -kv[1][1])
        ],
    }


def markdown(result: dict) -> str:
    lines = [
        "# The due tick's queries",
        "",
        f"Commit {result['commit']}, {result['ran_at']}, `{result['command']}`; "
        f"{result['subscribers']:,} readers, {result['suppressions']:,} suppressions.",
        "",
        f"## {IDS:,} ids in one query (median of {REPEATS} a round, A B A B)",
        "",
        "| round | form | CPU ms | wall ms |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {r['round']} | `{r['form']}` | {r['cpu_ms']} | {r['wall_ms']} |" for r in result["ids"]
    ]
    lines += [
        "",
        f"## The suppression check of {IDS:,} readers (A B A B)",
        "",
        "| round | form | readers found | wall ms |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {r['round']} | {r['form']} | {r['readers']:,} | {r['wall_ms']:,} |"
        for r in result["suppression_check"]
    ]
    tick = result["tick"]
    lines += [
        "",
        f"## The tick's statements ({TICK_HOURS} simulated hours, ticks every 5 minutes)",
        "",
        f"{tick['readers_joined']:,} readers joined; tick {tick['tick_cpu_s']} CPU-s, "
        f"{tick['tick_wall_s']} s wall, of which {tick['statements_wall_s']} s in statements.",
        "",
        "| statement | count | wall s | share of statements |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| `{s['kind']}` | {s['count']} | {s['wall_s']} | {100 * s['share']:.0f} % |"
        for s in tick["statements"][:12]
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    database_create(args.database_url, fresh=False)
    env = pipeline_env(args, "http://127.0.0.1:1/", Path(tempfile.mkdtemp(prefix="tick-q-")))
    env.pop("PAPERBOY_BENCH_QUERY_DIR")
    env["LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from bench.seeding import subscribers_seed
    from subscriptions.models import Subscriber

    call_command("migrate", verbosity=0)
    if Subscriber.objects.count() != args.subscribers:
        log(f"seeding {args.subscribers:,} subscribers")
        subscribers_seed(args.subscribers, 14)
    log(f"{IDS:,} ids in one query")
    ids = ids_query(args.rounds)
    log("the tick's statements")
    tick = tick_statements(args.subscribers)
    log(f"seeding {args.suppressions:,} suppressions; the suppression check")
    suppressions_seed(args.suppressions)
    checks = suppression_check(args.rounds)
    suppressions_seed(0)
    result = {
        "benchmark": "tick-queries",
        "commit": git_commit(),
        "ran_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/tick_queries.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "subscribers": args.subscribers,
        "suppressions": args.suppressions,
        "ids": ids,
        "suppression_check": checks,
        "tick": tick,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tick-queries.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "tick-queries.md").write_text(markdown(result))
    log(f"wrote {RESULTS / 'tick-queries.json'} and .md")
    return result


if __name__ == "__main__":
    main()
