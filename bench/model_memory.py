"""What loading the embedding model costs a process, resident: the figure behind keeping the
topics' vectors in the database (digests/text_vectors.py).

    .venv/bin/python bench/model_memory.py --rounds 3

Each round runs a fresh Python process that reads its own RSS after importing
``digests.embedding`` (numpy, no model), after one text embedded (the model loaded) and after
100 more texts of about 2,000 characters; the medians go to
``bench/results/model_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.reporting import RESULTS_DIR, git_commit, machine  # noqa: E402

STAGES = ("imported", "model loaded, one text", "after 100 texts")

_PROBE = """
import json, psutil
rss = lambda: round(psutil.Process().memory_info().rss / 1e6, 1)
from digests import embedding
out = [rss()]
embedding.embed_texts(["robots that walk"])
out.append(rss())
embedding.embed_texts(["legged locomotion of humanoid robots " * 50] * 100)
out.append(rss())
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _PROBE], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(args.rounds)
    ]
    medians = {stage: statistics.median(r[i] for r in runs) for i, stage in enumerate(STAGES)}
    result = {
        "rss_mb": medians,
        "model_cost_mb": round(medians[STAGES[1]] - medians[STAGES[0]], 1),
        "runs": runs,
        "commit": git_commit(),
        "machine": machine(),
    }
    path = RESULTS_DIR / "model_memory.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["rss_mb"]), f"model: +{result['model_cost_mb']} MB", f"-> {path}")


if __name__ == "__main__":
    main()
