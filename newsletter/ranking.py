"""Which papers each subscriber gets, in which order, and why: personal ranking as array maths.

Pure functions over numpy arrays and plain data, no ORM, so the ranking is easy to test and to
evaluate offline (bench/ranking_eval.py replays simulated readers through exactly this code).

For one day, every visible paper is a row of the day's matrices (`Day`): its meaning vector,
how much it is about each topic, its popularity. A chunk of subscribers (`Reader`s) is scored
against all of them at once:

    relevance = TOPIC  * how much the paper is about a topic the reader follows
              + TEXT   * similarity to what the reader wrote they work on
              + LIKED  * similarity to the closest paper they liked     (above the day's baseline)
              - DISLIKED * (similarity to the closest paper they disliked (above the baseline)
                            + DISLIKED_TOPIC * how much it is about the topics they disliked)
    score     = (1 - focus) * relevance + focus * popularity

`focus` is the reader's own control, 0 = "just my field", 1 = "what's hot". A paper is eligible
when its relevance clears a threshold that the focus lowers; muted keywords and papers already
sent are never eligible; pinned papers and papers by followed authors always are, and come
first. Near-duplicates (papers closer than `NEAR_DUPLICATE`) share a group, and a group fills at
most `PER_GROUP` places of one email.

Similarity to single liked/disliked papers (nearest neighbour) rather than to their average
keeps several interests apart: liking a robotics paper and a speech paper must not make a
paper halfway between them the best match. It also names the real reason ("Because you liked
<that paper>").

The reason recorded for each chosen paper is the signal that contributed most to its score.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from subscriptions.profiles import normalize_name

# Weights of the relevance terms. Chosen on the tuning days of bench/ranking_eval.py (see its
# table in the README); the topic term is a calibrated affinity in [0, 1], the others are
# similarities above the day's baseline, rescaled to [0, 1].
TOPIC = 1.0
TEXT = 2.0
LIKED = 2.0
DISLIKED = 1.0
DISLIKED_TOPIC = 1.0  # how much the topics of disliked papers push papers of those topics
# Relevance a paper needs to be picked at focus 0; at focus 1 anything not disliked is eligible.
THRESHOLD = 0.2
# Papers at least this similar are one group, and a group fills at most PER_GROUP places of an
# email. 0.75 is past the 99.9th percentile of similarity between two of the 159 real fixture
# papers (median 0.38): only papers on one narrow question get there.
NEAR_DUPLICATE = 0.75
PER_GROUP = 3
DEFAULT_FOCUS = 0.25

# Reason codes stored in a selection, [paper_id, [code, argument?]].
PINNED = "pinned"
AUTHOR = "author"  # argument: the followed name that matched
TOPIC_REASON = "topic"  # argument: topic id
TEXT_REASON = "text"
LIKED_REASON = "liked"  # arguments: id and title of the liked paper it is closest to
TRENDING = "trending"

# [[paper_id, reason], ...], the shape stored in IssueContent.selection.
Selection = list[list]


def content_key(selection: Selection) -> str:
    """A stable hash of a selection: equal selections render to the same email body."""
    return hashlib.sha1(json.dumps(selection).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Day:
    """The papers one digest can carry, as ranking sees them. Row i of every array is paper i."""

    paper_ids: np.ndarray  # (P,) int64
    vectors: np.ndarray  # (P, d) float32, unit rows (a zero row: no vector)
    affinity: np.ndarray  # (P, T) float32 in [0, 1]: how much the paper is about each topic
    topic_ids: tuple[int, ...]  # the topic of each affinity column
    popularity: np.ndarray  # (P,) float32 in [0, 1]
    pinned: np.ndarray  # (P,) bool
    order: np.ndarray  # (P,) int, the editor's / upstream position, 1 = first
    texts: tuple[str, ...]  # lower-cased title, keywords and abstract, for muted keywords
    people: tuple[frozenset[str], ...]  # normalized author and organization names
    groups: np.ndarray  # (P,) int: near-duplicate group
    baseline: float  # typical similarity of two unrelated papers of the day
    display: dict[str, str]  # normalized name -> the name as the paper spells it

    @property
    def size(self) -> int:
        return len(self.paper_ids)


@dataclass(frozen=True)
class Reader:
    """One subscriber's profile, as ranking reads it."""

    subscriber_id: int
    topics: frozenset[int] = frozenset()
    interest: np.ndarray | None = None  # (d,) unit vector of "what I work on", if written
    liked: tuple[int, ...] = ()  # paper ids, most recent first
    disliked: tuple[int, ...] = ()
    muted: tuple[str, ...] = ()  # normalized keywords
    follows: tuple[str, ...] = ()  # normalized author / organization names
    focus: float = DEFAULT_FOCUS
    limit: int = 10
    exclude: frozenset[int] = frozenset()  # papers already sent to this reader


