"""Send the same issue through each provider's fake over HTTP, interleaved with django-newsletter.

    .venv/bin/python bench/providers_bench.py --subscribers 100000 --distinct --name 100k-distinct

The pipeline of bench/send_bench.py (2 real Celery workers, PostgreSQL, the real Anymail
backends over HTTP), once per provider variant, each against its own fake in its own process
(``devtools/fakes/<provider>.py``; SMTP's is a local SMTP server), in turns within one
invocation: baseline, variant 1, variant 2, ..., baseline, ... so that load from elsewhere on
the machine falls on all of them alike. Each variant but one is what Paperboy runs for that
provider; ``mailgun-anymail`` is Anymail's own Mailgun backend (URL-encoded form, each
recipient's List-Unsubscribe sent whole), the "before" of newsletter/mailgun.py.

Reported per variant: emails/s, HTTP calls, bytes sent per email (the request bodies the fake
received, divided by the emails sent; for SMTP each message's DATA is a call), the largest
call, peak RSS and CPU per 1,000 emails. Each provider's chunk is its own per-call limit
(Postmark 500, Mailgun, SendGrid, SparkPost and Brevo 1,000), Mailjet's claim of 500 (in
calls of 50) or, for the providers sent one copy per recipient, how many rows one claim holds
(newsletter/providers.py).
Figures go to ``bench/results/providers-<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.environment import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    PROVIDER_FAKES,
    database_create,
    database_drop,
    django_setup,
    free_port,
    with_database,
)
from bench.measuring import Run, baseline_run, paperboy_run  # noqa: E402
from bench.reporting import RESULTS_DIR, git_commit, log, machine  # noqa: E402
from bench.seeding import batch_ensure, profiles_seed, subscribers_seed  # noqa: E402
from devtools.processes import ChildProcess  # noqa: E402

# variant: (provider, backend, or "" for the one Paperboy configures for it)
VARIANTS = {
    "postmark": ("postmark", ""),
    "mailgun-anymail": ("mailgun", "anymail.backends.mailgun.EmailBackend"),
    "mailgun": ("mailgun", ""),
    "sendgrid": ("sendgrid", ""),
    "amazon_ses": ("amazon_ses", ""),
    "resend": ("resend", ""),
    "brevo": ("brevo", ""),
    "mailjet": ("mailjet", ""),
    "sparkpost": ("sparkpost", ""),
    "smtp": ("smtp", ""),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", "-n", type=int, default=100_000)
    parser.add_argument("--name", help="results file: providers-<name> (default: N)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--distinct", action="store_true", help="every selection distinct")
    parser.add_argument("--baseline-subscribers", type=int, default=2_000)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--fresh", action="store_true", help="recreate the bench databases")
    parser.add_argument("--drop", action="store_true", help="drop the bench databases at the end")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=0.0,
        help="seconds each fake waits before answering a send: a real API's round trip",
    )
    parser.add_argument(
        "--send-concurrency",
        default="",
        help="comma-separated SEND_CONCURRENCY values, each variant run with each in turn "
        "(default: the setting's default)",
    )
    args = parser.parse_args(argv)
    args.concurrencies = [int(c) for c in args.send_concurrency.split(",") if c.strip()] or [0]
    args.send_concurrency = 0  # pipeline_env's: set per run from args.concurrencies
    args.name = args.name or str(args.subscribers)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    args.baseline_subscribers = min(args.baseline_subscribers, args.subscribers)
    name = urlsplit(args.database_url).path.lstrip("/")
    args.baseline_database_url = with_database(args.database_url, f"{name}_baseline")
    # What paperboy_run and pipeline_env read besides: the provider's own per-call limit, no
    # send rate.
    args.batch_size, args.rate = 0, 0
    args.provider, args.email_backend, args.smtp_port = "postmark", "", 0
    return args


def _fake_start(args: argparse.Namespace, provider: str, workdir: Path) -> tuple[ChildProcess, str]:
    """The provider's fake in a process of its own; the URL of its root (its counters)."""
    port = free_port()
    command = [sys.executable, "-m", PROVIDER_FAKES[provider].module, "--port", str(port)]
    ready = b"fake "
    if provider == "smtp":
        # Mail to one port, counters over HTTP on another.
        args.smtp_port, port = port, free_port()
        command += ["--stats-port", str(port)]
        ready = b"fake SMTP counters at"
    command += ["--answer-delay", str(args.answer_delay)]
    fake = ChildProcess(
        [*command, "--no-store"], os.environ.copy(), workdir / f"fake-{provider}.log"
    )
    fake.wait_for(ready)
    return fake, f"http://127.0.0.1:{port}/"


def _label(variant: str, concurrency: int) -> str:
    """A result's name: the variant, and the SEND_CONCURRENCY it ran with when one was set."""
    return f"{variant}, {concurrency} at once" if concurrency else variant


def variant_summary(label: str, runs: list[Run]) -> dict:
    variant = label.split(",")[0]
    middle = sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    extra = middle.extra
    return {
        "variant": label,
        "provider": VARIANTS[variant][0],
        "backend": VARIANTS[variant][1] or "Paperboy's",
        "rounds": len(runs),
        "emails": middle.emails,
        "wall_s": round(statistics.median(r.wall_s for r in runs), 2),
        "emails_per_s": round(statistics.median(r.emails_per_s for r in runs), 1),
        "http_calls": extra["http_calls"],
        "http_bytes_sent": extra["http_bytes_sent"],
        "bytes_sent_per_email": extra["http_bytes_sent_per_email"],
        "largest_call_bytes": extra["largest_call_bytes"],
        "distinct_contents": extra["distinct_contents"],
        "peak_rss_mb": max(max(r.peak_rss_mb.values()) for r in runs),
        "peak_rss_mb_by_process": middle.peak_rss_mb,
        "cpu_s_per_1000_emails": extra["cpu_s_per_1000_emails"],
        "other_processes_cpu_s": extra["other_processes_cpu_s"],
        "cpu_s_by_process": middle.cpu_s,  # where the CPU per email went
        "runs": [
            {"wall_s": r.wall_s, "emails_per_s": r.emails_per_s, **r.extra["phases_s"]}
            for r in runs
        ],
    }


