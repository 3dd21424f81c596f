"""The ranking cost of two commits, interleaved A B A B in one invocation.

    .venv/bin/python bench/ranking_cost_commits.py 3931de0 HEAD --readers 100000 --rounds 3

Each commit is checked out into a temporary worktree (sharing this checkout's ``.venv``) and
runs its own ``bench/ranking_cost.py --readers N --compare 0`` (the same synthetic readers,
every one distinct), alternating with the other, so that the drift of a shared machine's speed
falls on both alike. Every run's figures and the medians go to
``bench/results/ranking_cost_commits-<a>-<b>-<n>.json`` and a Markdown table beside it; the
ratio that matters is B's median over A's.
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
FIGURES = ("rank_seconds", "rank_cpu_seconds", "peak_rss_mb")


def worktree(commit: str, into: Path) -> Path:
    path = into / commit
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
        check=True,
        capture_output=True,
    )
    (path / ".venv").symlink_to((ROOT / ".venv").resolve())
    return path


def one_run(path: Path, readers: int) -> dict:
    subprocess.run(
        [sys.executable, "bench/ranking_cost.py", "--readers", str(readers), "--compare", "0"],
        cwd=path,
        check=True,
        capture_output=True,
    )
    result = json.loads((path / "bench" / "results" / "ranking_cost.json").read_text())
    return result["runs"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the commit before")
    parser.add_argument("b", help="the commit after")
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = {
        c: subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", c],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for c in (args.a, args.b)
    }
    runs: dict[str, list[dict]] = {names[args.a]: [], names[args.b]: []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {c: worktree(names[c], Path(tmp)) for c in (args.a, args.b)}
        try:
            for n in range(args.rounds):
                order = (args.a, args.b) if n % 2 == 0 else (args.b, args.a)
                for commit in order:
                    runs[names[commit]].append(one_run(paths[commit], args.readers))
                    print(names[commit], json.dumps(runs[names[commit]][-1]), flush=True)
        finally:
            for path in paths.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                    check=False,
                    capture_output=True,
                )
    medians = {
        name: {f: statistics.median(r[f] for r in results) for f in FIGURES}
        for name, results in runs.items()
    }
    a, b = names[args.a], names[args.b]
    ratio = {f: medians[b][f] / medians[a][f] for f in FIGURES}
    out = {"readers": args.readers, "runs": runs, "medians": medians, "b_over_a": ratio}
    stem = f"ranking_cost_commits-{a}-{b}-{args.readers}"
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{stem}.json").write_text(json.dumps(out, indent=1))
    rows = [
        f"| {name} | " + " | ".join(f"{m[f]:.2f}" for f in FIGURES) + " |"
        for name, m in medians.items()
    ]
    rows.append("| B / A | " + " | ".join(f"{ratio[f]:.3f}" for f in FIGURES) + " |")
    table = (
        f"{args.readers} readers, {args.rounds} runs of each commit, A B A B; medians.\n\n"
        "| commit | rank s | rank CPU-s | peak RSS MB |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    (RESULTS_DIR / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