def day(
    *,
    paper_ids: Sequence[int],
    vectors: np.ndarray,
    affinity: np.ndarray,
    topic_ids: Sequence[int],
    upvotes: Sequence[int],
    pinned: Sequence[bool],
    order: Sequence[int],
    texts: Sequence[str],
    people: Sequence[Sequence[str]],
) -> Day:
    """A Day with its derived parts: popularity, near-duplicate groups, similarity baseline."""
    votes = np.asarray(upvotes, dtype=np.float32)
    scale = np.log1p(votes.max()) if len(votes) and votes.max() > 0 else 1.0
    vectors = np.asarray(vectors, dtype=np.float32)
    sims = vectors @ vectors.T
    return Day(
        paper_ids=np.asarray(paper_ids, dtype=np.int64),
        vectors=vectors,
        affinity=np.asarray(affinity, dtype=np.float32).reshape(len(paper_ids), len(topic_ids)),
        topic_ids=tuple(topic_ids),
        popularity=(np.log1p(votes) / scale).astype(np.float32),
        pinned=np.asarray(pinned, dtype=bool),
        order=np.asarray(order, dtype=np.int64),
        texts=tuple(t.casefold() for t in texts),
        people=tuple(frozenset(normalize_name(p) for p in ps) for ps in people),
        groups=_groups(sims),
        baseline=_baseline(sims),
        display={normalize_name(p): p for ps in people for p in ps},
    )


def _groups(sims: np.ndarray) -> np.ndarray:
    """Near-duplicate groups: connected components of "at least NEAR_DUPLICATE similar"."""
    n = len(sims)
    groups = np.arange(n)
    for i in range(n):
        for j in np.nonzero(sims[i, i + 1 :] >= NEAR_DUPLICATE)[0] + i + 1:
            old, new = groups[j], groups[i]
            if old != new:
                groups[groups == old] = new
    return groups


def _baseline(sims: np.ndarray) -> float:
    """The median similarity of two different papers of the day: what "unrelated" looks like
    for this model on this day, so that similarity terms count only what is above it."""
    n = len(sims)
    if n < 2:
        return 0.0
    off_diagonal = sims[~np.eye(n, dtype=bool)]
    return float(np.clip(np.median(off_diagonal), 0.0, 0.9))


@dataclass(frozen=True)
class FeedbackPapers:
    """The papers readers gave feedback on, with their similarity to each paper of the day."""

    index: dict[int, int]  # paper id -> row
    sims: np.ndarray  # (L + 1, P): row L is padding, similarity -inf
    tags: np.ndarray  # (L + 1, T): the feedback papers' topics (the day's columns), padding 0
    titles: dict[int, str]  # paper id -> title, for "Because you liked <title>"

    @classmethod
    def build(
        cls,
        the_day: Day,
        vectors_by_paper: dict[int, np.ndarray],
        titles: dict[int, str] | None = None,
        topics_by_paper: dict[int, Iterable[int]] | None = None,
    ) -> FeedbackPapers:
        ids = list(vectors_by_paper)
        pad = np.full((1, the_day.size), -np.inf, dtype=np.float32)
        tags = np.zeros((len(ids) + 1, len(the_day.topic_ids)), dtype=np.float32)
        column = {t: c for c, t in enumerate(the_day.topic_ids)}
        for row, pid in enumerate(ids):
            for topic in (topics_by_paper or {}).get(pid, ()):
                if topic in column:
                    tags[row, column[topic]] = 1.0
        if not ids:
            return cls(index={}, sims=pad, tags=tags, titles={})
        matrix = np.stack([vectors_by_paper[i] for i in ids]).astype(np.float32)
        return cls(
            index={pid: row for row, pid in enumerate(ids)},
            sims=np.vstack([matrix @ the_day.vectors.T, pad]),
            tags=tags,
            titles=titles or {},
        )


def _above_baseline(sims: np.ndarray, baseline: float) -> np.ndarray:
    return np.clip((sims - baseline) / (1.0 - baseline), 0.0, 1.0)


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
    eligible = relevance >= THRESHOLD * (1.0 - focus)
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


def rank_all(
    the_day: Day,
    readers: Iterable[Reader],
    feedback: FeedbackPapers,
    *,
    chunk_size: int = 2000,
    fallback_to_top: bool = False,
) -> Iterator[tuple[int, Selection]]:
    """(subscriber id, selection) for every reader, scored a chunk at a time so memory stays
    flat however many readers there are."""
    batch: list[Reader] = []
    for reader in readers:
        batch.append(reader)
        if len(batch) >= chunk_size:
            yield from _rank_batch(the_day, batch, feedback, fallback_to_top)
            batch = []
    if batch:
        yield from _rank_batch(the_day, batch, feedback, fallback_to_top)


def _rank_batch(
    the_day: Day, batch: list[Reader], feedback: FeedbackPapers, fallback_to_top: bool
) -> Iterator[tuple[int, Selection]]:
    selections = rank_readers(the_day, batch, feedback, fallback_to_top=fallback_to_top)
    for reader, selection in zip(batch, selections, strict=True):
        yield reader.subscriber_id, selection
