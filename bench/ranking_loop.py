"""Personal ranking as it was first written: numpy per chunk, then a Python loop per reader.

The baseline of bench/ranking_cost.py (old and new ranking timed in turns over the same
readers) and the oracle of tests/newsletter/test_ranking_equivalence.py: the vectorized
newsletter.ranking must pick the same papers for the same reasons. Kept as it was but for the
rule of what is eligible, which follows newsletter.ranking (similarity to a liked paper counts
towards the threshold only above LIKED_FLOOR); the shared parts (Day, Reader, FeedbackPapers,
weights, reason codes) come from newsletter.ranking.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from newsletter.ranking import (
    AUTHOR,
    DISLIKED,
    DISLIKED_TOPIC,
    LIKED,
    LIKED_FLOOR,
    LIKED_REASON,
    PER_GROUP,
    PINNED,
    TEXT,
    TEXT_REASON,
    THRESHOLD,
    TOPIC,
    TOPIC_REASON,
    TRENDING,
    Day,
    FeedbackPapers,
    Reader,
    Selection,
    _above_baseline,
)


def _nearest(
    readers: Sequence[Reader], attr: str, feedback: FeedbackPapers, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the reader's liked (or disliked) papers: (S, P) similarity of each paper of the
    day to the closest one and which one (an id, -1 for none), and (S, T) the share of them
    that carry each topic."""
    pad_row = len(feedback.sims) - 1
    rows = np.full((len(readers), width), pad_row, dtype=np.int64)
    ids = np.full((len(readers), width), -1, dtype=np.int64)
    counts = np.zeros((len(readers), 1), dtype=np.float32)
    for r, reader in enumerate(readers):
        known = [p for p in getattr(reader, attr) if p in feedback.index][:width]
        rows[r, : len(known)] = [feedback.index[p] for p in known]
        ids[r, : len(known)] = known
        counts[r] = len(known)
    gathered = feedback.sims[rows]  # (S, width, P)
    best = gathered.argmax(axis=1)  # (S, P)
    sims = np.take_along_axis(gathered, best[:, None, :], axis=1)[:, 0, :]
    which = np.take_along_axis(ids, best, axis=1)
    # Smoothed share (+1 in the denominator): one feedback moves a topic half as far as many.
    topic_share = feedback.tags[rows].sum(axis=1) / (counts + 1.0)
    found = np.isfinite(sims)
    return np.where(found, sims, 0.0), np.where(found, which, -1), topic_share


class _Matcher:
    """Which papers of the day a muted keyword or a followed name hits, computed once per
    distinct keyword or name and shared by every reader who has it."""

    def __init__(self, the_day: Day) -> None:
        self.day = the_day
        self._keywords: dict[str, np.ndarray] = {}
        self._names: dict[str, np.ndarray] = {}

    def keyword(self, word: str) -> np.ndarray:
        hits = self._keywords.get(word)
        if hits is None:
            pattern = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)")
            hits = np.array([bool(pattern.search(t)) for t in self.day.texts], dtype=bool)
            self._keywords[word] = hits
        return hits

    def name(self, who: str) -> np.ndarray:
        hits = self._names.get(who)
        if hits is None:
            hits = np.array([who in people for people in self.day.people], dtype=bool)
            self._names[who] = hits
        return hits


@dataclass
class _Chunk:
    """The per-reader masks of one chunk, (S, P) each."""

    muted: np.ndarray
    follows: np.ndarray
    excluded: np.ndarray
    followed_name: list[dict[int, str]]  # per reader: paper column -> the name that matched


def _masks(readers: Sequence[Reader], the_day: Day, matcher: _Matcher) -> _Chunk:
    shape = (len(readers), the_day.size)
    chunk = _Chunk(
        muted=np.zeros(shape, dtype=bool),
        follows=np.zeros(shape, dtype=bool),
        excluded=np.zeros(shape, dtype=bool),
        followed_name=[{} for _ in readers],
    )
    column = {int(pid): i for i, pid in enumerate(the_day.paper_ids)}
    for r, reader in enumerate(readers):
        for word in reader.muted:
            chunk.muted[r] |= matcher.keyword(word)
        for who in reader.follows:
            hits = matcher.name(who)
            if hits.any():
                chunk.follows[r] |= hits
                for col in np.nonzero(hits)[0]:
                    chunk.followed_name[r].setdefault(int(col), who)
        for pid in reader.exclude:
            col = column.get(pid)
            if col is not None:
                chunk.excluded[r, col] = True
    return chunk


