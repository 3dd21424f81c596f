from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
import redis
import time_machine
from django.core import mail
from django.test import Client, RequestFactory
from django.utils import timezone

from subscriptions import services
from subscriptions.abuse import client_ip
from subscriptions.models import Subscriber
from tests.external import ROOT, require_redis
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_it_sends_at_most_one_email_for_100_posts_to_one_address(signup, settings):
    settings.SIGNUP_RATE_LIMIT = 1000  # this test is about the per-address limit
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(100):
            response = signup("reader@example.org")
            assert response.status_code == 200
            clock.shift(timedelta(seconds=30))  # 100 posts over 50 minutes
        assert len(mail.outbox) == 1
        assert Subscriber.objects.get().consents.count() == 1

        # Once the hour has passed, the next post may send again (the limit is per interval).
        clock.move_to(start + timedelta(hours=1, seconds=1))
        signup("reader@example.org")
    assert len(mail.outbox) == 2


def test_it_uses_the_configured_per_address_interval(signup, settings):
    settings.SIGNUP_EMAIL_INTERVAL_SECONDS = 60
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        signup("reader@example.org")
        clock.shift(timedelta(seconds=61))
        signup("reader@example.org")
    assert len(mail.outbox) == 2


def _make_state(state: str, email: str) -> None:
    if state == "new":
        return
    if state == "suppressed":
        services.subscriber_suppress(email=email, reason="bounced")
        return
    status = {
        "pending": Subscriber.Status.PENDING,
        "active": Subscriber.Status.ACTIVE,
        "unsubscribed": Subscriber.Status.UNSUBSCRIBED,
    }[state]
    SubscriberFactory(email=email, status=status)


def test_it_answers_byte_identically_for_every_address_state(signup):
    states = ["new", "pending", "active", "unsubscribed", "suppressed"]
    answers = []
    for state in states:
        email = f"{state}@example.org"
        _make_state(state, email)
        # A fresh client each time: the same start, whatever the state.
        response = signup(email, using=Client())
        headers = sorted((k, v) for k, v in response.items())
        answers.append((response.status_code, headers, response.content))
    assert answers[0][0] == 200
    assert all(answer == answers[0] for answer in answers), "responses differ between states"
    # ...while what happened behind them did differ.
    sent_to = sorted(m.to[0] for m in mail.outbox)
    assert sent_to == [
        "active@example.org",
        "new@example.org",
        "pending@example.org",
        "unsubscribed@example.org",
    ]


def test_it_answers_429_over_the_per_ip_limit(signup, settings):
    settings.SIGNUP_RATE_LIMIT = 3
    settings.SIGNUP_RATE_WINDOW_SECONDS = 600
    for i in range(3):
        assert signup(f"r{i}@example.org", REMOTE_ADDR="198.51.100.7").status_code == 200
    limited = signup("r9@example.org", REMOTE_ADDR="198.51.100.7")
    assert limited.status_code == 429
    assert limited["Retry-After"] == "600"
    assert not Subscriber.objects.filter(email="r9@example.org").exists()
    # Another address is not affected.
    assert signup("other@example.org", REMOTE_ADDR="203.0.113.9").status_code == 200
    # The window passes, the limit resets.
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        assert signup("r10@example.org", REMOTE_ADDR="198.51.100.7").status_code == 200


def test_it_counts_the_per_ip_limit_in_redis(signup, settings):
    url = require_redis()
    server = redis.Redis.from_url(url)
    # A prefix of its own, so the test neither sees nor deletes anyone else's keys.
    prefix = f"pbtest-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    settings.SIGNUP_RATE_LIMIT = 2
    try:
        assert signup("a@example.org", REMOTE_ADDR="198.51.100.8").status_code == 200
        assert signup("b@example.org", REMOTE_ADDR="198.51.100.8").status_code == 200
        assert signup("c@example.org", REMOTE_ADDR="198.51.100.8").status_code == 429
        keys = server.keys(f"{prefix}:*ratelimit:signup:198.51.100.8:*")
        assert len(keys) == 1
        assert int(server.get(keys[0])) == 3
        assert 0 < server.ttl(keys[0]) <= settings.SIGNUP_RATE_WINDOW_SECONDS + 1
    finally:
        for key in server.scan_iter(f"{prefix}:*"):
            server.delete(key)


def test_it_takes_the_client_address_from_trusted_proxies_only(settings):
    rf = RequestFactory()
    request = rf.post("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.5")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    # The left entry is whatever the client claimed; the proxy appended the real one.
    assert client_ip(request) == "203.0.113.5"


def shipped_proxy_count() -> int:
    """TRUSTED_PROXY_COUNT as docker-compose.yml sets it for the web service."""
    compose = (ROOT / "docker-compose.yml").read_text()
    match = re.search(r"^\s+TRUSTED_PROXY_COUNT: \"?(\d+)\"?$", compose, re.M)
    assert match, "docker-compose.yml sets no TRUSTED_PROXY_COUNT"
    return int(match.group(1))


@pytest.mark.parametrize("proxy", ["replaces", "appends"])
def test_it_limits_each_real_client_behind_the_shipped_proxy(signup, settings, proxy):
    # Every request reaches gunicorn from the proxy's address. The client puts whatever it likes
    # in X-Forwarded-For; Caddy replaces it with the peer address (deploy/Caddyfile), and a proxy
    # that appended instead would still leave the real address last.
    settings.TRUSTED_PROXY_COUNT = shipped_proxy_count()
    settings.SIGNUP_RATE_LIMIT = 3
    caddy = "172.18.0.5"

    def through_proxy(email: str, real: str, forged: str):
        seen = real if proxy == "replaces" else f"{forged}, {real}"
        return signup(email, REMOTE_ADDR=caddy, HTTP_X_FORWARDED_FOR=seen)

    for i in range(3):
        assert through_proxy(f"r{i}@example.org", "198.51.100.7", f"10.9.9.{i}").status_code == 200
    # A fresh forged entry each time does not buy the same client a fresh bucket...
    assert through_proxy("r3@example.org", "198.51.100.7", "10.9.9.99").status_code == 429
    # ...and the other visitors, all arriving from the same proxy, keep theirs.
    assert through_proxy("other@example.org", "203.0.113.9", "198.51.100.7").status_code == 200


def test_it_ignores_a_filled_honeypot_with_the_same_page(signup):
    normal = signup("person@example.org", using=Client())
    bot = signup("bot@example.org", using=Client(), website="http://spam.example")
    assert bot.status_code == normal.status_code == 200
    assert bot.content == normal.content
    assert not Subscriber.objects.filter(email="bot@example.org").exists()
    assert [m.to for m in mail.outbox] == [["person@example.org"]]


def test_it_requires_a_csrf_token_on_the_form(topics, django_capture_on_commit_callbacks):
    client = Client(enforce_csrf_checks=True)
    data = {"email": "r@example.org", "topics": [topics[0].pk], "consent_version": "2026-11-27"}
    assert client.post("/", data).status_code == 403
    assert not Subscriber.objects.exists()

    client.get("/")
    data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/", data).status_code == 200
    assert Subscriber.objects.filter(email="r@example.org").exists()
