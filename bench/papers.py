"""The real papers of tests/fixtures with the editor's labels of bench/data/editor_labels.json.

Shared by the ranking and tagging evaluations. Each paper is read with the project's own
parsers (the API and page formats) or, for the plain-text trending-page capture, as
title/abstract block pairs; labels are matched by whitespace-normalized title.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

from digests.sources import hf_api, hf_page

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
LABELS = ROOT / "bench" / "data" / "editor_labels.json"
SEED = 11


@dataclass(frozen=True)
class LabelledPaper:
    id: int
    set: str  # "tune", "holdout-2026-05-08" or "holdout-2024-08-01"
    title: str
    abstract: str
    keywords: tuple[str, ...]
    authors: tuple[str, ...]
    upvotes: int
    topics: tuple[str, ...]  # the editor's topic slugs, main one first
    subtopics: tuple[str, ...]


def _key(title: str) -> str:
    return " ".join(title.split()).casefold()


def _corpus() -> list[tuple[str, str]]:
    text = (FIXTURES / "trending-papers-page.txt").read_text(encoding="utf-8")
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    pairs = []
    for title, abstract in itertools.pairwise(blocks):
        if 20 < len(title) < 250 and "\n" not in title and len(abstract) > 300:
            pairs.append((title, abstract))
    return pairs


def labelled_papers() -> list[LabelledPaper]:
    labels = {_key(raw["title"]): raw for raw in json.loads(LABELS.read_text(encoding="utf-8"))}
    # Upvotes are not in the plain-text capture: a seeded log-normal, independent of content.
    votes = random.Random(SEED)
    found: dict[str, tuple] = {}
    for title, abstract in _corpus():
        found.setdefault(_key(title), (title, abstract, (), (), int(votes.lognormvariate(3, 1))))
    api = hf_api.parse((FIXTURES / "hf_daily_papers_api_2026-05-08.json").read_text("utf-8"))
    page = hf_page.parse((ROOT / "digests" / "sample" / "hf_papers_page.html").read_text("utf-8"))
    for item in api.items + page.items:
        found[_key(item.title)] = (
            item.title,
            item.abstract,
            tuple(item.ai_keywords),
            tuple(item.authors),
            item.upvotes,
        )
    papers = []
    for number, (key, raw) in enumerate(labels.items(), start=1):
        if key not in found:
            raise LookupError(f"labelled paper not in the fixtures: {raw['title']!r}")
        title, abstract, keywords, authors, upvotes = found[key]
        papers.append(
            LabelledPaper(
                id=number,
                set=raw["set"],
                title=title,
                abstract=abstract,
                keywords=keywords,
                authors=authors,
                upvotes=upvotes,
                topics=tuple(raw["topics"]),
                subtopics=tuple(raw["subtopics"]),
            )
        )
    return papers


def catalog_topics(path: Path | None = None) -> list:
    """The shipped topics (or those of another catalog file) as unsaved Topic objects with
    ids 1..N, in their catalog order."""
    from digests.models import Topic
    from digests.topic_catalog import CATALOG

    return [
        Topic(
            pk=i,
            name=entry["name"],
            slug=entry["slug"],
            description=entry["description"],
            phrases=entry["phrases"],
            examples=entry.get("examples", []),
            position=entry["position"],
        )
        for i, entry in enumerate(
            json.loads((path or CATALOG).read_text(encoding="utf-8")), start=1
        )
    ]
