"""Profile and feedback services, the ranking's selector, and the profiles migration."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import time_machine
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subscriptions import profiles
from subscriptions.models import Feedback, Profile, Subscriber
from subscriptions.selectors import RankingProfile, profiles_for_ranking
from tests.factories import PaperFactory, SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db

MORE, LESS = Feedback.Value.MORE, Feedback.Value.LESS


@pytest.fixture
def subscriber(topics):
    return SubscriberFactory(topics=[topics[0]])


def _update(subscriber, **changes):
    values = {"interests": "", "follows": [], "muted": [], "focus": 25, **changes}
    return profiles.profile_update(subscriber=subscriber, **values)


# --- normalizers ------------------------------------------------------------------------------


def test_it_normalizes_names_and_keywords_as_the_ranking_compares_them():
    assert profiles.normalize_name("  Yann  LeCun ") == "yann lecun"
    assert profiles.normalize_name("Y. LeCun") == profiles.normalize_name("y lecun")
    assert profiles.normalize_name("Google DeepMind") == "google deepmind"
    assert profiles.normalize_keyword("  Diffusion\tModels ") == "diffusion models"
    assert profiles.normalize_keyword("A.I.") == "a.i."  # dots matter in a keyword


# --- profile_update ---------------------------------------------------------------------------


def test_it_saves_the_settings_and_embeds_what_i_work_on(subscriber, embedding):
    profile = _update(
        subscriber,
        interests="  speech recognition   for low-resource languages ",
        follows=["Yann LeCun", " yann  lecun", "", "Google DeepMind"],
        muted=["crypto", "Crypto ", "blockchain"],
        focus=70,
    )

    profile.refresh_from_db()
    assert profile.interests == "speech recognition for low-resource languages"
    assert profile.follows == ["Yann LeCun", "Google DeepMind"]  # as typed, repeats dropped
    assert profile.muted == ["crypto", "blockchain"]
    assert profile.focus == 70
    assert embedding.calls == [["speech recognition for low-resource languages"]]
    assert profile.vector_model == embedding.MODEL_NAME
    expected = embedding.embed_texts([profile.interests])[0]
    np.testing.assert_allclose(
        embedding.vectors_from_bytes([bytes(profile.interest_vector)])[0], expected
    )


def test_it_embeds_again_only_when_the_text_changes(subscriber, embedding):
    _update(subscriber, interests="graph neural networks")
    _update(subscriber, interests="graph neural networks", focus=90)
    assert len(embedding.calls) == 1
    _update(subscriber, interests="protein folding", focus=90)
    assert embedding.calls[-1] == ["protein folding"]
    assert len(embedding.calls) == 2

    profile = _update(subscriber, interests="")
    profile.refresh_from_db()
    assert profile.interest_vector is None
    assert profile.vector_model == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"interests": "x" * 501}, "at most 500 characters"),
        ({"follows": [f"Author {i}" for i in range(21)]}, "At most 20 names"),
        ({"follows": ["A" * 101]}, "at most 100 characters"),
        ({"muted": [f"word{i}" for i in range(31)]}, "At most 30 keywords"),
        ({"focus": 101}, "0 to 100"),
        ({"focus": -1}, "0 to 100"),
    ],
)
def test_it_refuses_bad_values_and_changes_nothing(subscriber, embedding, changes, message):
    _update(subscriber, interests="robot grasping", muted=["crypto"], focus=40)
    with pytest.raises(ValidationError, match=message):
        _update(subscriber, **changes)
    profile = Profile.objects.get(subscriber=subscriber)
    assert (profile.interests, profile.muted, profile.focus) == ("robot grasping", ["crypto"], 40)


def test_it_makes_a_profile_for_a_subscriber_without_one(topics, embedding):
    subscriber = SubscriberFactory(profile=False)
    _update(subscriber, follows=["Fei-Fei Li"])
    assert Profile.objects.get(subscriber=subscriber).follows == ["Fei-Fei Li"]


def test_its_preferences_update_needs_a_topic_or_what_i_work_on(subscriber, topics, embedding):
    with pytest.raises(ValidationError, match="at least one topic or tell us"):
        profiles.subscriber_preferences_update(
            subscriber=subscriber, topics=[], interests="  ", follows=[], muted=[], focus=25
        )
    assert list(subscriber.topics.all()) == [topics[0]]

    profiles.subscriber_preferences_update(
        subscriber=subscriber, topics=[], interests="audio codecs", follows=[], muted=[], focus=0
    )
    assert not subscriber.topics.exists()
    assert Profile.objects.get(subscriber=subscriber).interests == "audio codecs"


# --- feedback ---------------------------------------------------------------------------------


def _copy(subscriber) -> tuple[list[int], list[int]]:
    profile = Profile.objects.get(subscriber=subscriber)
    return profile.liked_ids, profile.disliked_ids


def test_it_records_feedback_once_and_replaces_a_changed_mind(subscriber):
    paper = PaperFactory()
    with time_machine.travel("2026-06-01 08:00Z"):
        first = profiles.feedback_record(subscriber=subscriber, paper=paper, value=MORE)
    with time_machine.travel("2026-06-01 09:00Z"):
        again = profiles.feedback_record(subscriber=subscriber, paper=paper, value=MORE)
    assert again.pk == first.pk and again.updated_at == first.updated_at  # a reload: no change
    assert _copy(subscriber) == ([paper.pk], [])

    with time_machine.travel("2026-06-01 10:00Z"):
        changed = profiles.feedback_record(subscriber=subscriber, paper=paper, value=LESS)
    assert Feedback.objects.get().value == LESS
    assert changed.created_at == first.created_at and changed.updated_at > first.updated_at
    assert _copy(subscriber) == ([], [paper.pk])


def test_it_refuses_a_value_other_than_plus_or_minus_one(subscriber):
    with pytest.raises(ValueError, match="must be"):
        profiles.feedback_record(subscriber=subscriber, paper=PaperFactory(), value=2)
    assert not Feedback.objects.exists()


def test_its_copy_is_most_recent_first_and_capped(subscriber):
    papers = PaperFactory.create_batch(Profile.FEEDBACK_KEPT + 3)
    for minute, paper in enumerate(papers):
        with time_machine.travel(f"2026-06-01 08:{minute:02d}Z"):
            profiles.feedback_record(subscriber=subscriber, paper=paper, value=MORE)
    with time_machine.travel("2026-06-01 09:00Z"):
        profiles.feedback_record(subscriber=subscriber, paper=papers[0], value=MORE)  # no change
        profiles.feedback_record(subscriber=subscriber, paper=papers[1], value=LESS)

    liked, disliked = _copy(subscriber)
    newest_first = [p.pk for p in reversed(papers) if p != papers[1]]
    assert liked == newest_first[: Profile.FEEDBACK_KEPT]
    assert papers[0].pk not in liked  # the oldest like fell off the end
    assert disliked == [papers[1].pk]
    assert Feedback.objects.filter(subscriber=subscriber).count() == len(papers)


def test_it_undoes_one_paper_and_leaves_the_rest(subscriber):
    kept, undone = PaperFactory(), PaperFactory()
    profiles.feedback_record(subscriber=subscriber, paper=kept, value=LESS)
    profiles.feedback_record(subscriber=subscriber, paper=undone, value=LESS)

    assert profiles.feedback_undo(subscriber=subscriber, paper=undone) is True
    assert profiles.feedback_undo(subscriber=subscriber, paper=undone) is False
    assert _copy(subscriber) == ([], [kept.pk])
    assert list(Feedback.objects.values_list("paper_id", flat=True)) == [kept.pk]


def test_its_reset_forgets_feedback_but_keeps_explicit_settings(subscriber, topics, embedding):
    _update(subscriber, interests="robot grasping", follows=["Pieter Abbeel"], muted=["nft"])
    other = SubscriberFactory()
    paper = PaperFactory()
    profiles.feedback_record(subscriber=subscriber, paper=paper, value=MORE)
    profiles.feedback_record(subscriber=subscriber, paper=PaperFactory(), value=LESS)
    profiles.feedback_record(subscriber=other, paper=paper, value=MORE)

    assert profiles.personalization_reset(subscriber=subscriber) == 2

    profile = Profile.objects.get(subscriber=subscriber)
    assert (profile.liked_ids, profile.disliked_ids) == ([], [])
    assert (profile.interests, profile.follows, profile.muted) == (
        "robot grasping",
        ["Pieter Abbeel"],
        ["nft"],
    )
    assert profile.interest_vector is not None
    assert list(subscriber.topics.all()) == [topics[0]]
    assert _copy(other) == ([paper.pk], [])  # someone else's feedback is theirs


# --- profiles_for_ranking ---------------------------------------------------------------------


def test_it_streams_every_sendable_profile_in_id_order_in_two_queries(topics, embedding):
    inactive = TopicFactory(name="Retired topic", slug="retired", is_active=False)
    a = SubscriberFactory(topics=[topics[0], topics[1], inactive])
    b = SubscriberFactory(topics=[inactive])
    SubscriberFactory(status=Subscriber.Status.PAUSED)
    SubscriberFactory(pending=True)
    c = SubscriberFactory(topics=[topics[2]], profile=False)
    _update(a, interests="vision transformers", follows=["Kaiming He"], muted=[" NFT "], focus=80)
    liked, disliked = PaperFactory(), PaperFactory()
    profiles.feedback_record(subscriber=b, paper=liked, value=MORE)
    profiles.feedback_record(subscriber=b, paper=disliked, value=LESS)

    with CaptureQueriesContext(connection) as queries:
        rows = list(profiles_for_ranking(vector_model=embedding.MODEL_NAME))

    assert len(queries) == 2
    assert [r.subscriber_id for r in rows] == [a.pk, b.pk, c.pk]
    ra, rb, rc = rows
    assert ra.topics == {topics[0].pk, topics[1].pk}
    assert ra.follows == ("kaiming he",) and ra.muted == ("nft",) and ra.focus == 80
    np.testing.assert_allclose(
        embedding.vectors_from_bytes([ra.interest_vector])[0],
        embedding.embed_texts(["vision transformers"])[0],
    )
    assert rb.topics == frozenset() and rb.interest_vector is None
    assert (rb.liked_ids, rb.disliked_ids) == ((liked.pk,), (disliked.pk,))
    # No profile row at all reads as the defaults.
    assert rc == RankingProfile(
        subscriber_id=c.pk,
        topics=frozenset({topics[2].pk}),
        interest_vector=None,
        liked_ids=(),
        disliked_ids=(),
        muted=(),
        follows=(),
        focus=Profile.FOCUS_DEFAULT,
    )


def test_it_leaves_out_a_vector_from_another_model(subscriber, embedding):
    _update(subscriber, interests="sparse attention")
    [row] = profiles_for_ranking(vector_model="some-newer-model")
    assert row.interest_vector is None
    [row] = profiles_for_ranking(vector_model=embedding.MODEL_NAME)
    assert row.interest_vector is not None


def test_it_shares_equal_topic_sets_between_subscribers(topics):
    first, second = (SubscriberFactory(topics=topics[:2]) for _ in range(2))
    rows = {r.subscriber_id: r for r in profiles_for_ranking(vector_model="any")}
    assert rows[first.pk].topics is rows[second.pk].topics


# --- the migration ----------------------------------------------------------------------------


def test_its_migration_gives_every_existing_subscriber_a_profile(topics):
    before = [SubscriberFactory(topics=[topics[0]], profile=False) for _ in range(3)]
    already = SubscriberFactory()
    already.profile.focus = 60
    already.profile.save()
    migration = importlib.import_module(
        "subscriptions.migrations.0004_profiles_for_existing_subscribers"
    )

    migration.create_profiles(apps, None)

    for subscriber in before:
        profile = Profile.objects.get(subscriber=subscriber)
        assert (profile.focus, profile.interests, profile.liked_ids) == (25, "", [])
        assert list(subscriber.topics.all()) == [topics[0]]  # topics stay where they were
    assert Profile.objects.get(subscriber=already).focus == 60
    assert Profile.objects.count() == 4
