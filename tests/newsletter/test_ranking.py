"""Personal ranking over synthetic meaning vectors: each field of research is one direction."""

from __future__ import annotations

import numpy as np
import pytest

from newsletter import ranking
from newsletter.ranking import FeedbackPapers, Reader, rank_readers

DIMS = 16
ROBOTICS, SPEECH, VISION, LLM = 0, 1, 2, 3  # directions, and topic ids
TOPICS = (ROBOTICS, SPEECH, VISION, LLM)


def direction(field: int, wobble: int = 0) -> np.ndarray:
    """A unit vector mostly along `field`; `wobble` makes papers of one field differ a little."""
    rng = np.random.default_rng(1000 * field + wobble)
    v = np.zeros(DIMS, dtype=np.float32)
    v[field] = 1.0
    v += rng.normal(0, 0.25, DIMS).astype(np.float32) * (wobble > 0)
    return v / np.linalg.norm(v)


def make_day(papers, *, pinned=()):
    """papers: [(paper_id, field, upvotes, authors)], tagged with their field's topic."""
    vectors = np.stack([direction(f, pid) for pid, f, _, _ in papers])
    affinity = np.zeros((len(papers), len(TOPICS)), dtype=np.float32)
    for i, (_, f, _, _) in enumerate(papers):
        affinity[i, f] = 1.0
    return ranking.day(
        paper_ids=[p[0] for p in papers],
        vectors=vectors,
        affinity=affinity,
        topic_ids=TOPICS,
        upvotes=[p[2] for p in papers],
        pinned=[p[0] in pinned for p in papers],
        order=list(range(1, len(papers) + 1)),
        texts=[f"paper {p[0]} about field {p[1]}" for p in papers],
        people=[p[3] for p in papers],
    )


def feedback_for(the_day, papers_by_id):
    """Feedback papers of DAY_ONE/DAY_TWO, tagged with their field's topic."""
    fields = {pid: f for pid, f, _, _ in DAY_ONE + DAY_TWO}
    return FeedbackPapers.build(
        the_day, papers_by_id, {}, {pid: [fields[pid]] for pid in papers_by_id}
    )


DAY_ONE = [
    (1, ROBOTICS, 10, ["Ada Park"]),
    (2, ROBOTICS, 20, ["Bo Lin"]),
    (3, SPEECH, 5, ["Cy Ode"]),
    (4, LLM, 300, ["Di Ray"]),
    (5, VISION, 50, ["Ed Vu"]),
]
DAY_TWO = [
    (11, ROBOTICS, 40, ["Fa Ng"]),
    (12, ROBOTICS, 35, ["Gu Ho"]),
    (13, LLM, 30, ["Ha Jo"]),
    (14, LLM, 25, ["Io Ka"]),
    (15, SPEECH, 500, ["Ju Le"]),
]


def ids(selection):
    return [pid for pid, _ in selection]


def test_it_picks_papers_of_followed_topics_only_and_says_so():
    the_day = make_day(DAY_TWO)
    reader = Reader(1, topics=frozenset({ROBOTICS, LLM}), focus=0.0)
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert set(ids(selection)) == {11, 12, 13, 14}
    assert all(reason == [ranking.TOPIC_REASON, reason[1]] for _, reason in selection)
    assert dict(selection)[11] == [ranking.TOPIC_REASON, ROBOTICS]


def test_it_stops_robotics_after_two_dislikes_even_for_a_robotics_follower():
    day_two = make_day(DAY_TWO)
    day_one_vectors = {pid: direction(f, pid) for pid, f, _, _ in DAY_ONE}
    reader = Reader(
        1, topics=frozenset({ROBOTICS, LLM}), disliked=(1, 2), focus=ranking.DEFAULT_FOCUS
    )
    [selection] = rank_readers(day_two, [reader], feedback_for(day_two, day_one_vectors))
    assert ids(selection) and set(ids(selection)) <= {13, 14}


def test_it_surfaces_what_is_like_a_liked_paper_and_names_it():
    day_two = make_day(DAY_TWO)
    day_one_vectors = {pid: direction(f, pid) for pid, f, _, _ in DAY_ONE}
    reader = Reader(1, topics=frozenset({LLM}), liked=(3,), focus=0.0)
    [selection] = rank_readers(day_two, [reader], feedback_for(day_two, day_one_vectors))
    assert dict(selection)[15] == [ranking.LIKED_REASON, 3, ""]