def markdown(result: dict) -> str:
    base = result["baseline"]
    lines = [
        f"{result['subscribers']:,} subscribers"
        + (", every selection distinct" if result["distinct"] else "")
        + (
            f"; each send answered after {result['answer_delay_s'] * 1000:.0f} ms"
            if result.get("answer_delay_s")
            else ""
        )
        + f"; {result['rounds']} round(s), in turns with django-newsletter; commit "
        + result["commit"],
        "",
        "| Provider (backend) | Emails/s | HTTP calls | Bytes sent / email | Largest call "
        "| Peak RSS | CPU s / 1k emails | vs django-newsletter |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in result["variants"]:
        ratio = f"{v['emails_per_s'] / base['emails_per_s']:.1f}x" if base else "-"
        lines.append(
            f"| {v['variant']} ({v['backend']}) | {v['emails_per_s']:,.0f} | {v['http_calls']:,} "
            f"| {v['bytes_sent_per_email']:,} | {v['largest_call_bytes'] / 1e6:.1f} MB "
            f"| {v['peak_rss_mb']:.0f} MB | {v['cpu_s_per_1000_emails']:.2f} | {ratio} |"
        )
    if base:
        lines += [
            "",
            f"django-newsletter {base['version']} (Postmark fake, N={base['subscribers']:,}): "
            f"{base['emails_per_s']:,.1f} emails/s, "
            f"{base['bytes_sent_per_email']:,} bytes sent per email (median of "
            f"{len(base['emails_per_s_by_round'])} rounds)",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    database_create(args.database_url, fresh=args.fresh)
    if not args.no_baseline:
        database_create(args.baseline_database_url, fresh=True)
    django_setup(args)
    workdir = Path(tempfile.mkdtemp(prefix="providers-bench-"))
    fakes: dict[str, tuple[ChildProcess, str]] = {}
    runs: dict[str, list[Run]] = {
        _label(v, c): [] for v in args.variants for c in args.concurrencies
    }
    baselines: list[Run] = []
    try:
        for provider in {"postmark"} | {VARIANTS[v][0] for v in args.variants}:
            fakes[provider] = _fake_start(args, provider, workdir)
        started = time.perf_counter()
        subscribers_seed(args.subscribers, args.seed)
        batch_ensure(dt.datetime.now(dt.UTC).date(), workdir)
        profiles_seed(args.subscribers, args.seed, distinct=args.distinct)
        log(f"seeded in {time.perf_counter() - started:.1f}s")
        postmark, postmark_url = fakes["postmark"]
        for round_ in range(1, args.rounds + 1):
            if not args.no_baseline:
                log(f"baseline {round_}/{args.rounds}: N={args.baseline_subscribers:,}")
                baselines.append(baseline_run(args, postmark_url, postmark.process.pid, workdir))
                log(f"  {baselines[-1].emails_per_s:,.1f} emails/s")
            for variant, concurrency in [(v, c) for v in args.variants for c in args.concurrencies]:
                args.provider, args.email_backend = VARIANTS[variant]
                args.send_concurrency = concurrency
                label = _label(variant, concurrency)
                fake, url = fakes[args.provider]
                log(f"{label} {round_}/{args.rounds}: N={args.subscribers:,}")
                run = paperboy_run(args, url, fake.process.pid, workdir)
                runs[label].append(run)
                log(
                    f"  {run.emails_per_s:,.1f} emails/s, {run.extra['http_calls']:,} calls, "
                    f"{run.extra['http_bytes_sent_per_email']:,} bytes/email"
                )
        if not args.no_baseline:
            log("baseline, closing the alternation")
            baselines.append(baseline_run(args, postmark_url, postmark.process.pid, workdir))
    finally:
        for fake, _ in fakes.values():
            fake.stop()
        if args.drop:
            from django.db import connections

            connections.close_all()
            database_drop(args.database_url)
            if not args.no_baseline:
                database_drop(args.baseline_database_url)
    result = {
        "name": f"providers-{args.name}",
        "subscribers": args.subscribers,
        "distinct": args.distinct,
        "rounds": args.rounds,
        "answer_delay_s": args.answer_delay,
        "variants": [variant_summary(label, label_runs) for label, label_runs in runs.items()],
        "baseline": {
            "version": baselines[0].extra["version"],
            "subscribers": baselines[0].subscribers,
            "emails_per_s": round(statistics.median(r.emails_per_s for r in baselines), 1),
            "emails_per_s_by_round": [r.emails_per_s for r in baselines],
            "bytes_sent_per_email": round(
                baselines[0].extra["http_bytes_sent"] / max(baselines[0].emails, 1)
            ),
        }
        if baselines
        else None,
        "machine": machine(),
        "commit": git_commit(),
        "ran_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/providers_bench.py " + " ".join(sys.argv[1:]),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"providers-{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    path.with_suffix(".md").write_text(table)
    shutil.rmtree(workdir, ignore_errors=True)
    print(table, flush=True)
    log(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
