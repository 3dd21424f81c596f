"""The vectorized ranking picks the same papers, in the same order, for the same reasons as
the per-reader loop it replaced (bench/ranking_loop.py), over many random days and readers.

The random days are built to hit the cases where the two could part: ties everywhere (papers
with one vector, topics with equal affinity, equal upvotes), near-duplicate groups larger
than PER_GROUP, pins, followed names that match several papers and papers that several
followed names match, muted keywords, papers already sent, feedback on papers the day does
not know, limits of 0 and focus at both ends, and the fallback to the day's top papers.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import ranking_loop
from newsletter import ranking
from newsletter.ranking import FeedbackPapers, Reader

DIMS = 8
NAMES = ("ada park", "bo lin", "cy ode", "di ray", "ed vu", "fa ng")
WORDS = ("graph", "speech", "robot", "vision", "llm", "agent")


def random_day(rng: np.random.Generator, papers: int, topics: int) -> ranking.Day:
    # Few distinct directions, so that papers tie and near-duplicate groups grow past 3.
    directions = rng.normal(size=(max(1, papers // 3), DIMS)).astype(np.float32)
    vectors = directions[rng.integers(0, len(directions), papers)]
    vectors += rng.normal(0, 0.05, size=vectors.shape).astype(np.float32) * rng.integers(0, 2)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ranking.day(
        paper_ids=list(rng.permutation(np.arange(100, 100 + papers)).tolist()),
        vectors=vectors,
        affinity=rng.choice([0.0, 0.0, 0.3, 0.5, 1.0], size=(papers, topics)),
        topic_ids=[10 + 7 * t for t in range(topics)],
        upvotes=rng.choice([0, 5, 5, 40, 300], size=papers).tolist(),
        pinned=(rng.random(papers) < 0.1).tolist(),
        order=rng.permutation(np.arange(1, papers + 1)).tolist(),
        texts=[" ".join(rng.choice(WORDS, 3)) for _ in range(papers)],
        people=[list(rng.choice(NAMES, rng.integers(0, 3), replace=False)) for _ in range(papers)],
    )


def random_feedback(rng: np.random.Generator, the_day: ranking.Day) -> FeedbackPapers:
    # Earlier papers 0..29, some with the very vector of a paper of the day (exact ties).
    earlier = rng.normal(size=(30, DIMS)).astype(np.float32)
    earlier[:5] = the_day.vectors[rng.integers(0, the_day.size, 5)]
    earlier /= np.linalg.norm(earlier, axis=1, keepdims=True)
    kept = [pid for pid in range(30) if rng.random() < 0.8]  # the rest are unknown (deleted)
    return FeedbackPapers.build(
        the_day,
        {pid: earlier[pid] for pid in kept},
        {pid: f"Paper {pid}" for pid in kept if pid % 2},
        {pid: list(rng.choice(the_day.topic_ids, rng.integers(0, 3))) for pid in kept},
    )


def random_reader(rng: np.random.Generator, sid: int, the_day: ranking.Day) -> Reader:
    def some(values, most):
        return tuple(rng.choice(values, rng.integers(0, most + 1)).tolist())

    interest = None
    if rng.random() < 0.5:
        interest = rng.normal(size=DIMS).astype(np.float32)
        interest /= np.linalg.norm(interest)
    return Reader(
        subscriber_id=sid,
        topics=frozenset(some([*the_day.topic_ids, 999], 4)),  # 999: a topic the day lacks
        interest=interest,
        liked=some(range(34), 6),  # 30..33 were never feedback papers
        disliked=some(range(34), 4),
        muted=some(WORDS, 2) if rng.random() < 0.2 else (),
        follows=some([*NAMES, "nobody"], 3) if rng.random() < 0.3 else (),
        focus=float(rng.choice([0.0, 0.25, 1.0, rng.random(), -0.5, 1.5])),
        limit=int(rng.choice([0, 1, 3, 10, 12])),
        exclude=frozenset(rng.choice(the_day.paper_ids, rng.integers(0, 4)).tolist()),
    )


@pytest.mark.parametrize("seed", range(40))
def test_it_ranks_random_readers_exactly_like_the_loop_it_replaced(seed):
    rng = np.random.default_rng(seed)
    the_day = random_day(rng, papers=int(rng.integers(1, 40)), topics=int(rng.integers(1, 6)))
    feedback = random_feedback(rng, the_day)
    readers = [random_reader(rng, sid, the_day) for sid in range(150)]
    for fallback in (False, True):
        new = ranking.rank_readers(the_day, readers, feedback, fallback_to_top=fallback)
        old = ranking_loop.rank_readers(the_day, readers, feedback, fallback_to_top=fallback)
        assert new == old
    assert any(new), "the random readers must get papers, or the comparison shows little"


def test_the_comparison_sees_every_kind_of_reason():
    """The random cases above exercise every reason the ranking gives, so equality covers
    each of them (not only the common ones)."""
    codes = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        the_day = random_day(rng, papers=int(rng.integers(1, 40)), topics=int(rng.integers(1, 6)))
        feedback = random_feedback(rng, the_day)
        readers = [random_reader(rng, sid, the_day) for sid in range(150)]
        for selection in ranking.rank_readers(the_day, readers, feedback):
            codes.update(reason[0] for _, reason in selection)
    assert codes == {
        ranking.PINNED,
        ranking.AUTHOR,
        ranking.TOPIC_REASON,
        ranking.TEXT_REASON,
        ranking.LIKED_REASON,
        ranking.TRENDING,
    }


def test_no_two_entries_share_a_reason_list():
    rng = np.random.default_rng(3)
    the_day = random_day(rng, papers=20, topics=3)
    feedback = random_feedback(rng, the_day)
    readers = [random_reader(rng, sid, the_day) for sid in range(50)]
    reasons = [reason for s in ranking.rank_readers(the_day, readers, feedback) for _, reason in s]
    assert len(reasons) > 50
    assert len({id(reason) for reason in reasons}) == len(reasons)