def test_a_like_lets_in_only_what_is_very_close_to_the_liked_paper():
    """A 👍 reorders what topics and free text let in; it brings a paper of another field into
    the email only when the paper is very close to the liked one, not a loose neighbour."""
    liked = np.zeros(DIMS, dtype=np.float32)
    liked[SPEECH] = 1.0

    def at(cosine: float, other_axis: int) -> np.ndarray:
        v = np.zeros(DIMS, dtype=np.float32)
        v[SPEECH], v[other_axis] = cosine, np.sqrt(1.0 - cosine**2)
        return v

    papers = [(11, ROBOTICS), (13, LLM), (14, LLM), (21, None), (22, None)]
    vectors = np.stack([direction(ROBOTICS, 11), direction(LLM, 13), direction(LLM, 14)])
    vectors = np.vstack([vectors, at(0.9, 8), at(0.35, 9)])  # 21: very close, 22: a neighbour
    affinity = np.zeros((len(papers), len(TOPICS)), dtype=np.float32)
    for row, (_, field) in enumerate(papers):
        if field is not None:
            affinity[row, field] = 1.0
    the_day = ranking.day(
        paper_ids=[pid for pid, _ in papers],
        vectors=vectors,
        affinity=affinity,
        topic_ids=TOPICS,
        upvotes=[10] * len(papers),
        pinned=[False] * len(papers),
        order=list(range(1, len(papers) + 1)),
        texts=[""] * len(papers),
        people=[[]] * len(papers),
    )
    reader = Reader(1, topics=frozenset({LLM}), liked=(3,), focus=0.0)
    [selection] = rank_readers(the_day, [reader], FeedbackPapers.build(the_day, {3: liked}))
    assert dict(selection)[21] == [ranking.LIKED_REASON, 3, ""]
    assert set(ids(selection)) == {13, 14, 21}  # not 22, which the like alone would carry


def test_it_reads_what_the_reader_works_on():
    the_day = make_day(DAY_TWO)
    reader = Reader(1, interest=direction(SPEECH), focus=0.0)
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert selection[0] == [15, [ranking.TEXT_REASON]]


def test_it_never_shows_muted_keywords_even_pinned():
    the_day = make_day(DAY_TWO, pinned={13})
    reader = Reader(1, topics=frozenset({LLM}), muted=("paper 13",), focus=0.0)
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert ids(selection) == [14]


def test_it_always_surfaces_followed_authors_first_after_pins():
    the_day = make_day(DAY_TWO, pinned={14})
    reader = Reader(
        1, topics=frozenset({ROBOTICS}), follows=(ranking.normalize_name("ju  LE"),), focus=0.0
    )
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert selection[:2] == [[14, [ranking.PINNED]], [15, [ranking.AUTHOR, "Ju Le"]]]
    assert set(ids(selection[2:])) == {11, 12}


def test_it_keeps_the_editors_order_among_pinned_papers():
    the_day = make_day(DAY_TWO, pinned={15, 12})
    [selection] = rank_readers(the_day, [Reader(1)], feedback_for(the_day, {}))
    assert ids(selection) == [12, 15]  # upstream order 2 then 5, whatever the votes


def test_it_never_repeats_a_paper_already_sent():
    the_day = make_day(DAY_TWO)
    reader = Reader(1, topics=frozenset({ROBOTICS}), exclude=frozenset({11}), focus=0.0)
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert ids(selection) == [12]


def test_it_puts_at_most_three_near_duplicates_in_one_email():
    # Five papers with one meaning (same vector): one group.
    papers = [(i, VISION, 100 - i, []) for i in range(1, 6)]
    the_day = ranking.day(
        paper_ids=[1, 2, 3, 4, 5],
        vectors=np.stack([direction(VISION)] * 5),
        affinity=np.tile(np.eye(4, dtype=np.float32)[VISION], (5, 1)),
        topic_ids=TOPICS,
        upvotes=[p[2] for p in papers],
        pinned=[False] * 5,
        order=[1, 2, 3, 4, 5],
        texts=[""] * 5,
        people=[[]] * 5,
    )
    reader = Reader(1, topics=frozenset({VISION}), focus=0.0)
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert len(selection) == ranking.PER_GROUP == 3


@pytest.mark.parametrize(
    ("focus", "first"),
    [(0.0, 11), (1.0, 15)],  # just my field: robotics first; what's hot: the 500-vote paper
)
def test_it_lets_the_reader_steer_between_their_field_and_what_is_hot(focus, first):
    the_day = make_day(DAY_TWO)
    reader = Reader(1, topics=frozenset({ROBOTICS}), focus=focus)
    [selection] = rank_readers(the_day, [reader], feedback_for(the_day, {}))
    assert ids(selection)[0] == first
    if focus == 1.0:
        assert len(selection) == 5
        assert selection[0][1] == [ranking.TRENDING]


def test_it_falls_back_to_the_top_papers_only_when_asked():
    the_day = make_day(DAY_TWO)
    nobody = Reader(1, focus=0.0, limit=2)
    feedback = feedback_for(the_day, {})
    assert rank_readers(the_day, [nobody], feedback) == [[]]
    [top] = rank_readers(the_day, [nobody], feedback, fallback_to_top=True)
    assert top == [[15, [ranking.TRENDING]], [11, [ranking.TRENDING]]]


def test_it_ranks_a_chunk_like_each_reader_alone():
    the_day = make_day(DAY_TWO)
    feedback = feedback_for(the_day, {pid: direction(f, pid) for pid, f, _, _ in DAY_ONE})
    readers = [
        Reader(1, topics=frozenset({ROBOTICS})),
        Reader(2, interest=direction(LLM), disliked=(4,)),
        Reader(3, liked=(3, 5), limit=1),
        Reader(4, topics=frozenset({SPEECH, VISION}), muted=("field 1",), focus=0.9),
    ]
    together = rank_readers(the_day, readers, feedback)
    alone = [rank_readers(the_day, [r], feedback)[0] for r in readers]
    assert together == alone
    assert list(ranking.rank_all(the_day, readers, feedback, chunk_size=3)) == [
        (r.subscriber_id, s) for r, s in zip(readers, alone, strict=True)
    ]
