"""The due tick's cost: a day of ticks over N readers spread over the world's time zones, and
a tick's cost with few versus many readers not yet due.

    .venv/bin/python bench/tick_bench.py --subscribers 100000

N readers (the send benchmark's subscribers, 3-5 Zipf topics each) get a rhythm: a zone
weighted as researchers are (Americas 35 %, Europe 35 %, Asia 30 %), an hour (07:00 for most),
weekdays, every day or weekly. Then:

1. **A day of ticks**: one tick every 5 minutes of simulated time over the batch's day (UTC),
   each running the real ``due_tick`` in this process with the send tasks run inline
   (eager), through the Postmark backend over HTTP to the fake Postmark in its own process.
   Per tick that had readers due: the due query's time, the tick's wall time (planning,
   writing the rows and handing every email of the slot to the provider) and how many.
2. **Not-yet-due readers**: the same 2,000 due readers, ticked with 10,000 and with N - 2,000
   other active readers not yet due, alternating (A B A B), so the two share the machine's
   state. If a tick's cost followed the readers not yet due, B would cost more.

Results go to ``bench/results/tick.json``. Peak RSS is this process's (the fake is apart).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.environment import DEFAULT_DATABASE_URL, database_create, free_port, pipeline_env
from bench.reporting import git_commit, log, machine
from devtools.processes import ChildProcess

RESULTS = Path(__file__).resolve().parent / "results"
ZONES = {  # weight in %, as researchers are spread (Americas, Europe, Asia)
    "America/New_York": 15,
    "America/Chicago": 7,
    "America/Los_Angeles": 8,
    "America/Sao_Paulo": 5,
    "Europe/London": 10,
    "Europe/Berlin": 10,
    "Europe/Paris": 8,
    "Europe/Madrid": 7,
    "Asia/Shanghai": 10,
    "Asia/Tokyo": 7,
    "Asia/Kolkata": 7,
    "Asia/Seoul": 3,
    "Asia/Singapore": 3,
}
HOURS = {7: 60, 6: 10, 8: 20, 9: 10}
FREQUENCIES = {"weekdays": 55, "every_day": 25, "weekly": 20}
STEP = dt.timedelta(minutes=5)
DUE_IN_TEST = 2000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", "-n", type=int, default=100_000)
    parser.add_argument("--few", type=int, default=10_000, help="not-yet-due readers in A")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", DEFAULT_DATABASE_URL.replace("pb_bench", "pb_tick")
        ),
    )
    parser.add_argument("--no-day", action="store_true", help="only the not-yet-due part")
    parser.add_argument("--output", type=Path, default=RESULTS / "tick.json")
    args = parser.parse_args(argv)
    args.redis_url = ""  # no broker: the tick's send tasks run inline, in this process
    args.batch_size = 0
    return args


def rhythms_seed(n: int, seed: int, day_start: dt.datetime) -> None:
    """Each reader's zone, hour and frequency, and their next slot after the day's start."""
    from django.db import connection

    from subscriptions import schedule
    from subscriptions.models import Subscriber

    rng = random.Random(seed)
    pick = lambda table: rng.choices(list(table), weights=list(table.values()))[0]  # noqa: E731
    slots: dict[tuple, dt.datetime] = {}
    table = Subscriber._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE rhythm (id bigint, zone text, hour int, frequency text, "
            "weekday int, due timestamptz)"
        )
        with cursor.cursor.copy("COPY rhythm FROM STDIN") as copy:
            for i in range(1, n + 1):
                key = (pick(ZONES), pick(HOURS), pick(FREQUENCIES), rng.randrange(7))
                if key not in slots:
                    rhythm = schedule.Rhythm(
                        zone=key[0], hour=key[1], frequency=key[2], weekday=key[3]
                    )
                    slots[key] = schedule.next_slot(rhythm, day_start - dt.timedelta(seconds=1))
                copy.write_row((i, *key, slots[key]))
        cursor.execute(
            f"UPDATE {table} s SET time_zone = r.zone, delivery_hour = r.hour, "
            f"frequency = r.frequency, weekday = r.weekday, next_due_at = r.due, status = 'active' "
            f"FROM rhythm r WHERE s.id = r.id"
        )
        cursor.execute("DROP TABLE rhythm")
        cursor.execute(f"VACUUM ANALYZE {table}")


def issues_clear() -> None:
    from django.db import connection

    from newsletter.models import Delivery, Issue, IssueContent, TickMark, TrackingEvent

    models = (TrackingEvent, Delivery, IssueContent, Issue, TickMark)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in models)}")


def timed_due_query(now: dt.datetime) -> tuple[float, int]:
    """The tick's due query as the tick runs it (since its mark), timed alone."""
    from newsletter.models import TickMark
    from newsletter.services.ticks import _due_chunk, latest_batch

    mark = TickMark.objects.order_by("pk").first()
    batch = latest_batch()
    since = mark.covered_until if mark and batch and mark.batch_id == batch.pk else None
    started = time.perf_counter()
    rows = _due_chunk(now=now, since=since, after=None)
    return time.perf_counter() - started, len(rows)


def sent_count() -> int:
    from newsletter.models import Delivery

    return Delivery.objects.filter(status=Delivery.Status.SENT).count()


