"""How big one digest is, by papers in it: what a provider call must carry per distinct content.

    .venv/bin/python bench/body_sizes.py --database-url postgres://.../pb_bench --sample 300

Reads the benchmark's database as bench/send_bench.py or bench/providers_bench.py left it
(today's batch, the seeded readers), builds the previews of a sample of readers (the same
functions as a send) and writes, per number of papers, the median HTML and text bytes, and
the per-paper and shell sizes fitted from them, to ``bench/results/body_sizes.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.environment import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, django_setup  # noqa: E402
from bench.reporting import RESULTS_DIR, git_commit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--provider", default="sendgrid", help="whose merge-field spelling")
    args = parser.parse_args()
    args.redis_url, args.batch_size, args.rate, args.email_backend = DEFAULT_REDIS_URL, 0, 0, ""
    django_setup(args)
    from digests.models import DailyBatch
    from newsletter.services.previews import digest_preview
    from subscriptions.models import Subscriber

    batch = DailyBatch.objects.get(date=dt.datetime.now(dt.UTC).date())
    by_papers: dict[int, list[tuple[int, int]]] = {}
    for subscriber in Subscriber.objects.order_by("id")[: args.sample]:
        preview = digest_preview(batch=batch, subscriber=subscriber)
        if preview is None:
            continue
        sizes = (len(preview.html.encode()), len(preview.text.encode()))
        by_papers.setdefault(len(preview.selection), []).append(sizes)
    rows = {
        n: {
            "readers": len(sizes),
            "html_bytes": round(statistics.median(h for h, _ in sizes)),
            "text_bytes": round(statistics.median(t for _, t in sizes)),
        }
        for n, sizes in sorted(by_papers.items())
    }
    papers = [n for n in rows for _ in range(rows[n]["readers"])]
    fit = {}
    if len(set(papers)) > 1:
        for part in ("html_bytes", "text_bytes"):
            values = [rows[n][part] for n in papers]
            slope, intercept = statistics.linear_regression(papers, values)
            fit[part] = {"per_paper": round(slope), "shell": round(intercept)}
    result = {
        "sample": args.sample,
        "provider": args.provider,
        "by_papers": rows,
        "fit": fit,
        "commit": git_commit(),
        "ran_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = RESULTS_DIR / "body_sizes.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
