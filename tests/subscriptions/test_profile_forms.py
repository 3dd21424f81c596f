"""The signup form and the preference center with "what I work on", follows, mutes and focus."""

from __future__ import annotations

import re

import pytest

from subscriptions.links import preferences_url
from subscriptions.models import Profile, Subscriber
from tests.factories import SubscriberFactory
from tests.subscriptions.helpers import path_of

pytestmark = pytest.mark.django_db


def _textarea(page: str, name: str) -> str:
    found = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, f"no textarea {name}"
    return found.group(1)


def test_its_signup_form_offers_the_optional_fields_with_labels(client, topics):
    page = client.get("/").content.decode()
    for label in ("What I work on", "Authors or organizations to follow", "Keywords to mute"):
        assert label in page
    assert "choose at least one, or tell us below what you work on" in page


def test_it_signs_up_with_only_what_i_work_on(signup, embedding):
    response = signup(
        "reader@example.org",
        chosen=[],
        interests="Speech recognition for\r\nlow-resource languages",
        follows="Meta AI\r\n\r\n  Yann   LeCun ",
        muted="crypto\nNFT",
    )
    assert response.status_code == 200
    assert b"Check your inbox" in response.content
    subscriber = Subscriber.objects.get()
    assert not subscriber.topics.exists()
    profile = subscriber.profile
    assert profile.interests == "Speech recognition for\nlow-resource languages"
    assert profile.follows == ["Meta AI", "Yann LeCun"]
    assert profile.muted == ["crypto", "NFT"]
    assert profile.interest_vector is not None
    assert embedding.calls == [[profile.interests]]


def test_a_signup_with_topics_only_gets_an_empty_profile(signup, topics):
    signup("reader@example.org", chosen=topics[:1])
    profile = Subscriber.objects.get().profile
    assert (profile.interests, profile.follows, profile.focus) == ("", [], 25)
    assert profile.interest_vector is None


def test_it_needs_a_topic_or_what_i_work_on(signup):
    response = signup("reader@example.org", chosen=[], interests="   ", follows="Someone")
    assert response.status_code == 400
    assert b"Choose at least one topic or tell us what you work on." in response.content
    assert not Subscriber.objects.exists()
    assert _textarea(response.content.decode(), "follows") == "Someone"


def test_a_failed_signup_keeps_everything_typed(signup, topics):
    too_many = "\n".join(f"Author {i}" for i in range(21))
    response = signup(
        "reader@example.org",
        chosen=topics[1:3],
        interests="x" * 501,
        follows=too_many,
        muted="diffusion",
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "at most 500 characters (this is 501)" in page
    assert "At most 20 names, please." in page
    assert _textarea(page, "interests") == "x" * 501
    assert _textarea(page, "follows") == too_many
    assert _textarea(page, "muted") == "diffusion"
    assert 'value="reader@example.org"' in page
    checked = re.findall(r'<input type="checkbox" name="topics" value="(\d+)"[^>]*checked', page)
    assert sorted(map(int, checked)) == sorted(t.pk for t in topics[1:3])
    assert not Subscriber.objects.exists()


def test_a_signup_for_a_confirmed_address_changes_nothing(signup, topics, embedding):
    subscriber = SubscriberFactory(email="reader@example.org", profile__muted=["kept"])
    signup("reader@example.org", chosen=topics[:1], interests="someone else's words")
    profile = Profile.objects.get(subscriber=subscriber)
    assert (profile.interests, profile.muted) == ("", ["kept"])
    assert embedding.calls == []


# --- the preference center --------------------------------------------------------------------


@pytest.fixture
def subscriber(topics):
    return SubscriberFactory(email="reader@example.org", topics=[topics[0]])


@pytest.fixture
def prefs(subscriber):
    return path_of(preferences_url(subscriber))


def test_its_preference_center_shows_the_profile_and_the_focus_range(
    client, subscriber, prefs, embedding
):
    Profile.objects.filter(subscriber=subscriber).update(
        interests="robot hands", follows=["Pieter Abbeel", "OpenAI"], muted=["nft"], focus=60
    )
    page = client.get(prefs).content.decode()
    assert _textarea(page, "interests") == "robot hands"
    assert _textarea(page, "follows") == "Pieter Abbeel\nOpenAI"
    assert _textarea(page, "muted") == "nft"
    slider = re.search(r'<input type="range" name="focus"[^>]*>', page).group(0)
    assert 'min="0"' in slider and 'max="100"' in slider and 'value="60"' in slider
    assert page.index("Just my field") < page.index('type="range"') < page.index("What's hot")
    assert '<label for="id_focus">' in page


def test_it_saves_every_preference_in_one_post(client, subscriber, prefs, topics, embedding):
    response = client.post(
        prefs + "topics",
        {
            "topics": [topics[2].pk],
            "interests": "legged locomotion",
            "follows": "Marc Raibert\nBoston Dynamics",
            "muted": "crypto",
            "focus": "85",
        },
    )
    assert response.status_code == 302
    assert b"Your preferences are saved." in client.get(prefs).content
    assert list(subscriber.topics.all()) == [topics[2]]
    profile = Profile.objects.get(subscriber=subscriber)
    assert profile.interests == "legged locomotion"
    assert profile.follows == ["Marc Raibert", "Boston Dynamics"]
    assert (profile.muted, profile.focus) == (["crypto"], 85)
    assert profile.interest_vector is not None


def test_it_keeps_the_focus_when_the_post_has_none(client, subscriber, prefs, topics):
    Profile.objects.filter(subscriber=subscriber).update(focus=70)
    client.post(prefs + "topics", {"topics": [topics[1].pk]})
    assert Profile.objects.get(subscriber=subscriber).focus == 70
    assert list(subscriber.topics.all()) == [topics[1]]


def test_a_refused_preferences_post_changes_nothing_and_keeps_what_was_typed(
    client, subscriber, prefs, topics
):
    response = client.post(
        prefs + "topics",
        {"topics": [topics[1].pk], "muted": "\n".join(f"w{i}" for i in range(31)), "focus": "140"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "At most 30 keywords, please." in page
    assert "Ensure this value is less than or equal to 100." in page
    assert _textarea(page, "muted").count("\n") == 30
    assert 'value="140"' in page
    assert list(subscriber.topics.all()) == [topics[0]]
    assert Profile.objects.get(subscriber=subscriber).muted == []
