"""The send benchmark of two commits, interleaved A B A B in one invocation.

    .venv/bin/python bench/compare_commits.py d7bf18a 996cef0 -n 100000 --rounds 3

Each commit is checked out into a temporary worktree (sharing this checkout's ``.venv``) and
runs its own ``bench/send_bench.py --no-baseline --repeats 1`` against its own bench database,
alternating with the other, so that the drift of a shared machine's speed falls on both alike.
The figures of every run and the medians go to ``bench/results/compare-<a>-<b>-<n>.json`` and a
Markdown table beside it. The ratio that matters is B's median over A's; CPU seconds per 1,000
emails (workers, fake provider, PostgreSQL) is the steadier of the two when other work shares
the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
FIGURES = ("emails_per_s", "wall_s", "peak_rss_mb", "cpu_s_per_1000_emails")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the commit before")
    parser.add_argument("b", help="the commit after")
    parser.add_argument("--subscribers", "-n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each commit")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--database-prefix",
        default="pb_ab",
        help="bench databases are <prefix>_a and <prefix>_b (another name: no clash with a "
        "comparison running beside this one)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def checkout(commit: str, into: Path) -> Path:
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(into), commit], cwd=ROOT, check=True
    )
    (into / ".venv").symlink_to(ROOT / ".venv")
    return into


def run_once(tree: Path, label: str, args: argparse.Namespace, out: Path) -> dict:
    """One send benchmark run of the tree; its result file's figures."""
    name = f"{label}-{len(list(out.glob(label + '-*.json')))}"
    command = [
        str(ROOT / ".venv" / "bin" / "python"), "bench/send_bench.py",
        "--subscribers", str(args.subscribers), "--no-baseline", "--repeats", "1",
        "--name", name, "--results-dir", str(out),
        "--database-url", f"{args.postgres}/{args.database_prefix}_{label}",
        "--redis-url", args.redis_url,
    ]  # fmt: skip
    subprocess.run(command, cwd=tree, check=True)
    result = json.loads((out / f"{name}.json").read_text())
    return {key: result[key] for key in FIGURES}


def medians(runs: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in FIGURES}


def markdown(report: dict) -> str:
    a, b = report["a"], report["b"]
    lines = [
        f"Send benchmark, {report['subscribers']:,} subscribers, {report['rounds']} runs of each"
        f" commit interleaved A B A B (medians).",
        "",
        "| commit | emails/s | wall s | peak RSS MB | CPU s per 1,000 emails |",
        "|---|---|---|---|---|",
    ]
    for side in (a, b):
        m = side["median"]
        lines.append(
            f"| {side['commit']} | {m['emails_per_s']} | {m['wall_s']} | {m['peak_rss_mb']} "
            f"| {m['cpu_s_per_1000_emails']} |"
        )
    r = report["ratio_b_over_a"]
    lines.append(
        f"| ratio B/A | {r['emails_per_s']} | {r['wall_s']} | {r['peak_rss_mb']} "
        f"| {r['cpu_s_per_1000_emails']} |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory(prefix="pb-compare-") as scratch:
        trees = {side: checkout(getattr(args, side), Path(scratch) / side) for side in "ab"}
        try:
            for _ in range(args.rounds):
                for side in "ab":
                    runs[side].append(run_once(trees[side], side, args, Path(scratch)))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    report = {"subscribers": args.subscribers, "rounds": args.rounds}
    for side in "ab":
        report[side] = {"commit": getattr(args, side), "runs": runs[side]}
        report[side]["median"] = medians(runs[side])
    report["ratio_b_over_a"] = {
        key: round(report["b"]["median"][key] / report["a"]["median"][key], 3) for key in FIGURES
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = args.results_dir / f"compare-{args.a}-{args.b}-{args.subscribers}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
