"""Consistency checks and statistics for the editor labels and the simulated readers.

Plain Python, no Django: ``python3 bench/data/check_labels.py``. Exits non-zero when a file
breaks its format (unknown slug, too many topics, a reader with too few relevant papers).

Days: the 159 papers, in file order, are dealt round-robin into 7 days (paper k goes to day
k mod 7), so every day mixes the tuning page and both held-out days the way a real day mixes
fields; the three fixture files are each sorted by field or popularity, so consecutive slices
would give days of one field. The consecutive split is printed too, for comparison.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAYS = 7
MIN_RELEVANT = 6
# "Most days": a reader has a relevant paper on at least 4 of the 7 round-robin days.
MIN_DAYS_COVERED = 4

TOPICS = {
    "large-language-models",
    "reasoning",
    "alignment-rlhf",
    "agents",
    "multimodal",
    "computer-vision",
    "generative-media",
    "speech-audio",
    "robotics",
    "reinforcement-learning",
    "efficiency",
    "retrieval-rag",
    "evaluation",
    "safety",
    "science-health",
    "theory",
    "code",
    "graphs-structured-data",
    "data",
}
SETS = {"tune": 109, "holdout-2026-05-08": 37, "holdout-2024-08-01": 13}


def load(name: str) -> list[dict]:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def round_robin_days(count: int) -> list[list[int]]:
    return [list(range(day, count, DAYS)) for day in range(DAYS)]


def consecutive_days(count: int) -> list[list[int]]:
    size = -(-count // DAYS)
    return [list(range(start, min(start + size, count))) for start in range(0, count, size)]


def check_files(labels: list[dict], slugs: list[str]) -> list[str]:
    """Format errors of the vocabulary and of each labelled paper."""
    errors: list[str] = []
    if len(set(slugs)) != len(slugs):
        errors.append("subtopics.json: duplicate slugs")
    if not 40 <= len(slugs) <= 70:
        errors.append(f"subtopics.json: {len(slugs)} entries, expected 40-70")
    sizes = Counter(paper["set"] for paper in labels)
    if dict(sizes) != SETS:
        errors.append(f"editor_labels.json: set sizes {dict(sizes)}, expected {SETS}")
    for number, paper in enumerate(labels):
        errors += check_paper(f"paper {number} ({paper['title'][:50]})", paper, set(slugs))
    return errors


def check_paper(where: str, paper: dict, slugs: set[str]) -> list[str]:
    topics, subtopics = paper["topics"], paper["subtopics"]
    errors = []
    if not 1 <= len(topics) <= 3 or len(set(topics)) != len(topics):
        errors.append(f"{where}: {len(topics)} topics")
    if not set(topics) <= TOPICS:
        errors.append(f"{where}: unknown topics {set(topics) - TOPICS}")
    if not 1 <= len(subtopics) <= 3 or not set(subtopics) <= slugs:
        errors.append(f"{where}: bad subtopics {subtopics}")
    if paper["set"] != "tune" and not paper["arxiv_id"]:
        errors.append(f"{where}: held-out paper without arxiv_id")
    return errors


def print_usage(labels: list[dict], slugs: list[str]) -> list[str]:
    """Print how the labels use topics and subtopics; a subtopic never used is an error."""
    sizes = Counter(paper["set"] for paper in labels)
    print(f"{len(labels)} papers: " + ", ".join(f"{name} {n}" for name, n in sizes.items()))
    for name in [*SETS, "all"]:
        chosen = [p for p in labels if name in ("all", p["set"])]
        per_paper = [len(p["topics"]) for p in chosen]
        print(
            f"  {name:<20} topics/paper mean {statistics.mean(per_paper):.2f} "
            f"max {max(per_paper)}  subtopics/paper mean "
            f"{statistics.mean(len(p['subtopics']) for p in chosen):.2f}"
        )
    print("\ntopic usage (papers; as main topic):")
    used = Counter(t for p in labels for t in p["topics"])
    main_topic = Counter(p["topics"][0] for p in labels)
    for topic in sorted(TOPICS, key=lambda t: -used[t]):
        print(f"  {topic:<24} {used[topic]:>3}  {main_topic[topic]:>3}")
    print("\nsubtopic usage (papers):")
    usage = Counter(s for p in labels for s in p["subtopics"])
    for slug in sorted(slugs, key=lambda s: (-usage[s], s)):
        print(f"  {slug:<38} {usage[slug]:>3}")
    unused = [s for s in slugs if not usage[s]]
    return [f"subtopics never used: {unused}"] if unused else []


def check_readers(readers: list[dict], labels: list[dict], slugs: list[str]) -> list[str]:
    """Print each reader's relevant papers per day; too few of them is an error."""
    errors: list[str] = []
    robin, consecutive = round_robin_days(len(labels)), consecutive_days(len(labels))
    print("\nreaders: relevant papers overall, per round-robin day, per consecutive day")
    for reader in readers:
        wanted = set(reader["relevant_subtopics"])
        relevant = {i for i, p in enumerate(labels) if wanted & set(p["subtopics"])}
        by_day = [len(relevant & set(day)) for day in robin]
        by_block = [len(relevant & set(day)) for day in consecutive]
        print(f"  {reader['name']}  {len(relevant):>3}  {by_day}  {by_block}")
        if not wanted <= set(slugs):
            errors.append(f"{reader['name']}: unknown subtopics {wanted - set(slugs)}")
        if not set(reader["signup_topics"]) <= TOPICS or not 1 <= len(reader["signup_topics"]) <= 3:
            errors.append(f"{reader['name']}: bad signup topics {reader['signup_topics']}")
        if len(relevant) < MIN_RELEVANT:
            errors.append(f"{reader['name']}: only {len(relevant)} relevant papers")
        if sum(1 for n in by_day if n) < MIN_DAYS_COVERED:
            errors.append(f"{reader['name']}: relevant papers on < {MIN_DAYS_COVERED} days")
    return errors


def main() -> int:
    labels = load("editor_labels.json")
    slugs = [entry["slug"] for entry in load("subtopics.json")]
    errors = check_files(labels, slugs)
    errors += print_usage(labels, slugs)
    errors += check_readers(load("readers.json"), labels, slugs)
    for error in errors:
        print(f"ERROR {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
