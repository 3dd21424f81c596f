"""👍/👎 links: signed tokens, the pages behind them, and the preference center's list."""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin

import httpx
import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse

from subscriptions import links, profiles
from subscriptions.links import (
    SALT_PREFERENCES,
    FeedbackLinks,
    KeyLinks,
    TokenExpired,
    TokenInvalid,
    feedback_base_url,
    feedback_path,
    feedback_reader_token,
    feedback_reader_token_read,
    feedback_token,
    feedback_token_read,
    feedback_url,
    preferences_url,
    unsubscribe_url,
    view_token,
)
from subscriptions.models import Feedback, Profile
from tests.factories import PaperFactory, SubscriberFactory
from tests.subscriptions.helpers import path_of

pytestmark = pytest.mark.django_db

MORE, LESS = Feedback.Value.MORE, Feedback.Value.LESS


@pytest.fixture
def subscriber(topics):
    return SubscriberFactory(email="reader@example.org", topics=[topics[0]])


@pytest.fixture
def paper():
    return PaperFactory(title="Robots That Fold Laundry")


# --- tokens -----------------------------------------------------------------------------------


def test_its_link_is_the_readers_token_then_the_paper_and_the_vote(subscriber, paper):
    for value, word in ((1, "more"), (-1, "less")):
        # One instant for both links: the reader's token carries the second it was signed in.
        with time_machine.travel(time.time(), tick=False):
            url = feedback_url(subscriber, paper.pk, value)
            base = feedback_base_url(subscriber)
        match = re.fullmatch(rf"https?://[^/]+/f/([\w:-]+)/{paper.pk}/{word}", url)
        assert match, url
        assert feedback_reader_token_read(match.group(1)) == str(subscriber.key)
        assert url == base + feedback_path(paper.pk, value)
        # The route the view answers on, built the same way.
        assert path_of(url) == reverse(
            "subscriptions:feedback-vote", args=[match.group(1), paper.pk, word]
        )
    assert len(feedback_url(subscriber, paper.pk, -1)) < 130  # two a paper: kept short
    with pytest.raises(ValueError):
        feedback_path(paper.pk, 0)


def test_its_fast_tokens_are_timestamp_signers(subscriber, paper, settings):
    settings.SITE_URL = "https://paperboy.example"
    with time_machine.travel("2026-06-01 08:00Z", tick=False):
        fast = FeedbackLinks()
        assert fast.base(subscriber.key) == feedback_base_url(subscriber)
        assert fast.base(str(subscriber.key)) == fast.base(subscriber.key)
        token = fast.token(subscriber.key)
        assert token == feedback_reader_token(subscriber)
        assert feedback_reader_token_read(token) == str(subscriber.key)


def test_its_chunk_links_are_the_link_functions_own(subscriber, settings):
    settings.SITE_URL = "https://paperboy.example"
    chunk = KeyLinks()
    assert chunk.unsubscribe(subscriber) == unsubscribe_url(subscriber)
    assert chunk.preferences(subscriber) == preferences_url(subscriber)
    assert chunk.view_token(subscriber) == view_token(subscriber)
    assert chunk.unsubscribe(subscriber) != chunk.preferences(subscriber)
    settings.SECRET_KEY = "another-secret-" + "y" * 40  # a new secret: new links made after it
    assert KeyLinks().unsubscribe(subscriber) == unsubscribe_url(subscriber)
    assert KeyLinks().unsubscribe(subscriber) != chunk.unsubscribe(subscriber)


def test_it_refuses_tampered_foreign_and_old_tokens(subscriber, paper, settings):
    token = feedback_reader_token(subscriber)
    value, stamp, signature = token.split(":")
    other = SubscriberFactory()
    forged = f"{other.key.hex}:{stamp}:{signature}"  # someone else's key, our signature
    other_salt = signing.TimestampSigner(salt=SALT_PREFERENCES).sign(value)
    per_link = feedback_token(subscriber, paper.pk, 1)  # a per-link token is not a reader's
    unsigned_junk = signing.TimestampSigner(salt=links.SALT_FEEDBACK_READER).sign("not-a-key")
    for bad in (forged, token[:-3], other_salt, per_link, unsigned_junk, "", "x:y:z"):
        with pytest.raises(TokenInvalid):
            feedback_reader_token_read(bad)
    # A preference token is not a feedback token, nor the other way round.
    with pytest.raises(TokenInvalid):
        links.key_token_read(token, salt=SALT_PREFERENCES)
    with pytest.raises(TokenInvalid):
        feedback_reader_token_read(links._key_token(subscriber, SALT_PREFERENCES))

    with time_machine.travel("2026-01-01 00:00Z"):
        old = feedback_reader_token(subscriber)
    with time_machine.travel("2026-06-29 23:00Z"):  # 180 days later: still fine
        assert feedback_reader_token_read(old) == str(subscriber.key)
    with time_machine.travel("2026-07-02 00:00Z"), pytest.raises(TokenExpired):
        feedback_reader_token_read(old)