def day_of_ticks(day_start: dt.datetime) -> list[dict]:
    from newsletter.services.ticks import due_tick

    ticks = []
    moment = day_start
    while moment < day_start + dt.timedelta(days=1):
        query_s, _ = timed_due_query(moment)
        before = sent_count()
        started = time.perf_counter()
        report = due_tick(now=moment)
        wall = time.perf_counter() - started
        if report.due:
            handed = sent_count() - before
            ticks.append(
                {
                    "at_utc": moment.isoformat(),
                    "due": report.due,
                    "rows": report.joined,
                    "emails_handed": handed,
                    "waiting": report.waiting,
                    "due_query_ms": round(query_s * 1000, 2),
                    "tick_s": round(wall, 3),
                }
            )
            log(f"{moment:%H:%M} due {report.due:>6} handed {handed:>6} in {wall:6.2f}s "
                f"(query {query_s * 1000:.1f} ms)")  # fmt: skip
        moment += STEP
    return ticks


def not_yet_due_tick(n: int, not_yet_due: int, at: dt.datetime) -> dict:
    """DUE_IN_TEST readers due at `at`, `not_yet_due` others active and due tomorrow, the
    rest paused (outside the due index); one tick, timed."""
    from django.db import connection

    from newsletter.services.ticks import due_tick
    from subscriptions.models import Subscriber

    issues_clear()
    table = Subscriber._meta.db_table
    last = DUE_IN_TEST + not_yet_due
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = CASE WHEN id <= %s THEN 'active' ELSE 'paused' END, "
            f"next_due_at = CASE WHEN id <= %s THEN %s::timestamptz ELSE %s::timestamptz END",
            [last, DUE_IN_TEST, at - dt.timedelta(minutes=1), at + dt.timedelta(days=1)],
        )
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(
            f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM {table} WHERE status = 'active' "
            f"AND next_due_at <= %s ORDER BY next_due_at, id LIMIT 2000",
            [at],
        )
        plan = cursor.fetchone()[0][0]
    query_s, _ = timed_due_query(at)
    started = time.perf_counter()
    report = due_tick(now=at)
    wall = time.perf_counter() - started
    assert report.due == DUE_IN_TEST and report.joined == DUE_IN_TEST, report
    return {
        "not_yet_due": not_yet_due,
        "due": report.due,
        "due_query_ms": round(query_s * 1000, 2),
        "due_query_plan": plan["Plan"]["Plans"][0]["Node Type"]
        if plan["Plan"].get("Plans")
        else plan["Plan"]["Node Type"],
        "due_query_server_ms": plan["Execution Time"],
        "tick_s": round(wall, 3),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    database_create(args.database_url, fresh=False)
    workdir = Path(tempfile.mkdtemp(prefix="tick-bench-"))
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/"
    env = pipeline_env(args, fake_url, workdir)
    env.pop("PAPERBOY_BENCH_QUERY_DIR")
    env["CELERY_BROKER_URL"] = ""
    env["LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from bench.seeding import batch_ensure, subscribers_seed

    call_command("migrate", verbosity=0)
    fake = ChildProcess(
        [sys.executable, "-m", "devtools.fakes.postmark", "--port", str(port), "--no-store"],
        os.environ.copy(),
        workdir / "fake.log",
    )
    try:
        fake.wait_for(b"fake Postmark at")
        day = dt.datetime.now(dt.UTC).date()
        day_start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
        subscribers_seed(args.subscribers, args.seed)
        batch = batch_ensure(day, workdir)
        issues_clear()
        rhythms_seed(args.subscribers, args.seed, day_start)
        log(f"a day of ticks over {args.subscribers:,} readers, batch {batch.date}")
        started = time.perf_counter()
        ticks = [] if args.no_day else day_of_ticks(day_start)
        day_s = time.perf_counter() - started
        many = args.subscribers - DUE_IN_TEST
        scaling = []
        at = day_start + dt.timedelta(hours=12, minutes=2)
        for round_ in range(args.rounds):
            for not_yet_due in (args.few, many):
                scaling.append(not_yet_due_tick(args.subscribers, not_yet_due, at))
                log(f"round {round_ + 1}: {not_yet_due:,} not yet due: {scaling[-1]}")
    finally:
        fake.stop()
    emails = sum(t["emails_handed"] for t in ticks)

    def medians(not_yet_due):
        rows = [s for s in scaling if s["not_yet_due"] == not_yet_due]
        return {
            key: statistics.median(r[key] for r in rows)
            for key in ("due_query_ms", "due_query_server_ms", "tick_s")
        }

    result = {
        "benchmark": "tick",
        "commit": git_commit(),
        "machine": machine(),
        "subscribers": args.subscribers,
        "zones": ZONES,
        "hours": HOURS,
        "frequencies": FREQUENCIES,
        "day": {
            "ticks_with_readers_due": len(ticks),
            "ticks_total": int(dt.timedelta(days=1) / STEP),
            "emails_handed": emails,
            "wall_s": round(day_s, 1),
            "slowest_tick_s": max((t["tick_s"] for t in ticks), default=0),
            "slowest_due_query_ms": max((t["due_query_ms"] for t in ticks), default=0),
            "ticks": ticks,
        },
        "not_yet_due": {
            "due": DUE_IN_TEST,
            "runs_in_order": scaling,
            "median_few": {"not_yet_due": args.few, **medians(args.few)},
            "median_many": {"not_yet_due": many, **medians(many)},
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
