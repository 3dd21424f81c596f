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
when its relevance clears a threshold that the focus lowers, where similarity to a liked paper
counts only above LIKED_FLOOR (a 👍 moves papers up; it brings in only papers very close to
the liked one, since the nearest liked paper is also close to many papers of neighbouring
subfields the reader does not want); muted keywords and papers already
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

import gc
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain

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
# Similarity to the closest liked paper (above the baseline, in [0, 1]) up to this much only
# reorders; only what is above it counts towards the threshold, so a 👍 lets in a paper of
# another field only when it is very close to the liked one. Chosen on the odd-numbered
# simulated readers of bench/ranking_eval.py (0 was the rule before: every neighbour counted).
LIKED_FLOOR = 0.3
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
    top_when_empty: bool = False  # nothing matches: the day's top papers rather than nothing


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


# A chunk of readers is read into arrays once; every later step is array maths over the whole
# chunk. The per-reader fields are ragged (a few topics, a few liked papers, maybe a muted
# keyword), so each is flattened into one list with the row it came from, and only distinct
# values (a keyword, a name) ever touch Python code of their own.


def _flatten(values: Sequence[Iterable]) -> tuple[list, np.ndarray]:
    """Every reader's items in one list, and the row of the reader each came from."""
    counts = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    return list(chain.from_iterable(values)), np.repeat(np.arange(len(values)), counts)


def _lookup(mapping: dict[int, int], wanted: list) -> np.ndarray:
    """mapping[w] for each wanted key, -1 where it has none."""
    found = np.full(len(wanted), -1, dtype=np.int64)
    if not mapping or not wanted:
        return found
    keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    order = np.argsort(keys)
    wanted_keys = np.asarray(wanted, dtype=np.int64)
    at = order[np.minimum(np.searchsorted(keys, wanted_keys, sorter=order), len(keys) - 1)]
    hit = keys[at] == wanted_keys
    found[hit] = values[at[hit]]
    return found


def _padded(rows: np.ndarray, values: np.ndarray, count: int, fill: int, width: int) -> np.ndarray:
    """(count, width): row r holds the values flattened from reader r, in their order, then
    `fill`. `rows` is sorted (values were flattened reader by reader) and no reader has more
    than `width` values."""
    out = np.full((count, width), fill, dtype=np.int64)
    per_row = np.bincount(rows, minlength=count)
    starts = np.cumsum(per_row) - per_row
    out[rows, np.arange(len(rows)) - starts[rows]] = values
    return out


def _topic_columns(readers: Sequence[Reader], the_day: Day) -> np.ndarray:
    """(S, k) the day's columns of each reader's followed topics, ascending, padded with
    column T (all zeros in `_topic_term`; affinity is never below 0, so a padding column
    changes no maximum)."""
    topics, rows = _flatten([r.topics for r in readers])
    columns = _lookup({t: c for c, t in enumerate(the_day.topic_ids)}, topics)
    known = columns >= 0
    rows, columns = rows[known], columns[known]
    order = np.lexsort((columns, rows))  # ascending columns: ties go to the first, as argmax
    rows, columns = rows[order], columns[order]
    width = max(1, int(np.bincount(rows, minlength=len(readers)).max(initial=0)))
    return _padded(rows, columns, len(readers), len(the_day.topic_ids), width)


def _topic_term(the_day: Day, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, P) the best affinity among each reader's followed topics, and (S, P) the column of
    that topic. A gather over the few followed columns rather than all T of them."""
    padded = np.vstack([the_day.affinity.T, np.zeros((1, the_day.size), dtype=np.float32)])
    gathered = padded[columns]  # (S, k, P)
    best = gathered.argmax(axis=1)
    term = np.take_along_axis(gathered, best[:, None, :], axis=1)[:, 0, :]
    return term, np.take_along_axis(columns, best, axis=1)


def _interests(readers: Sequence[Reader], dims: int) -> np.ndarray:
    """(S, d) each reader's "What I work on" vector, zeros for readers who wrote none."""
    interests = np.zeros((len(readers), dims), dtype=np.float32)
    written = [r for r, reader in enumerate(readers) if reader.interest is not None]
    if written:
        interests[written] = np.stack([readers[r].interest for r in written])
    return interests