def test_its_per_link_tokens_of_earlier_digests_still_read(subscriber, paper):
    for value in (1, -1):
        token = feedback_token(subscriber, paper.pk, value)
        assert feedback_token_read(token) == (str(subscriber.key), paper.pk, value)
    token = feedback_token(subscriber, paper.pk, 1)
    value, stamp, signature = token.split(":")
    forged = f"{value[:-1]}-1:{stamp}:{signature}"  # 👍 turned into 👎
    for bad in (forged, token[:-3], feedback_reader_token(subscriber)):
        with pytest.raises(TokenInvalid):
            feedback_token_read(bad)
    with time_machine.travel("2026-01-01 00:00Z"):
        old = feedback_token(subscriber, paper.pk, 1)
    with time_machine.travel("2026-07-02 00:00Z"), pytest.raises(TokenExpired):
        feedback_token_read(old)


# --- the pages --------------------------------------------------------------------------------


def test_its_get_asks_and_records_nothing(client, subscriber, paper):
    path = path_of(feedback_url(subscriber, paper.pk, 1))
    response = client.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "More like this: Robots That Fold Laundry" in page
    assert "Confirm: more like this" in page
    assert "data-autosubmit" in page and "/static/paperboy/feedback.js" in page
    assert "<script>" not in page  # no inline script: only the static file
    assert response["X-Robots-Tag"] == "noindex"
    assert "no-cache" in response["Cache-Control"]
    assert client.head(path).status_code == 200
    assert not Feedback.objects.exists()

    less = client.get(path_of(feedback_url(subscriber, paper.pk, -1))).content.decode()
    assert "Less like this: Robots That Fold Laundry" in less
    assert "Confirm: less like this" in less


