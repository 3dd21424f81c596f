"""What personal ranking costs: embedding a day's papers, and ranking a million readers.

    .venv/bin/python bench/ranking_cost.py [--readers 1000000]

Embedding: the 50 papers of the bundled sample day (digests/sample), title + keywords +
abstract, with the model loaded once before timing (as in a worker), three runs, median.
Ranking: newsletter.ranking.rank_all over one day of those papers and N synthetic readers, in
the chunks planning uses (newsletter.services.planning.RANKING_CHUNK), every reader distinct
(the worst case): each follows 1-3 random topics and has a random "What I work on" vector, and
a third of them have 5-20 liked and 0-10 disliked papers among 2,000 earlier papers. Only the
ranking itself is timed (readers are generated before the clock starts, lazily, so memory
stays flat); peak RSS is the process's high-water mark. Figures go to
bench/results/ranking_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/ranking_cost.py`
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from digests import embedding  # noqa: E402
from digests.sources import local_file  # noqa: E402
from newsletter import ranking  # noqa: E402
from newsletter.services.planning import RANKING_CHUNK  # noqa: E402

SAMPLE = ROOT / "digests" / "sample" / "hf_daily_papers.json"
RESULTS = ROOT / "bench" / "results"
EARLIER_PAPERS = 2000
TOPICS = 19


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def embed_day(papers) -> tuple[np.ndarray, list[float]]:
    texts = [embedding.paper_text(p.title, p.abstract, p.ai_keywords) for p in papers]
    embedding.embed_texts(["load the model"])
    times, vectors = [], None
    for _ in range(3):
        start = time.perf_counter()
        vectors = embedding.embed_texts(texts)
        times.append(time.perf_counter() - start)
    return vectors, times


def readers(count: int, rng: np.random.Generator):
    for i in range(count):
        interest = rng.normal(size=embedding.DIMS).astype(np.float32)
        interest /= np.linalg.norm(interest)
        liked = disliked = ()
        if i % 3 == 0:
            liked = tuple(int(x) for x in rng.integers(0, EARLIER_PAPERS, rng.integers(5, 21)))
            disliked = tuple(int(x) for x in rng.integers(0, EARLIER_PAPERS, rng.integers(0, 11)))
        yield ranking.Reader(
            subscriber_id=i,
            topics=frozenset(int(t) for t in rng.choice(TOPICS, rng.integers(1, 4), replace=False)),
            interest=interest,
            liked=liked,
            disliked=disliked,
            focus=float(rng.random()),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    args = parser.parse_args()
    papers = local_file.parse(SAMPLE.read_text(encoding="utf-8")).items[:50]
    vectors, embed_times = embed_day(papers)
    rng = np.random.default_rng(7)
    affinity = (rng.random((len(papers), TOPICS)) > 0.85).astype(np.float32)
    the_day = ranking.day(
        paper_ids=list(range(EARLIER_PAPERS, EARLIER_PAPERS + len(papers))),
        vectors=vectors,
        affinity=affinity,
        topic_ids=list(range(TOPICS)),
        upvotes=[p.upvotes for p in papers],
        pinned=[False] * len(papers),
        order=list(range(1, len(papers) + 1)),
        texts=[f"{p.title} {p.abstract}" for p in papers],
        people=[p.authors for p in papers],
    )
    earlier = rng.normal(size=(EARLIER_PAPERS, embedding.DIMS)).astype(np.float32)
    earlier /= np.linalg.norm(earlier, axis=1, keepdims=True)
    feedback = ranking.FeedbackPapers.build(
        the_day, {i: earlier[i] for i in range(EARLIER_PAPERS)}, {}, {}
    )
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    cpu_start = time.process_time()
    selected = distinct = 0
    seen: set[int] = set()
    for _, selection in ranking.rank_all(
        the_day, readers(args.readers, rng), feedback, chunk_size=RANKING_CHUNK
    ):
        selected += len(selection)
        key = hash(tuple(pid for pid, _ in selection))
        if key not in seen and len(seen) < 200_000:
            seen.add(key)
            distinct += 1
    wall = time.perf_counter() - start
    result = {
        "papers": len(papers),
        "embed_day_seconds": statistics.median(embed_times),
        "embed_day_runs": embed_times,
        "readers": args.readers,
        "rank_seconds": wall,
        "rank_cpu_seconds": time.process_time() - cpu_start,
        "readers_per_second": args.readers / wall,
        "papers_selected_per_reader": selected / args.readers,
        "distinct_orderings_in_first_200k": distinct,
        "peak_rss_mb_before_ranking": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "chunk": RANKING_CHUNK,
        "model": embedding.MODEL_NAME,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ranking_cost.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
