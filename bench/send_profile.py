"""Where a send's CPU goes: planning an issue and sending its first chunks, under cProfile.

    .venv/bin/python bench/send_profile.py --database-url postgres://.../pb_bench --chunks 40

Runs in one process against a database the send benchmark has seeded (``bench/send_bench.py``
with the same ``--database-url``; ``--distinct`` there for the worst case): today's issue is
emptied and planned again (``issue_create``: ranking, contents, Delivery rows by COPY), then
``--chunks`` chunks are sent one after the other with ``deliveries_send_chunk``, through the
real Postmark backend over HTTP to the fake Postmark in its own process, as a worker sends
them. Each phase's profile (the functions with the most own time and the most cumulative
time) goes to ``bench/results/profile-<name>-{plan,send}.txt``; the wall and CPU seconds of
the phase, and the fake's, are printed. PostgreSQL's own CPU is not in these profiles (the
send benchmark measures it).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.environment import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, pipeline_env  # noqa: E402
from bench.reporting import RESULTS_DIR  # noqa: E402
from devtools.processes import ChildProcess  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--port", type=int, default=8025, help="the fake Postmark's port")
    parser.add_argument("--chunks", type=int, default=40, help="chunks sent under the profile")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--name", default="send")
    parser.add_argument("--top", type=int, default=45, help="functions listed per ordering")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def _profiled(label: str, work, path: Path, top: int):
    profile = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    result = work()
    profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = io.StringIO()
    out.write(f"{label}: {wall:.2f} s wall, {cpu:.2f} CPU-s in this process\n\n")
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    path.write_text(out.getvalue())
    print(f"{label}: {wall:.2f} s wall, {cpu:.2f} CPU-s -> {path}")
    return result, cpu


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    fake_url = f"http://127.0.0.1:{args.port}/"
    workdir = Path(tempfile.mkdtemp(prefix="send-profile-"))
    fake = ChildProcess(
        [sys.executable, "-m", "devtools.fakes.postmark", "--port", str(args.port), "--no-store"],
        os.environ.copy(),
        workdir / "fake.log",
    )
    fake.wait_for(b"fake Postmark at")
    try:
        env = pipeline_env(args, fake_url, workdir)
        env.pop("PAPERBOY_BENCH_QUERY_DIR")
        os.environ.update(env)
        import django

        django.setup()
        import psutil
        from django.utils import timezone

        from bench.seeding import batch_ensure
        from newsletter.models import Issue
        from newsletter.services.issues import issue_create
        from newsletter.services.sending import deliveries_send_chunk

        # Today's approved batch, an earlier run's issue and rows gone (as the benchmark does).
        batch = batch_ensure(timezone.now().date(), workdir)
        issue, _ = _profiled(
            "plan (issue_create)",
            lambda: issue_create(batch=batch),
            args.results_dir / f"profile-{args.name}-plan.txt",
            args.top,
        )
        Issue.objects.filter(pk=issue.pk).update(
            status=Issue.Status.SENDING, started_at=timezone.now()
        )
        deliveries_send_chunk(issue_id=issue.pk)  # warm: the renderer's per-issue caches
        fake_cpu = psutil.Process(fake.process.pid).cpu_times()
        sent, cpu = _profiled(
            f"send ({args.chunks} chunks)",
            lambda: sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(args.chunks)),
            args.results_dir / f"profile-{args.name}-send.txt",
            args.top,
        )
        after = psutil.Process(fake.process.pid).cpu_times()
        fake_s = after.user + after.system - fake_cpu.user - fake_cpu.system
        print(
            f"sent {sent:,}: {1000 * cpu / max(sent, 1):.3f} CPU-s per 1,000 emails in the "
            f"worker (profiled), fake provider {1000 * fake_s / max(sent, 1):.3f}"
        )
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
