"""The ranking as it shipped before personalization: followed topics' phrase tags + upvotes.

Kept as the baseline of bench/ranking_eval.py ("topics only"), unchanged but for this
docstring and the shared content_key: the evaluation compares the personal ranking
(newsletter.ranking) against exactly what readers got before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# One more followed topic matching a paper is worth half the whole upvote range: relevance
# first, popularity to break ties and order the rest.
TOPIC_MATCH_WEIGHT = 0.5


@dataclass(frozen=True)
class Candidate:
    """A visible paper of the day's batch, as ranking sees it."""

    paper_id: int
    topic_ids: frozenset[int]
    upvotes: int
    pinned: bool
    rank: int  # upstream position, 1 = top


# [[paper_id, [matched topic ids]], ...], the shape stored in Delivery.selection.
Selection = list[list]


def rank_for_topics(
    candidates: list[Candidate],
    followed: frozenset[int],
    *,
    limit: int,
    exclude: frozenset[int] = frozenset(),
    fallback_to_top: bool = False,
) -> Selection:
    """The ranked papers for someone following `followed`, best first, at most `limit`.

    Papers matching none of the followed topics are left out; pinned papers come first, in the
    editor's order; then a score mixing how many followed topics match with the paper's
    upvotes. Papers in `exclude` (already sent to this subscriber) are never repeated. With
    nothing matching, either nothing (the subscriber is skipped) or, if `fallback_to_top`, the
    day's top papers.
    """
    if not candidates:
        return []
    top_upvotes = max(c.upvotes for c in candidates)
    scale = math.log1p(top_upvotes) or 1.0

    def score(c: Candidate, matched: int) -> tuple:
        popularity = math.log1p(c.upvotes) / scale
        # Pinned papers keep the editor's order (their rank) among themselves.
        pinned_order = c.rank if c.pinned else 0
        return (not c.pinned, pinned_order, -(TOPIC_MATCH_WEIGHT * matched + popularity), c.rank)

    scored = []
    for c in candidates:
        if c.paper_id in exclude:
            continue
        matched = c.topic_ids & followed
        if matched:
            scored.append((score(c, len(matched)), c.paper_id, sorted(matched)))
    if not scored and fallback_to_top:
        scored = [(score(c, 0), c.paper_id, []) for c in candidates if c.paper_id not in exclude]
    scored.sort()
    return [[paper_id, matched] for _, paper_id, matched in scored[:limit]]


def plan_selections(
    candidates: list[Candidate],
    subscriber_topics: Iterable[tuple[int, frozenset[int]]],
    already_sent: dict[int, frozenset[int]],
    *,
    limit: int,
    fallback_to_top: bool,
) -> Iterable[tuple[int, Selection]]:
    """(subscriber_id, selection) for every subscriber; the ranking runs once per distinct
    (followed topics, already-sent papers) pair."""
    cache: dict[tuple[frozenset[int], frozenset[int]], Selection] = {}
    for subscriber_id, followed in subscriber_topics:
        exclude = already_sent.get(subscriber_id, frozenset())
        key = (followed, exclude)
        if key not in cache:
            cache[key] = rank_for_topics(
                candidates, followed, limit=limit, exclude=exclude, fallback_to_top=fallback_to_top
            )
        yield subscriber_id, cache[key]
