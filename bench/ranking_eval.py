"""How good is each reader's digest? Simulated readers replayed over real papers, day by day.

    .venv/bin/python bench/ranking_eval.py

The papers are the 159 real ones of tests/fixtures (the 109 of the trending-papers page split
into five days, then the two real upstream days 2026-05-08 and 2024-08-01 as days 6 and 7),
labelled by an editor in bench/data/editor_labels.json. Each of the 16 readers of
bench/data/readers.json has a hidden interest (a set of fine-grained subtopics, written as text
the way a researcher would); a paper is relevant to them iff it carries one of those subtopics.
At signup a reader ticks some of the 19 topics and, for the new ranking, writes one line in
"What I work on". Every day each ranking picks up to 10 papers per reader:

- upvotes only: the day's most upvoted papers, the same for everyone;
- topics only: the ranking before personalization (bench/topics_only.py: rank_for_topics over
  the phrase tags of the topics as they shipped then, digests/data/topics-v1.json);
- new, no feedback: newsletter.ranking with the reader's topics and free text, never learning;
- new: the same, learning from feedback. After each email the reader rates each paper with
  probability FEEDBACK_RATE (seeded): More like this if relevant, Less like this if not;
- new, likes as before: the same with LIKED_FLOOR = 0 (every paper like a liked one could
  enter the email), learning from the ratings of its own emails.

Reported per day: precision@5 (relevant papers among the first five places, empty places count
as misses), nDCG@10 (binary gains) and precision (the share of the email that is relevant: what
a reader feels as noise), averaged over the readers with at least one relevant paper that day.
Upvotes of the 109 page papers are not in the capture, so they are drawn from a seeded
log-normal, independent of relevance; the two real days keep their real upvotes.

One replay is noisy (16 readers, one or two relevant papers a day for most), so every figure
is the mean of replays over SEEDS: each seed splits the five page days anew and draws new
ratings. Parameters of the ranking are chosen on the odd-numbered readers; the table "by half"
replays each half alone, so the even-numbered half shows whether a choice holds for readers it
was not chosen on.

Figures go to bench/results/ranking_eval.json and .md (the README quotes the .md tables).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/ranking_eval.py`
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from bench import topics_only  # noqa: E402
from bench.papers import LabelledPaper, catalog_topics, labelled_papers  # noqa: E402
from digests import embedding, tagging  # noqa: E402
from digests.services import topic_matchers, topics_match  # noqa: E402
from digests.topic_catalog import PREVIOUS  # noqa: E402
from newsletter import ranking  # noqa: E402

DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
LIMIT = 10
FEEDBACK_RATE = 0.8
CORPUS_DAYS = 5
SEED = 7
# One replay is noisy (16 readers, a few relevant papers a day): figures are means over seeds.
SEEDS = [7, 8, 9, 10, 11, 12]


@dataclass
class SimReader:
    id: int
    name: str
    relevant: frozenset[str]
    topics: frozenset[int]
    free_text: str


def split_days(papers: list[LabelledPaper], seed: int = SEED) -> list[list[LabelledPaper]]:
    corpus = [p for p in papers if p.set == "tune"]
    random.Random(seed).shuffle(corpus)
    size = math.ceil(len(corpus) / CORPUS_DAYS)
    days = [corpus[i : i + size] for i in range(0, len(corpus), size)]
    days.append([p for p in papers if p.set == "holdout-2026-05-08"])
    days.append([p for p in papers if p.set == "holdout-2024-08-01"])
    return days


def precision_at(shown: list[int], relevant: set[int], k: int = 5) -> float:
    return sum(1 for p in shown[:k] if p in relevant) / k


def precision_shown(shown: list[int], relevant: set[int]) -> float:
    """The share of what the email shows that is relevant (an empty email: 0)."""
    return sum(1 for p in shown if p in relevant) / len(shown) if shown else 0.0


def ndcg_at(shown: list[int], relevant: set[int], k: int = 10) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(shown[:k]) if p in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


class World:
    """The papers, topics and readers, embedded and tagged once."""

    def __init__(self) -> None:
        self.papers = labelled_papers()
        self.topics = catalog_topics()  # unsaved Topic objects with ids 1..19
        self.topic_by_slug = {t.slug: t for t in self.topics}
        texts = [embedding.paper_text(p.title, p.abstract, p.keywords) for p in self.papers]
        self.vectors = dict(
            zip((p.id for p in self.papers), embedding.embed_texts(texts), strict=True)
        )
        self.tagger = tagging.TopicModel.build(self.topics)
        self.tags: dict[int, list[int]] = {}  # paper id -> topic ids, as tagged on its day
        # Today's ranking with the phrases it shipped with (the topic model's came later).
        matchers = topic_matchers(catalog_topics(PREVIOUS))
        self.phrase_tags = {
            p.id: frozenset(
                t.pk
                for t in topics_match(
                    title=p.title, abstract=p.abstract, keywords=p.keywords, matchers=matchers
                )
            )
            for p in self.papers
        }
        self.readers = []
        for i, raw in enumerate(json.loads((DATA / "readers.json").read_text()), start=1):
            self.readers.append(
                SimReader(
                    id=i,
                    name=raw["name"],
                    relevant=frozenset(raw["relevant_subtopics"]),
                    topics=frozenset(self.topic_by_slug[s].pk for s in raw["signup_topics"]),
                    free_text=raw["free_text"],
                )
            )
        interests = embedding.embed_texts([r.free_text for r in self.readers])
        self.interest = {r.id: v for r, v in zip(self.readers, interests, strict=True)}

    def relevant(self, reader: SimReader, papers: list[LabelledPaper]) -> set[int]:
        return {p.id for p in papers if reader.relevant & set(p.subtopics)}

    def day_matrices(self, papers: list[LabelledPaper]) -> ranking.Day:
        vectors = np.stack([self.vectors[p.id] for p in papers])
        scored = self.tagger.score(vectors, [(p.title, p.abstract, p.keywords) for p in papers])
        for p, columns in zip(papers, scored.tags, strict=True):
            self.tags[p.id] = [self.topics[c].pk for c in columns]
        return ranking.day(
            paper_ids=[p.id for p in papers],
            vectors=vectors,
            affinity=scored.affinity,
            topic_ids=[t.pk for t in self.topics],
            upvotes=[p.upvotes for p in papers],
            pinned=[False] * len(papers),
            order=list(range(1, len(papers) + 1)),
            texts=[f"{p.title} {' '.join(p.keywords)} {p.abstract}" for p in papers],
            people=[p.authors for p in papers],
        )


# The rankings that learn from feedback, with the LIKED_FLOOR each ranks with: the shipped
# one, and 0, the rule before it (similarity to any liked paper counted towards the threshold).
LEARNING = {"new": None, "new, likes as before": 0.0}
NAMES = ["upvotes only", "topics only (before)", "new, no feedback", *LEARNING]
METRICS = ("p@5", "ndcg@10", "precision")


def topic_candidates(world: World, papers) -> list:
    return [
        topics_only.Candidate(
            paper_id=p.id,
            topic_ids=world.phrase_tags[p.id],
            upvotes=p.upvotes,
            pinned=False,
            rank=i,
        )
        for i, p in enumerate(papers, start=1)
    ]


@contextmanager
def liked_floor(value: float | None) -> Iterator[None]:
    """Rank with another LIKED_FLOOR (None: the shipped one), for the "as before" row."""
    shipped = ranking.LIKED_FLOOR
    ranking.LIKED_FLOOR = shipped if value is None else value
    try:
        yield
    finally:
        ranking.LIKED_FLOOR = shipped


def shown_to(reader, world: World, day_inputs: tuple, feedback_given: dict) -> dict:
    """What each ranking puts in this reader's digest of the day. feedback_given: for each
    learning ranking, (liked, disliked) on the emails that ranking sent this reader."""
    the_day, feedback, candidates, by_votes = day_inputs
    base = ranking.Reader(
        reader.id, topics=reader.topics, interest=world.interest[reader.id], limit=LIMIT
    )
    shown = {
        "upvotes only": by_votes,
        "topics only (before)": [
            pid for pid, _ in topics_only.rank_for_topics(candidates, reader.topics, limit=LIMIT)
        ],
        "new, no feedback": [pid for pid, _ in ranking.rank_readers(the_day, [base], feedback)[0]],
    }
    for name, floor in LEARNING.items():
        liked, disliked = feedback_given[name]
        learning = ranking.Reader(
            reader.id,
            topics=reader.topics,
            interest=world.interest[reader.id],
            liked=tuple(reversed(liked)),
            disliked=tuple(reversed(disliked)),
            limit=LIMIT,
        )
        with liked_floor(floor):
            shown[name] = [pid for pid, _ in ranking.rank_readers(the_day, [learning], feedback)[0]]
    return shown


def run(world: World, seed: int = SEED, readers: list[SimReader] | None = None) -> dict:
    """One replay of the week: the days split with `seed`, the ratings drawn with it. Each
    learning ranking learns from the ratings of its own emails (each with its own draws from
    the same seed)."""
    readers = world.readers if readers is None else readers
    days = split_days(world.papers, seed)
    rngs = {name: random.Random(seed) for name in LEARNING}
    scores = {n: {m: [] for m in METRICS} for n in NAMES}
    given = {name: {r.id: ([], []) for r in readers} for name in LEARNING}
    for papers in days:
        the_day = world.day_matrices(papers)
        day_inputs = (
            the_day,
            ranking.FeedbackPapers.build(the_day, world.vectors, {}, world.tags),
            topic_candidates(world, papers),
            [p.id for p in sorted(papers, key=lambda p: -p.upvotes)][:LIMIT],
        )
        day_scores = {n: {m: [] for m in METRICS} for n in NAMES}
        for reader in readers:
            relevant = world.relevant(reader, papers)
            mine = {name: given[name][reader.id] for name in LEARNING}
            shown = shown_to(reader, world, day_inputs, mine)
            # The simulated reader rates some of what each learning ranking showed them.
            for name, (liked, disliked) in mine.items():
                for pid in shown[name]:
                    if rngs[name].random() < FEEDBACK_RATE:
                        (liked if pid in relevant else disliked).append(pid)
            if not relevant:
                continue
            for n in NAMES:
                day_scores[n]["p@5"].append(precision_at(shown[n], relevant))
                day_scores[n]["ndcg@10"].append(ndcg_at(shown[n], relevant))
                day_scores[n]["precision"].append(precision_shown(shown[n], relevant))
        for n in NAMES:
            for metric, values in day_scores[n].items():
                scores[n][metric].append(sum(values) / len(values))
    return {
        "days": [len(d) for d in days],
        "readers": len(readers),
        "model": embedding.MODEL_NAME,
        "scores": scores,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def averaged(runs: list[dict]) -> dict:
    """Day by day, each figure averaged over the runs (one run per seed)."""
    first = runs[0]
    return {
        "days": first["days"],
        "readers": first["readers"],
        "model": first["model"],
        "scores": {
            name: {
                metric: [
                    _mean([r["scores"][name][metric][d] for r in runs])
                    for d in range(len(first["days"]))
                ]
                for metric in METRICS
            }
            for name in NAMES
        },
    }


# Parameters of the ranking are chosen looking at the odd-numbered readers only; the
# even-numbered ones are reported beside them as a check that a choice is not fitted to them.
HALVES = {"tuning (odd readers)": 1, "held out (even readers)": 0}


def halves(world: World, seeds: list[int]) -> dict:
    """Each half of the readers replayed alone over every seed: mean, day 1 and days 5-7."""
    out = {}
    for half, parity in HALVES.items():
        readers = [r for r in world.readers if r.id % 2 == parity]
        result = averaged([run(world, seed, readers) for seed in seeds])["scores"]
        out[half] = {
            name: {
                metric: {
                    "mean": _mean(values),
                    "day 1": values[0],
                    "days 5-7": _mean(values[4:]),
                }
                for metric, values in metrics.items()
                if metric != "p@5"
            }
            for name, metrics in result.items()
        }
    return out


def table(result: dict) -> str:
    days = len(result["days"])
    head = "| ranking | metric | " + " | ".join(f"day {i + 1}" for i in range(days))
    head += " | mean |\n|---|---|" + "---|" * (days + 1) + "\n"
    rows = []
    for name, metrics in result["scores"].items():
        for metric, values in metrics.items():
            cells = " | ".join(f"{v:.2f}" for v in values)
            rows.append(f"| {name} | {metric} | {cells} | {sum(values) / len(values):.2f} |")
    sizes = ", ".join(str(n) for n in result["days"])
    return (
        f"{result['readers']} simulated readers, papers per day: {sizes}; "
        f"model {result['model']}; each figure the mean of {len(result['seeds'])} runs "
        f"(seeds {', '.join(map(str, result['seeds']))}: the five page days are split and "
        "the ratings drawn anew for each).\n\n" + head + "\n".join(rows) + "\n"
    )


def halves_table(split: dict) -> str:
    head = (
        "| readers | ranking | ndcg@10 mean | ndcg@10 day 1 | ndcg@10 days 5-7 "
        "| precision mean | precision day 1 | precision days 5-7 |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for half, rankings in split.items():
        for name, metrics in rankings.items():
            n, p = metrics["ndcg@10"], metrics["precision"]
            rows.append(
                f"| {half} | {name} | {n['mean']:.2f} | {n['day 1']:.2f} | {n['days 5-7']:.2f} "
                f"| {p['mean']:.2f} | {p['day 1']:.2f} | {p['days 5-7']:.2f} |"
            )
    return head + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="ranking_eval")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    args = parser.parse_args()
    world = World()
    runs = [run(world, seed) for seed in args.seeds]
    result = averaged(runs) | {"seeds": args.seeds, "runs": runs}
    result["halves"] = halves(world, args.seeds)
    text = table(result) + "\nBy half of the readers, each half replayed alone:\n\n"
    text += halves_table(result["halves"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
