"""The due tick at production's shape: a simulated day of ticks over N readers spread over the
world's time zones, the sends on real Celery workers, against the single send of the same readers.

    .venv/bin/python bench/tick_bench.py --subscribers 1000000 --rounds 1

N readers (the send benchmark's subscribers, 3-5 Zipf topics each) get a rhythm: a zone
weighted as researchers are (Americas 35 %, Europe 35 %, Asia 30 %), an hour (07:00 for most),
weekdays, every day or weekly. Each round runs, in this order:

A. **The single send** (bench/measuring.py's ``paperboy_run``, as bench/send_bench.py runs it):
   ``send_daily_digest`` on 2 Celery workers sends the batch to all N readers at once.
B. **A day of ticks**: one tick every 5 minutes of simulated time over the batch's day (UTC).
   Only the clock the tick sees is simulated: this process runs the real ``due_tick(now=...)``
   (as beat's task would, in one process); the 2 workers (real time, no frozen clock) claim
   and send the chunks it enqueues through the Postmark backend over HTTP to the fake Postmark
   (its own process). A tick that wrote rows is its slot's instant; the clock moves on once
   every email of it was handed to the provider, or after 5 real minutes (when the next tick
   would come anyway), so idle time is skipped but no slot is given less time than beat would.
   Per tick that wrote rows: the local-hour slots it served, its readers and emails, the tick's
   own wall and CPU time, and the time from the slot's instant to the last email of the slot
   recorded as handed to the provider (its row's ``sent_at``).

The day's work (CPU seconds of every process: tick, workers, fake, PostgreSQL; and wall) is
compared with the single send's, per email and in total: what the day costs beyond the single
send, per slot. Peak RSS of every process (the kernel's high-water mark). With ``--rounds 2``
the two alternate A B A B in the same invocation and medians are reported.

``--scaling`` adds the not-yet-due comparison: the same 2,000 due readers ticked with 10,000
and with N - 2,000 other active readers not yet due, alternating, so the two share the
machine's state (bench/results/tick-1m-not-yet-due.json is that part alone at 1M).

Results go to ``bench/results/<name>.json`` and ``.md`` (name ``tick-1m`` for 1M readers).
Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL; by default the database
``bench_tickbench`` and Redis db 4, which this script empties).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.environment import (
    DEFAULT_DATABASE_URL,
    database_create,
    free_port,
    pipeline_env,
    with_database,
)
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
# Beat's next tick comes 5 minutes after this one: a slot still sending by then shares the
# machine with it, as it would in production.
SLOT_WAIT = dt.timedelta(minutes=5)
BENCH_REDIS_URL = "redis://127.0.0.1:6379/4"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", "-n", type=int, default=100_000)
    parser.add_argument("--name", help="results file name (default tick-1m, tick-100k, ...)")
    parser.add_argument("--rounds", type=int, default=1, help="A B rounds (single send, day)")
    parser.add_argument("--no-send", action="store_true", help="only the day, no single send")
    parser.add_argument("--scaling", action="store_true", help="also the not-yet-due part")
    parser.add_argument("--few", type=int, default=10_000, help="not-yet-due readers in A")
    parser.add_argument("--batch-size", type=int, default=500, help="DIGEST_BATCH_SIZE")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--timeout", type=float, default=1800, help="for the single send")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", with_database(DEFAULT_DATABASE_URL, "bench_tickbench")
        ),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", BENCH_REDIS_URL))
    args = parser.parse_args(argv)
    if args.name is None:
        n = args.subscribers
        args.name = f"tick-{n // 1_000_000}m" if n % 1_000_000 == 0 else f"tick-{n // 1000}k"
    args.rate = 0  # measuring.paperboy_run's settings: no shared send rate
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


def _max_delivery_id(conn) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM newsletter_delivery").fetchone()[0]


def _slot_wait(conn, low: int, high: int, until: float, workers: list[ChildProcess]) -> None:
    """Until every row the tick wrote (ids low < id <= high) left pending/sending, or `until`."""
    while time.monotonic() < until:
        left = conn.execute(
            "SELECT count(*) FROM newsletter_delivery WHERE id > %s AND id <= %s"
            " AND status IN ('pending', 'sending')",
            [low, high],
        ).fetchone()[0]
        if not left:
            return
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker died:\n{worker.tail()}")
        time.sleep(0.1)


def _slot_figures(conn, tick: dict) -> dict:
    """What the workers did with one tick's rows: emails sent, the last one's time, the
    local-hour slots they belong to."""
    low, high = tick.pop("_ids")
    started_at = tick.pop("_started_at")
    sent, skipped, last = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = "
        "'skipped'), max(sent_at) FROM newsletter_delivery WHERE id > %s AND id <= %s",
        [low, high],
    ).fetchone()
    slots = conn.execute(
        "SELECT s.time_zone, s.delivery_hour, count(*) FROM newsletter_delivery d"
        " JOIN subscriptions_subscriber s ON s.id = d.subscriber_id"
        " WHERE d.id > %s AND d.id <= %s GROUP BY 1, 2 ORDER BY 3 DESC",
        [low, high],
    ).fetchall()
    handed = (last - started_at).total_seconds() if last else None
    return {
        **tick,
        "emails": sent,
        "skipped": skipped,
        "slot_to_last_email_s": round(handed, 1) if handed is not None else None,
        "local_slots": [f"{zone} {hour:02d}:00 ({count})" for zone, hour, count in slots],
    }


def day_round(args, fake_url: str, fake_pid: int, workdir: Path, day_start: dt.datetime) -> dict:
    """One simulated day of ticks in this process, the sends on real workers (see the top)."""
    import psutil
    import psycopg
    import redis
    from django.db import connections

    from bench.measuring import _machine_busy_s, _workers_start
    from bench.probes import MemoryWatch, fake_stats, postgres_cpu_s
    from bench.seeding import batch_ensure
    from newsletter.services.ticks import due_tick

    batch_ensure(day_start.date(), workdir)
    issues_clear()
    rhythms_seed(args.subscribers, args.seed, day_start)
    connections.close_all()
    redis.Redis.from_url(args.redis_url).flushdb()
    fake_stats(fake_url, reset=True)
    query_dir = workdir / f"queries-{time.monotonic_ns()}"
    query_dir.mkdir()
    workers: list[ChildProcess] = []
    ticks: list[dict] = []
    idle_ticks_s = 0.0
    try:
        _workers_start(workers, pipeline_env(args, fake_url, query_dir), workdir)
        watch = MemoryWatch()
        for index, worker in enumerate(workers, start=1):
            watch.watch(f"worker {index}", worker.process.pid)
        watch.watch("fake provider", fake_pid)
        watch.watch("tick (this process)", os.getpid())
        watch.start()
        pg_cpu_before = postgres_cpu_s()
        machine_before = psutil.cpu_times()
        started = time.perf_counter()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            moment = day_start
            while moment < day_start + dt.timedelta(days=1):
                low = _max_delivery_id(conn)
                started_at = dt.datetime.now(dt.UTC)
                tick_started, tick_cpu = time.monotonic(), time.process_time()
                report = due_tick(now=moment)
                tick_s = time.monotonic() - tick_started
                tick_cpu = time.process_time() - tick_cpu
                if not report.joined:
                    idle_ticks_s += tick_s
                    moment += STEP
                    continue
                high = _max_delivery_id(conn)
                _slot_wait(conn, low, high, tick_started + SLOT_WAIT.total_seconds(), workers)
                ticks.append(
                    {
                        "at_utc": f"{moment:%H:%M}",
                        "due": report.due,
                        "rows": report.joined,
                        "tick_s": round(tick_s, 2),
                        "tick_cpu_s": round(tick_cpu, 2),
                        "_ids": (low, high),
                        "_started_at": started_at,
                    }
                )
                done_s = time.monotonic() - tick_started
                log(f"{moment:%H:%M} due {report.due:>7,} rows {report.joined:>7,} "
                    f"tick {tick_s:6.1f}s, slot done after {done_s:6.1f}s")  # fmt: skip
                moment += STEP
            # A slot still sending after its 5 minutes: the day ends when every row is done.
            _slot_wait(conn, 0, _max_delivery_id(conn), time.monotonic() + 1800, workers)
            wall = time.perf_counter() - started
            pg_cpu = postgres_cpu_s() - pg_cpu_before
            machine_after = psutil.cpu_times()
            ticks = [_slot_figures(conn, tick) for tick in ticks]
            statuses = dict(
                conn.execute(
                    "SELECT status, count(*) FROM newsletter_delivery GROUP BY 1"
                ).fetchall()
            )
        watch.stop()
    finally:
        for worker in workers:
            worker.stop()
    provider = fake_stats(fake_url)
    sent = statuses.get("sent", 0)
    if (
        provider["accepted"] != sent
        or provider["duplicates"]
        or set(statuses) - {"sent", "skipped"}
    ):
        raise AssertionError(f"lost or repeated mail: {statuses} {provider}")
    cpu = {k: round(v, 2) for k, v in sorted(watch.cpu.items())}
    cpu["postgresql (all backends)"] = round(pg_cpu, 2)
    busy = [max(t["tick_s"], t["slot_to_last_email_s"] or 0) for t in ticks]
    return {
        "kind": "day of ticks",
        "emails": sent,
        "skipped_rows": statuses.get("skipped", 0),
        "ticks_total": int(dt.timedelta(days=1) / STEP),
        "ticks_with_rows": len(ticks),
        # The day's wall: each slot from its instant to its last email (or its tick's end),
        # plus the ticks that found nobody due; the simulated idle time between is skipped.
        "wall_s": round(sum(busy) + idle_ticks_s, 1),
        "idle_ticks_s": round(idle_ticks_s, 1),
        "bench_wall_s": round(wall, 1),
        "cpu_s": cpu,
        "cpu_s_total": round(sum(cpu.values()), 1),
        "cpu_s_per_1000_emails": round(1000 * sum(cpu.values()) / max(sent, 1), 3),
        "machine_cpu_busy_pct": round(
            100 * _machine_busy_s(machine_before, machine_after) / (wall * (os.cpu_count() or 1)),
            1,
        ),
        "peak_rss_mb": {k: round(v, 1) for k, v in sorted(watch.peaks.items())},
        "slowest_slot_to_last_email_s": max(t["slot_to_last_email_s"] or 0 for t in ticks),
        "slowest_tick_s": max(t["tick_s"] for t in ticks),
        "largest_slot_emails": max(t["emails"] for t in ticks),
        "provider_accepted": provider["accepted"],
        "provider_duplicates": provider["duplicates"],
        "ticks": ticks,
    }


def send_round(args, fake_url: str, fake_pid: int, workdir: Path) -> dict:
    """The single send of the batch to all N readers (bench/send_bench.py's Paperboy round)."""
    from bench.measuring import paperboy_run

    # A round after a day starts from no issues too: otherwise the send finds the day's issue
    # (and its readers' papers as already sent) and sends fewer emails than the first round.
    issues_clear()
    run = paperboy_run(args, fake_url, fake_pid, workdir)
    cpu = dict(run.cpu_s)
    cpu.pop("bench", None)  # its polling only: the send runs on the workers
    return {
        "kind": "single send",
        "emails": run.emails,
        "wall_s": run.wall_s,
        "cpu_s": cpu,
        "cpu_s_total": round(sum(cpu.values()), 1),
        "cpu_s_per_1000_emails": round(1000 * sum(cpu.values()) / max(run.emails, 1), 3),
        "machine_cpu_busy_pct": run.extra["machine_cpu_busy_pct"],
        "peak_rss_mb": run.peak_rss_mb,
        "phases_s": run.extra["phases_s"],
    }


def compare(sends: list[dict], days: list[dict]) -> dict:
    """The day against the single send: per email, and what the day costs beyond the single
    send's cost for the same number of emails, per slot."""
    median = statistics.median
    send_per_email = median(r["cpu_s_per_1000_emails"] for r in sends) / 1000
    send_wall_per_email = median(r["wall_s"] / r["emails"] for r in sends)
    day = sorted(days, key=lambda r: r["cpu_s_total"])[len(days) // 2]
    extra_cpu = day["cpu_s_total"] - send_per_email * day["emails"]
    extra_wall = day["wall_s"] - send_wall_per_email * day["emails"]
    return {
        "single_send_cpu_s_per_1000_emails": round(send_per_email * 1000, 3),
        "day_cpu_s_per_1000_emails": day["cpu_s_per_1000_emails"],
        "cpu_ratio_day_to_send_per_email": round(
            day["cpu_s_per_1000_emails"] / (send_per_email * 1000), 2
        ),
        "day_cpu_s_beyond_single_send": round(extra_cpu, 1),
        "day_cpu_s_beyond_single_send_per_slot": round(extra_cpu / day["ticks_with_rows"], 2),
        "single_send_wall_s_per_1000_emails": round(send_wall_per_email * 1000, 3),
        "day_wall_s_per_1000_emails": round(1000 * day["wall_s"] / day["emails"], 3),
        "day_wall_s_beyond_single_send": round(extra_wall, 1),
        "day_wall_s_beyond_single_send_per_slot": round(extra_wall / day["ticks_with_rows"], 2),
    }


def markdown(result: dict) -> str:
    day = result["day_median"]
    lines = [
        f"# Due tick, {result['subscribers']:,} readers: a day of ticks vs the single send",
        "",
        f"Commit {result['commit']}, {result['ran_at']}, `{result['command']}`; rounds in order: "
        + ", ".join(f"{r['kind']} ({r['wall_s']} s)" for r in result["rounds"])
        + ".",
        "",
        "| | single send | day of ticks |",
        "|---|---:|---:|",
    ]
    send = result["send_median"]
    if send:
        rows = [
            ("emails", f"{send['emails']:,}", f"{day['emails']:,}"),
            ("wall (day: slots' instant to last email, summed)", f"{send['wall_s']:.1f} s",
             f"{day['wall_s']:.1f} s"),
            ("CPU, all processes", f"{send['cpu_s_total']:.1f} s", f"{day['cpu_s_total']:.1f} s"),
            ("CPU s / 1,000 emails", f"{send['cpu_s_per_1000_emails']:.3f}",
             f"{day['cpu_s_per_1000_emails']:.3f}"),
            ("largest process peak RSS", f"{max(send['peak_rss_mb'].values()):.0f} MB",
             f"{max(day['peak_rss_mb'].values()):.0f} MB"),
        ]  # fmt: skip
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        c = result["comparison"]
        lines += [
            "",
            f"The day's CPU beyond the single send's per email: {c['day_cpu_s_beyond_single_send']}"
            f" s, {c['day_cpu_s_beyond_single_send_per_slot']} s per slot "
            f"({day['ticks_with_rows']} ticks with readers); wall beyond it: "
            f"{c['day_wall_s_beyond_single_send']} s, "
            f"{c['day_wall_s_beyond_single_send_per_slot']} s per slot.",
        ]
    lines += [
        "",
        "Peak RSS (MB), day: "
        + ", ".join(f"{k} {v:.0f}" for k, v in day["peak_rss_mb"].items())
        + (
            "; single send: " + ", ".join(f"{k} {v:.0f}" for k, v in send["peak_rss_mb"].items())
            if send
            else ""
        ),
        "",
        "| tick (UTC) | local-hour slots | rows | emails | tick wall | tick CPU "
        "| slot to last email |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in day["ticks"]:
        slots = "; ".join(t["local_slots"][:4]) + (" …" if len(t["local_slots"]) > 4 else "")
        lines.append(
            f"| {t['at_utc']} | {slots} | {t['rows']:,} | {t['emails']:,} | {t['tick_s']:.1f} s "
            f"| {t['tick_cpu_s']:.1f} s | {t['slot_to_last_email_s']} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    database_create(args.database_url, fresh=False)
    workdir = Path(tempfile.mkdtemp(prefix="tick-bench-"))
    port = free_port()
    fake_url = f"http://127.0.0.1:{port}/"
    env = pipeline_env(args, fake_url, workdir)
    env.pop("PAPERBOY_BENCH_QUERY_DIR")
    env["LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from bench.seeding import batch_ensure, profiles_seed, subscribers_seed

    call_command("migrate", verbosity=0)
    fake = ChildProcess(
        [sys.executable, "-m", "devtools.fakes.postmark", "--port", str(port), "--no-store"],
        os.environ.copy(),
        workdir / "fake.log",
    )
    rounds: list[dict] = []
    scaling: list[dict] = []
    try:
        fake.wait_for(b"fake Postmark at")
        day = dt.datetime.now(dt.UTC).date()
        day_start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
        subscribers_seed(args.subscribers, args.seed)
        batch_ensure(day, workdir)
        profiles_seed(args.subscribers, args.seed, distinct=False)
        for round_ in range(1, args.rounds + 1):
            if not args.no_send:
                log(f"round {round_}: single send to {args.subscribers:,}")
                rounds.append(send_round(args, fake_url, fake.process.pid, workdir))
                log(f"  {rounds[-1]['wall_s']} s, CPU {rounds[-1]['cpu_s_total']} s")
            log(f"round {round_}: a day of ticks over {args.subscribers:,} readers")
            rounds.append(day_round(args, fake_url, fake.process.pid, workdir, day_start))
            log(f"  {rounds[-1]['wall_s']} s, CPU {rounds[-1]['cpu_s_total']} s")
        if args.scaling:
            import redis

            many = args.subscribers - DUE_IN_TEST
            at = day_start + dt.timedelta(hours=12, minutes=2)
            for round_ in range(2):
                for not_yet_due in (args.few, many):
                    scaling.append(not_yet_due_tick(args.subscribers, not_yet_due, at))
                    log(f"round {round_ + 1}: {not_yet_due:,} not yet due: {scaling[-1]}")
                    # No workers run here: the tick's chunk tasks are dropped, not sent.
                    redis.Redis.from_url(args.redis_url).flushdb()
    finally:
        fake.stop()
    sends = [r for r in rounds if r["kind"] == "single send"]
    days = [r for r in rounds if r["kind"] == "day of ticks"]
    median_of = lambda runs: sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # noqa: E731
    result = {
        "benchmark": "tick",
        "commit": git_commit(),
        "ran_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/tick_bench.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "subscribers": args.subscribers,
        "workers": 2,
        "provider_batch": args.batch_size,
        "zones": ZONES,
        "hours": HOURS,
        "frequencies": FREQUENCIES,
        "comparison": compare(sends, days) if sends else None,
        "targets": {
            "every slot's last email within 5 minutes": all(
                (t["slot_to_last_email_s"] or 0) <= 300 for d in days for t in d["ticks"]
            ),
            "every process <= 300 MB": all(
                v <= 300 for r in rounds for v in r["peak_rss_mb"].values()
            ),
        },
        "rounds": [
            {"kind": r["kind"], "wall_s": r["wall_s"], "cpu_s_total": r["cpu_s_total"]}
            for r in rounds
        ],
        "send_median": median_of(sends) if sends else None,
        "day_median": median_of(days),
        "all_days": [{k: v for k, v in d.items() if k != "ticks"} for d in days],
        "not_yet_due": scaling_summary(args, scaling) if scaling else None,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    path.with_suffix(".md").write_text(markdown(result))
    log(f"wrote {path} and {path.with_suffix('.md').name}")
    return result


def scaling_summary(args, scaling: list[dict]) -> dict:
    def medians(not_yet_due):
        rows = [s for s in scaling if s["not_yet_due"] == not_yet_due]
        return {
            key: statistics.median(r[key] for r in rows)
            for key in ("due_query_ms", "due_query_server_ms", "tick_s")
        }

    many = args.subscribers - DUE_IN_TEST
    return {
        "due": DUE_IN_TEST,
        "runs_in_order": scaling,
        "median_few": {"not_yet_due": args.few, **medians(args.few)},
        "median_many": {"not_yet_due": many, **medians(many)},
    }


if __name__ == "__main__":
    main()