def _nearest(
    readers: Sequence[Reader], attr: str, feedback: FeedbackPapers
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the reader's liked (or disliked) papers: (S, P) similarity of each paper of the
    day to the closest one and which one (an id, -1 for none), and (S, T) the share of them
    that carry each topic. Feedback papers the day does not know are left out."""
    paper_ids, rows = _flatten([getattr(r, attr) for r in readers])
    feedback_rows = _lookup(feedback.index, paper_ids)
    known = feedback_rows >= 0
    paper_ids = np.asarray(paper_ids, dtype=np.int64)[known]
    counts = np.bincount(rows[known], minlength=len(readers))
    sims = np.zeros((len(readers), len(feedback.sims[0])), dtype=np.float32)
    which = np.full(sims.shape, -1, dtype=np.int64)
    topic_share = np.zeros((len(readers), feedback.tags.shape[1]), dtype=np.float32)
    # Only readers with feedback the day knows are gathered: usually most readers have none.
    some = np.nonzero(counts)[0]
    if len(some):
        position = np.full(len(readers), -1, dtype=np.int64)
        position[some] = np.arange(len(some))
        kept = position[rows[known]]
        pad_row = len(feedback.sims) - 1  # similarity -inf: never the closest
        width = int(counts.max())
        padded_rows = _padded(kept, feedback_rows[known], len(some), pad_row, width)
        ids = _padded(kept, paper_ids, len(some), -1, width)
        gathered = feedback.sims[padded_rows]  # (readers with feedback, width, P)
        best = gathered.argmax(axis=1)  # the first of equally close ones, in the reader's order
        sims[some] = np.take_along_axis(gathered, best[:, None, :], axis=1)[:, 0, :]
        which[some] = np.take_along_axis(ids, best, axis=1)
        # Smoothed share (+1 in the denominator): one feedback moves a topic half as far as
        # many.
        topic_share[some] = feedback.tags[padded_rows].sum(axis=1) / (
            counts[some].astype(np.float32)[:, None] + 1.0
        )
    found = np.isfinite(sims)  # a feedback paper without a usable vector matches nothing
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

    def hits(self, values: list[str], one) -> tuple[np.ndarray, list[str]]:
        """(len(values), P) the papers each value hits, and the distinct values in order of
        first appearance."""
        distinct = list(dict.fromkeys(values))
        masks = np.stack([one(v) for v in distinct]).reshape(len(distinct), self.day.size)
        index = {v: i for i, v in enumerate(distinct)}
        return masks[[index[v] for v in values]], distinct


@dataclass
class _Masks:
    """The per-reader masks of one chunk, (S, P) each."""

    muted: np.ndarray
    follows: np.ndarray
    excluded: np.ndarray
    followed_name: np.ndarray  # (S, P) index in `names` of the first followed name that matched
    names: list[str]


def _masks(readers: Sequence[Reader], the_day: Day, matcher: _Matcher) -> _Masks:
    shape = (len(readers), the_day.size)
    masks = _Masks(
        muted=np.zeros(shape, dtype=bool),
        follows=np.zeros(shape, dtype=bool),
        excluded=np.zeros(shape, dtype=bool),
        followed_name=np.full(shape, -1, dtype=np.int64),
        names=[],
    )
    words, rows = _flatten([r.muted for r in readers])
    if words:
        hit, col = np.nonzero(matcher.hits(words, matcher.keyword)[0])
        masks.muted[rows[hit], col] = True
    _mark_follows(masks, readers, matcher)
    excluded, rows = _flatten([r.exclude for r in readers])
    columns = _lookup({int(pid): c for c, pid in enumerate(the_day.paper_ids)}, excluded)
    known = columns >= 0
    masks.excluded[rows[known], columns[known]] = True
    return masks


def _mark_follows(masks: _Masks, readers: Sequence[Reader], matcher: _Matcher) -> None:
    """Papers by a followed name, and for each the reader's first name (in their order) that
    matched it, the one the reason shows."""
    names, rows = _flatten([r.follows for r in readers])
    if not names:
        return
    hits, masks.names = matcher.hits(names, matcher.name)
    index = {v: i for i, v in enumerate(masks.names)}
    hit, col = np.nonzero(hits)  # by reader, then by the reader's order of names
    cell = rows[hit] * masks.follows.shape[1] + col
    first = np.unique(cell, return_index=True)[1]  # the first name that hit each (reader, paper)
    reader, col = rows[hit[first]], col[first]
    masks.follows[reader, col] = True
    masks.followed_name[reader, col] = [index[names[h]] for h in hit[first]]


@dataclass
class _Scores:
    """A chunk's scores and what they are made of, (S, P) unless noted."""

    score: np.ndarray
    eligible: np.ndarray
    relevance_parts: np.ndarray  # (3, S, P): topic, text, liked, each weighted by 1 - focus
    trending_part: np.ndarray  # popularity weighted by focus
    best_topic: np.ndarray  # column of the followed topic that scored
    liked_which: np.ndarray  # the closest liked paper's id, -1 for none


def _scores(
    the_day: Day, readers: Sequence[Reader], feedback: FeedbackPapers, masks: _Masks
) -> _Scores:
    focus = np.clip(np.fromiter((r.focus for r in readers), dtype=np.float64), 0.0, 1.0)
    focus = focus.astype(np.float32)[:, None]
    topic_term, best_topic = _topic_term(the_day, _topic_columns(readers, the_day))
    interests = _interests(readers, the_day.vectors.shape[1])
    text_term = _above_baseline(interests @ the_day.vectors.T, the_day.baseline)
    text_term[~interests.any(axis=1)] = 0.0
    liked_sim, liked_which, liked_topics = _nearest(readers, "liked", feedback)
    disliked_sim, _, disliked_topics = _nearest(readers, "disliked", feedback)
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
    # A 👍 reorders what topics, free text and dislikes let in and adds only papers very close
    # to a liked one: counting every neighbour towards the threshold filled the simulated
    # readers' emails with papers of nearby subfields they did not want (bench/ranking_eval.py).
    let_in = relevance - LIKED * np.minimum(liked_term, LIKED_FLOOR)
    eligible = let_in >= THRESHOLD * (1.0 - focus)
    eligible |= masks.follows | the_day.pinned[None, :]
    eligible &= ~masks.muted & ~masks.excluded
    return _Scores(
        score=(1.0 - focus) * relevance + focus * the_day.popularity[None, :],
        eligible=eligible,
        # Popularity's share of the score, to compare with each relevance part's share.
        relevance_parts=(1.0 - focus)[None, :, :] * parts,
        trending_part=focus * the_day.popularity[None, :],
        best_topic=best_topic,
        liked_which=liked_which,
    )


def _ordering(the_day: Day, scores: _Scores, masks: _Masks) -> np.ndarray:
    """(S, P) each reader's columns best first: pinned (in the editor's order), then followed
    authors, then score; papers that are not eligible last."""
    key = scores.score + 10.0 * masks.follows
    key = np.where(the_day.pinned[None, :], 100.0 - the_day.order[None, :] * 1e-3, key)
    key = np.where(scores.eligible, key, -np.inf)
    return np.argsort(-key, axis=1, kind="stable")


def _picked(
    ordering: np.ndarray, eligible: np.ndarray, groups: np.ndarray, limit: np.ndarray
) -> np.ndarray:
    """(S, P) over each reader's ordering: which places make the email. Going down the order,
    a paper is taken while eligible, unless its near-duplicate group already has PER_GROUP
    places, until `limit` papers are taken."""
    # Everything from the first paper that is not eligible on is out (ineligible papers sort
    # last; a paper whose score is not a number sorts after them and stays out too).
    taken = np.logical_and.accumulate(np.take_along_axis(eligible, ordering, axis=1), axis=1)
    group_of = groups[ordering]
    ids, sizes = np.unique(groups, return_counts=True)
    for group in ids[sizes > PER_GROUP]:  # only groups that can overflow: usually none
        members = taken & (group_of == group)
        taken &= ~(members & (np.cumsum(members, axis=1) > PER_GROUP))
    return taken & (np.cumsum(taken, axis=1) <= limit[:, None])


def _top_by_votes(the_day: Day, masks: _Masks, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fallback for a reader nothing matches: (P,) the day's columns most upvoted first,
    and (S, P) over that order which places each reader gets (never muted or already sent)."""
    by_votes = np.argsort(-the_day.popularity, kind="stable")
    allowed = (~masks.muted & ~masks.excluded)[:, by_votes]
    return by_votes, allowed & (np.cumsum(allowed, axis=1) <= limit[:, None])


# Reason codes as numbers while they are arrays; a reason's argument is a second number (the
# index of the followed name, the topic's column, the liked paper's id), 0 when it has none.
_PINNED, _AUTHOR, _TOPIC, _TEXT, _LIKED, _TRENDING = range(6)
_CODES = 6


def _reason_codes(the_day: Day, scores: _Scores, masks: _Masks, r: np.ndarray, c: np.ndarray):
    """(code, argument) for each chosen (reader, column): pinned, then followed author, then
    the signal that contributed most to the paper's score."""
    topic, text, liked = scores.relevance_parts[:, r, c]
    trending = scores.trending_part[r, c]
    liked_id = scores.liked_which[r, c]
    best = np.maximum(np.maximum(topic, text), np.maximum(liked, trending))
    by_liked = (best == liked) & (liked_id >= 0)
    code = np.select(
        [
            the_day.pinned[c],
            masks.follows[r, c],
            (best <= 0.0) | (best == trending),
            by_liked,
            best == text,
        ],
        [_PINNED, _AUTHOR, _TRENDING, _LIKED, _TEXT],
        _TOPIC,
    )
    argument = np.select(
        [code == _AUTHOR, code == _TOPIC, code == _LIKED],
        [masks.followed_name[r, c], scores.best_topic[r, c], liked_id],
        0,
    )
    return code, argument


def _reason(
    code: int, argument: int, the_day: Day, masks: _Masks, feedback: FeedbackPapers
) -> tuple:
    if code == _PINNED:
        return (PINNED,)
    if code == _AUTHOR:
        who = masks.names[argument]
        return (AUTHOR, the_day.display.get(who, who))
    if code == _TOPIC:
        return (TOPIC_REASON, the_day.topic_ids[argument])
    if code == _TEXT:
        return (TEXT_REASON,)
    if code == _LIKED:
        return (LIKED_REASON, argument, feedback.titles.get(argument, ""))
    return (TRENDING,)


def _selections(
    columns: np.ndarray,
    reader_rows: np.ndarray,
    code: np.ndarray,
    argument: np.ndarray,
    context: tuple[Day, _Masks, FeedbackPapers],
) -> list[Selection]:
    """The chosen (reader, column) pairs, reader by reader and best first, as selections. A
    chunk has few distinct reasons: each is spelled once and copied into every entry that has
    it (copied, so that no two entries share a list)."""
    the_day, masks, feedback = context
    distinct, which = np.unique(argument * _CODES + code, return_inverse=True)
    spelled = [
        _reason(int(k % _CODES), int(k // _CODES), the_day, masks, feedback) for k in distinct
    ]
    paper_ids = the_day.paper_ids[columns].tolist()
    ends = np.cumsum(np.bincount(reader_rows, minlength=len(masks.muted))).tolist()
    with _no_cycle_collection():
        reasons = which.tolist()
        entries = [[pid, list(spelled[k])] for pid, k in zip(paper_ids, reasons, strict=True)]
        return [entries[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while a chunk's selections are built. Each chunk makes
    tens of thousands of small lists, which would run the collector many times over every
    object of the process (it cost 20 times the building itself); these lists hold only
    numbers and strings, so they make no cycles for it to find."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def rank_readers(
    the_day: Day,
    readers: Sequence[Reader],
    feedback: FeedbackPapers,
    *,
    fallback_to_top: bool = False,
) -> list[Selection]:
    """The selection for each reader of a chunk, in the readers' order. Keep chunks to a few
    thousand readers: the work arrays are (readers x papers x followed topics) and (readers x
    feedback papers kept x papers)."""
    return _rank_chunk(the_day, readers, feedback, fallback_to_top, _Matcher(the_day))


def _rank_chunk(
    the_day: Day,
    readers: Sequence[Reader],
    feedback: FeedbackPapers,
    fallback_to_top: bool,
    matcher: _Matcher,
) -> list[Selection]:
    if not readers:
        return []
    if the_day.size == 0:
        return [[] for _ in readers]
    masks = _masks(readers, the_day, matcher)
    scores = _scores(the_day, readers, feedback, masks)
    ordering = _ordering(the_day, scores, masks)
    # A negative limit takes nothing, like 0.
    limit = np.array([max(r.limit, 0) for r in readers], dtype=np.int64)
    taken = _picked(ordering, scores.eligible, the_day.groups, limit)
    fallback = np.zeros(len(readers), dtype=bool)
    if fallback_to_top:
        fallback = ~taken.any(axis=1)
        by_votes, top = _top_by_votes(the_day, masks, limit)
        ordering = np.where(fallback[:, None], by_votes[None, :], ordering)
        taken = np.where(fallback[:, None], top, taken)
    r, place = np.nonzero(taken)
    c = ordering[r, place]
    code, argument = _reason_codes(the_day, scores, masks, r, c)
    code[fallback[r]] = _TRENDING  # the fallback says only that these are the day's top
    argument[fallback[r]] = 0
    return _selections(c, r, code, argument, (the_day, masks, feedback))


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
    matcher = _Matcher(the_day)  # a keyword or name is matched once for the whole run
    batch: list[Reader] = []
    for reader in readers:
        batch.append(reader)
        if len(batch) >= chunk_size:
            yield from _rank_batch(the_day, batch, feedback, fallback_to_top, matcher)
            batch = []
    if batch:
        yield from _rank_batch(the_day, batch, feedback, fallback_to_top, matcher)


def _rank_batch(
    the_day: Day,
    batch: list[Reader],
    feedback: FeedbackPapers,
    fallback_to_top: bool,
    matcher: _Matcher,
) -> Iterator[tuple[int, Selection]]:
    selections = _rank_chunk(the_day, batch, feedback, fallback_to_top, matcher)
    for reader, selection in zip(batch, selections, strict=True):
        yield reader.subscriber_id, selection
