from __future__ import annotations

from bench.topics_only import Candidate, plan_selections, rank_for_topics
from newsletter.ranking import content_key

ROBOTICS, AGENTS, VISION = 1, 2, 3


def paper(pid, topics, upvotes, *, pinned=False, rank=None):
    return Candidate(pid, frozenset(topics), upvotes, pinned, rank or pid)


CANDIDATES = [
    paper(10, {VISION}, 300),
    paper(11, {ROBOTICS}, 50),
    paper(12, {ROBOTICS, AGENTS}, 20),
    paper(13, {AGENTS}, 90),
    paper(14, set(), 500),
    paper(15, {ROBOTICS}, 5, pinned=True),
]


def test_it_keeps_only_papers_matching_followed_topics_and_says_why():
    selection = rank_for_topics(CANDIDATES, frozenset({ROBOTICS}), limit=10)
    assert [pid for pid, _ in selection] == [15, 11, 12]
    assert all(why == [ROBOTICS] for _, why in selection)


def test_it_puts_pinned_first_then_mixes_topic_matches_with_upvotes():
    selection = rank_for_topics(CANDIDATES, frozenset({ROBOTICS, AGENTS}), limit=10)
    # 15 pinned; 12 matches two followed topics; then 13 (90 votes) before 11 (50 votes).
    assert [pid for pid, _ in selection] == [15, 12, 13, 11]
    assert dict((pid, why) for pid, why in selection)[12] == [ROBOTICS, AGENTS]


def test_it_cuts_to_the_limit():
    assert len(rank_for_topics(CANDIDATES, frozenset({ROBOTICS, AGENTS}), limit=2)) == 2


def test_it_never_repeats_a_paper_already_sent():
    selection = rank_for_topics(
        CANDIDATES, frozenset({ROBOTICS}), limit=10, exclude=frozenset({15, 11})
    )
    assert [pid for pid, _ in selection] == [12]


def test_it_skips_or_falls_back_to_the_top_papers_when_nothing_matches():
    followed = frozenset({99})
    assert rank_for_topics(CANDIDATES, followed, limit=3) == []
    fallback = rank_for_topics(CANDIDATES, followed, limit=3, fallback_to_top=True)
    assert [pid for pid, _ in fallback] == [15, 14, 10]  # pinned, then by upvotes
    assert all(why == [] for _, why in fallback)


def test_it_ranks_once_per_distinct_topic_set_and_shares_the_result():
    subscribers = [(1, frozenset({ROBOTICS})), (2, frozenset({ROBOTICS})), (3, frozenset({VISION}))]
    planned = dict(plan_selections(CANDIDATES, subscribers, {}, limit=5, fallback_to_top=False))
    assert planned[1] is planned[2]
    assert content_key(planned[1]) == content_key(planned[2]) != content_key(planned[3])


def test_it_keeps_the_editors_order_among_pinned_papers():
    candidates = [
        paper(20, {ROBOTICS}, 500, pinned=True, rank=3),
        paper(21, {ROBOTICS, AGENTS}, 1, pinned=True, rank=1),
        paper(22, {ROBOTICS}, 50),
    ]
    selection = rank_for_topics(candidates, frozenset({ROBOTICS, AGENTS}), limit=10)
    assert [pid for pid, _ in selection] == [21, 20, 22]
