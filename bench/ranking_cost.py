"""What personal ranking costs: embedding a day's papers, and ranking a million readers.

Embedding: the 50 papers of the bundled sample day (digests/sample), title + keywords +
abstract, with the model loaded once before timing (as in a worker), three runs, median.
Ranking: newsletter.ranking.rank_all over one day of those papers and N synthetic readers, in
the chunks planning uses (newsletter.services.planning.RANKING_CHUNK), every reader distinct
(the worst case): each follows 1-3 random topics and has a random "What I work on" vector, and
a third of them have 5-20 liked and 0-10 disliked papers among 2,000 earlier papers. Readers
are made a chunk at a time, off the clock (memory stays flat); only ranking is timed, wall and
CPU seconds. Peak RSS is the process's high-water mark after each run (runs go smallest first,
so a later, larger run that needed more memory would show it).

Baseline: the per-reader loop the ranking replaced (bench/ranking_loop.py), over the first
--compare readers, chunk by chunk in turns with the current ranking (old first on even
chunks, new first on odd ones), so both see the same load on a shared machine; their
selections must be equal. Figures go to bench/results/ranking_cost.json.

    .venv/bin/python bench/ranking_cost.py --readers 100000 1000000 --compare 50000
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

from bench import ranking_loop  # noqa: E402
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


def chunk_of_readers(first: int, count: int, rng: np.random.Generator) -> list[ranking.Reader]:
    """Readers first..first+count-1, drawn from the distribution described above."""
    interests = rng.normal(size=(count, embedding.DIMS)).astype(np.float32)
    interests /= np.linalg.norm(interests, axis=1, keepdims=True)
    topic_counts = rng.integers(1, 4, count)
    topics = np.argsort(rng.random((count, TOPICS)), axis=1)  # a random order of all topics
    focus = rng.random(count)
    chunk = []
    for i in range(count):
        sid = first + i
        liked = disliked = ()
        if sid % 3 == 0:
            liked = tuple(rng.integers(0, EARLIER_PAPERS, rng.integers(5, 21)).tolist())
            disliked = tuple(rng.integers(0, EARLIER_PAPERS, rng.integers(0, 11)).tolist())
        chunk.append(
            ranking.Reader(
                subscriber_id=sid,
                topics=frozenset(topics[i, : topic_counts[i]].tolist()),
                interest=interests[i],
                liked=liked,
                disliked=disliked,
                focus=float(focus[i]),
            )
        )
    return chunk


def chunks(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for first in range(0, count, RANKING_CHUNK):
        yield chunk_of_readers(first, min(RANKING_CHUNK, count - first), rng)


class Clock:
    """Wall and CPU seconds, summed over the timed parts only."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def time(self, work):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        return result


def rank_new(the_day, chunk, feedback) -> list:
    return list(ranking.rank_all(the_day, chunk, feedback, chunk_size=RANKING_CHUNK))


def rank_old(the_day, chunk, feedback) -> list:
    selections = ranking_loop.rank_readers(the_day, chunk, feedback)
    return [(r.subscriber_id, s) for r, s in zip(chunk, selections, strict=True)]


def run(count: int, the_day, feedback) -> dict:
    clock = Clock()
    selected = distinct = 0
    seen: set[int] = set()
    for chunk in chunks(count, seed=count):
        for _, selection in clock.time(lambda c=chunk: rank_new(the_day, c, feedback)):
            selected += len(selection)
            key = hash(tuple(pid for pid, _ in selection))
            if key not in seen and len(seen) < 200_000:
                seen.add(key)
                distinct += 1
    return {
        "readers": count,
        "rank_seconds": clock.wall,
        "rank_cpu_seconds": clock.cpu,
        "readers_per_second": count / clock.wall,
        "papers_selected_per_reader": selected / count,
        "distinct_orderings_in_first_200k": distinct,
        "peak_rss_mb": peak_rss_mb(),
    }


def compare(count: int, the_day, feedback) -> dict:
    old, new = Clock(), Clock()
    for n, chunk in enumerate(chunks(count, seed=1)):
        turns = [(old, rank_old), (new, rank_new)]
        results = [
            clock.time(lambda c=chunk, f=rank: f(the_day, c, feedback))
            for clock, rank in (turns if n % 2 == 0 else turns[::-1])
        ]
        if results[0] != results[1]:
            raise SystemExit(f"old and new ranking differ in chunk {n}")
    return {
        "readers": count,
        "old_rank_seconds": old.wall,
        "old_rank_cpu_seconds": old.cpu,
        "new_rank_seconds": new.wall,
        "new_rank_cpu_seconds": new.cpu,
        "speedup_wall": old.wall / new.wall,
        "speedup_cpu": old.cpu / new.cpu,
        "selections_equal": True,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--compare", type=int, default=50_000, help="0: no baseline")
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
    result = {
        "papers": len(papers),
        "embed_day_seconds": statistics.median(embed_times),
        "embed_day_runs": embed_times,
        "chunk": RANKING_CHUNK,
        "model": embedding.MODEL_NAME,
        "cpus": os.cpu_count(),
        "peak_rss_mb_before_ranking": peak_rss_mb(),
    }
    if args.compare:
        result["against_the_per_reader_loop"] = compare(args.compare, the_day, feedback)
        print(json.dumps(result["against_the_per_reader_loop"], indent=1), flush=True)
    result["runs"] = []
    for count in sorted(args.readers):
        result["runs"].append(run(count, the_day, feedback))
        print(json.dumps(result["runs"][-1], indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ranking_cost.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