def rank_readers(
    the_day: Day,
    readers: Sequence[Reader],
    feedback: FeedbackPapers,
    *,
    fallback_to_top: bool = False,
) -> list[Selection]:
    """The selection for each reader of a chunk, in the readers' order. Keep chunks to a few
    thousand readers: the work arrays are (readers x papers x topics) and (readers x feedback
    papers kept x papers)."""
    if not readers:
        return []
    if the_day.size == 0:
        return [[] for _ in readers]
    matcher = _Matcher(the_day)
    chunk = _masks(readers, the_day, matcher)
    topic_column = {t: c for c, t in enumerate(the_day.topic_ids)}
    followed = np.zeros((len(readers), len(the_day.topic_ids)), dtype=bool)
    interests = np.zeros((len(readers), the_day.vectors.shape[1]), dtype=np.float32)
    for r, reader in enumerate(readers):
        for t in reader.topics:
            if t in topic_column:
                followed[r, topic_column[t]] = True
        if reader.interest is not None:
            interests[r] = reader.interest
    focus = np.array([min(max(r.focus, 0.0), 1.0) for r in readers], dtype=np.float32)[:, None]

    # Topic term: the best affinity among followed topics, and which topic that is.
    per_topic = np.where(followed[:, None, :], the_day.affinity[None, :, :], 0.0)  # (S, P, T)
    best_topic = per_topic.argmax(axis=2)
    topic_term = np.take_along_axis(per_topic, best_topic[:, :, None], axis=2)[:, :, 0]
    text_term = _above_baseline(interests @ the_day.vectors.T, the_day.baseline)
    text_term[~interests.any(axis=1)] = 0.0
    width = max(1, max(len(r.liked) for r in readers), max(len(r.disliked) for r in readers))
    liked_sim, liked_which, liked_topics = _nearest(readers, "liked", feedback, width)
    disliked_sim, _, disliked_topics = _nearest(readers, "disliked", feedback, width)
    liked_term = _above_baseline(liked_sim, the_day.baseline)
    # "Less like this" teaches topics too: the topics of disliked papers push the day's papers
    # of those topics down, more the more of the dislikes carry them. (The same pull for likes
    # made the simulated readers' digests worse: liking is narrower than a whole topic.)
    disliked_term = _above_baseline(disliked_sim, the_day.baseline)
    disliked_term += DISLIKED_TOPIC * np.maximum(
        (disliked_topics - liked_topics) @ the_day.affinity.T, 0.0
    )

    parts = np.stack([TOPIC * topic_term, TEXT * text_term, LIKED * liked_term])  # (3, S, P)
    relevance = parts.sum(axis=0) - DISLIKED * disliked_term
    score = (1.0 - focus) * relevance + focus * the_day.popularity[None, :]
    # A like counts towards the threshold only above LIKED_FLOOR, as in newsletter.ranking.
    let_in = relevance - LIKED * np.minimum(liked_term, LIKED_FLOOR)
    eligible = let_in >= THRESHOLD * (1.0 - focus)
    eligible |= chunk.follows | the_day.pinned[None, :]
    eligible &= ~chunk.muted & ~chunk.excluded

    # Order: pinned (in the editor's order), then followed authors, then score.
    key = score + 10.0 * chunk.follows
    key = np.where(the_day.pinned[None, :], 100.0 - the_day.order[None, :] * 1e-3, key)
    key = np.where(eligible, key, -np.inf)
    ordering = np.argsort(-key, axis=1, kind="stable")

    # Popularity's share of the score, to compare with each relevance part's share.
    trending_part = focus * the_day.popularity[None, :]
    relevance_parts = (1.0 - focus)[None, :, :] * parts

    why = _Why(the_day, chunk, relevance_parts, trending_part, best_topic, liked_which, feedback)
    selections: list[Selection] = []
    for r, reader in enumerate(readers):
        picked = _pick(ordering[r], eligible[r], the_day.groups, reader.limit)
        if not picked and fallback_to_top:
            allowed = ~chunk.muted[r] & ~chunk.excluded[r]
            by_votes = np.argsort(-the_day.popularity, kind="stable")
            picked = [int(c) for c in by_votes if allowed[c]][: reader.limit]
            selections.append([[int(the_day.paper_ids[c]), [TRENDING]] for c in picked])
            continue
        selections.append([[int(the_day.paper_ids[c]), why.reason(r, c)] for c in picked])
    return selections


@dataclass(frozen=True)
class _Why:
    """What a chunk's scores say about why each picked paper is there."""

    the_day: Day
    chunk: _Chunk
    relevance_parts: np.ndarray  # (3, S, P): topic, text, liked, each weighted by 1 - focus
    trending_part: np.ndarray  # (S, P): popularity weighted by focus
    best_topic: np.ndarray  # (S, P): column of the followed topic that scored
    liked_which: np.ndarray  # (S, P): the closest liked paper's id, -1 for none
    feedback: FeedbackPapers

    def reason(self, r: int, c: int) -> list:
        if self.the_day.pinned[c]:
            return [PINNED]
        if self.chunk.follows[r, c]:
            who = self.chunk.followed_name[r][c]
            return [AUTHOR, self.the_day.display.get(who, who)]
        return _reason(
            self.relevance_parts[:, r, c],
            float(self.trending_part[r, c]),
            self.the_day.topic_ids[self.best_topic[r, c]],
            int(self.liked_which[r, c]),
            self.feedback.titles,
        )


def _pick(ordering: np.ndarray, eligible: np.ndarray, groups: np.ndarray, limit: int) -> list:
    picked: list[int] = []
    per_group: dict[int, int] = {}
    for c in ordering:
        if not eligible[c] or len(picked) >= limit:
            break
        group = int(groups[c])
        if per_group.get(group, 0) >= PER_GROUP:
            continue
        per_group[group] = per_group.get(group, 0) + 1
        picked.append(int(c))
    return picked


def _reason(
    parts: np.ndarray, trending: float, topic_id: int, liked_id: int, titles: dict[int, str]
) -> list:
    """The signal that contributed most to a paper's score."""
    topic, text, liked = (float(p) for p in parts)
    best = max(topic, text, liked, trending)
    if best <= 0.0 or best == trending:
        return [TRENDING]
    if best == liked and liked_id >= 0:
        return [LIKED_REASON, liked_id, titles.get(liked_id, "")]
    if best == text:
        return [TEXT_REASON]
    return [TOPIC_REASON, topic_id]