def test_its_post_records_and_offers_undo(client, subscriber, paper):
    path = path_of(feedback_url(subscriber, paper.pk, -1))
    response = client.post(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Saved. We will show you fewer papers like this." in page
    assert path_of(preferences_url(subscriber)) in page
    assert Feedback.objects.get().value == LESS
    assert Profile.objects.get(subscriber=subscriber).disliked_ids == [paper.pk]

    client.post(path)  # a second tap, a resubmitted form
    assert Feedback.objects.count() == 1

    more = client.post(path_of(feedback_url(subscriber, paper.pk, 1)))
    assert b"We will show you more papers like this." in more.content
    assert Feedback.objects.get().value == MORE

    undo = re.search(r'action="([^"]+/undo)"', more.content.decode()).group(1)
    undone = client.post(undo)
    assert undone.status_code == 200
    assert b"no longer counts" in undone.content
    assert not Feedback.objects.exists()
    assert Profile.objects.get(subscriber=subscriber).liked_ids == []
    assert client.get(undo).status_code == 405  # undo is a POST only


def test_its_post_needs_the_pages_csrf_token(subscriber, paper):
    browser = Client(enforce_csrf_checks=True)
    path = path_of(feedback_url(subscriber, paper.pk, 1))
    assert browser.post(path).status_code == 403
    assert not Feedback.objects.exists()

    page = browser.get(path).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert browser.post(path, {"csrfmiddlewaretoken": token}).status_code == 200
    assert Feedback.objects.get().value == MORE


def test_it_answers_bad_links_clearly(client, subscriber, paper):
    good = path_of(feedback_url(subscriber, paper.pk, 1))
    for method in (client.get, client.post):
        response = method(good.replace("/f/", "/f/x", 1))
        assert response.status_code == 400
        assert b"This link does not work" in response.content

    with time_machine.travel("2025-01-01 00:00Z"):
        old = path_of(feedback_url(subscriber, paper.pk, 1))
    response = client.get(old)
    assert response.status_code == 410
    assert b"too old" in response.content

    gone_paper = PaperFactory()
    path = path_of(feedback_url(subscriber, gone_paper.pk, 1))
    gone_paper.delete()
    response = client.post(path)
    assert response.status_code == 404
    assert b"This paper is no longer here" in response.content

    subscriber.delete()
    response = client.post(good)
    assert response.status_code == 404
    assert b"no longer exists" in response.content
    assert not Feedback.objects.exists()


def test_it_refuses_a_vote_that_is_neither_more_nor_less(client, subscriber, paper):
    more = path_of(feedback_url(subscriber, paper.pk, 1))
    for vote in ("up", "1", "More", ""):
        path = more.removesuffix("more") + vote
        assert client.post(path).status_code in (400, 404), path
    assert client.post(more.removesuffix("more") + "up").status_code == 400
    assert not Feedback.objects.exists()


def test_its_per_link_urls_of_earlier_digests_still_work(client, subscriber, paper):
    token = feedback_token(subscriber, paper.pk, -1)
    path = reverse("subscriptions:feedback", args=[token])
    page = client.get(path).content.decode()
    assert "Less like this: Robots That Fold Laundry" in page
    assert f'action="{path}"' in page
    assert not Feedback.objects.exists()

    saved = client.post(path).content.decode()
    assert Feedback.objects.get().value == LESS
    undo = re.search(r'action="([^"]+/undo)"', saved).group(1)
    assert undo == reverse("subscriptions:feedback-undo", args=[token])
    client.post(undo)
    assert not Feedback.objects.exists()


def test_its_preference_center_lists_feedback_newest_first_with_undo_and_reset(
    client, subscriber, topics, embedding
):
    liked = [PaperFactory(title=f"Liked paper {i}") for i in range(2)]
    disliked = PaperFactory(title="Disliked paper")
    for minute, paper in enumerate([*liked, disliked]):
        with time_machine.travel(f"2026-06-01 08:{minute:02d}Z"):
            value = LESS if paper == disliked else MORE
            profiles.feedback_record(subscriber=subscriber, paper=paper, value=value)
    profiles.profile_update(
        subscriber=subscriber, interests="robot hands", follows=["A. Person"], muted=[], focus=60
    )
    prefs = path_of(preferences_url(subscriber))

    page = client.get(prefs).content.decode()
    assert page.index("Liked paper 1") < page.index("Liked paper 0") < page.index("Disliked paper")
    assert page.count(">Undo</button>") == 3
    assert "Reset my personalization" in page
    assert "Your topics, what you work on, whom you follow and what you muted stay" in page

    response = client.post(f"{prefs}feedback/{liked[1].pk}/undo")
    assert response.status_code == 302 and response["Location"].endswith("#feedback-heading")
    page = client.get(prefs).content.decode()
    assert "Undone: that paper no longer counts." in page
    assert "Liked paper 1" not in page and "Liked paper 0" in page

    client.post(f"{prefs}reset")
    page = client.get(prefs).content.decode()
    assert "Your personalization is reset" in page
    assert "You have not rated any paper yet." in page
    assert not Feedback.objects.exists()
    profile = Profile.objects.get(subscriber=subscriber)
    assert (profile.interests, profile.follows, profile.focus) == ("robot hands", ["A. Person"], 60)


def test_its_preference_undo_and_reset_are_post_only(client, subscriber, paper):
    profiles.feedback_record(subscriber=subscriber, paper=paper, value=MORE)
    prefs = path_of(preferences_url(subscriber))
    assert client.get(f"{prefs}feedback/{paper.pk}/undo").status_code == 405
    assert client.get(f"{prefs}reset").status_code == 405
    assert Feedback.objects.count() == 1


# --- link scanners ----------------------------------------------------------------------------

HREF = re.compile(r'(?:href|src|action)="([^"#]+)')


def _scan(fetch, start: list[str], base: str) -> dict[str, int]:
    """Open every link and asset reachable from start (on this site), as a scanner does;
    return each URL's GET status."""
    seen: dict[str, int] = {}
    queue = list(start)
    while queue:
        url = urljoin(base, queue.pop())
        if url in seen or not url.startswith(base):
            continue
        for method in ("HEAD", "GET"):
            status, body = fetch(method, url)
            assert status < 500, (method, url, status)
        seen[url] = status
        queue.extend(HREF.findall(body))
    return seen


def _all_feedback_urls(subscriber, papers) -> list[str]:
    return [feedback_url(subscriber, p.pk, v) for p in papers for v in (1, -1)]


def test_a_scanner_opening_every_link_records_nothing_django_client(
    client, subscriber, paper, settings
):
    settings.SITE_URL = "http://testserver"
    settings.WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic
    other = PaperFactory()
    start = [path_of(u) for u in _all_feedback_urls(subscriber, [paper, other])]

    def fetch(method: str, url: str) -> tuple[int, str]:
        response = client.generic(method, path_of(url), follow=True)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, body.decode(errors="replace")

    seen = _scan(fetch, start, "http://testserver/")

    assert [s for u, s in seen.items() if u.endswith("feedback.js")] == [200]
    assert any("/p/" in url for url in seen)  # the preference center, and its links
    assert not Feedback.objects.exists()
    assert Profile.objects.get(subscriber=subscriber).liked_ids == []


@pytest.mark.django_db(transaction=True)
def test_a_scanner_opening_every_link_records_nothing_over_http(live_server, settings, topics):
    settings.SITE_URL = live_server.url
    subscriber = SubscriberFactory(topics=[topics[0]])
    papers = PaperFactory.create_batch(2)
    # A scanner's headers, cookies kept between requests as a gateway's crawler does.
    with httpx.Client(
        follow_redirects=True, timeout=10, headers={"User-Agent": "Mozilla/5.0 (SafeLinks)"}
    ) as http:

        def fetch(method: str, url: str) -> tuple[int, str]:
            response = http.request(method, url)
            return response.status_code, response.text

        seen = _scan(fetch, _all_feedback_urls(subscriber, papers), live_server.url + "/")

    assert [s for u, s in seen.items() if u.endswith("feedback.js")] == [200]
    assert len([u for u in seen if "/f/" in u]) >= 4
    assert not Feedback.objects.exists()
    assert Profile.objects.get(subscriber=subscriber).disliked_ids == []
