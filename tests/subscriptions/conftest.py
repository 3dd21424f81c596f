from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

from digests.models import Topic
from subscriptions.consent import CONSENT_VERSION
from tests.factories import TopicFactory


def _clear_local_cache() -> None:
    # Only the in-process cache: clear() on a Redis cache would FLUSHDB someone's database.
    if isinstance(caches["default"], LocMemCache):
        cache.clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit counters live in the cache; one test's posts must not count against the next.
    _clear_local_cache()
    yield
    _clear_local_cache()


def without_seeded_topics() -> None:
    """These tests make the topics they need; the seeded ones would collide by name."""
    Topic.objects.all().delete()


@pytest.fixture
def topics(db):
    without_seeded_topics()
    return [
        TopicFactory(name="Language models", slug="llm", position=1),
        TopicFactory(name="Computer vision", slug="cv", position=2),
        TopicFactory(name="Robotics", slug="robotics", position=3),
    ]


@pytest.fixture
def signup(client, django_capture_on_commit_callbacks, topics):
    """POST the front-page form (running on-commit callbacks, so the email task runs)."""

    def post(email: str, *, chosen=None, using=None, **extra):
        data = {
            "email": email,
            "topics": [t.pk for t in (chosen if chosen is not None else topics[:1])],
            "consent_version": CONSENT_VERSION,
            "website": "",
        }
        meta = {k: v for k, v in extra.items() if k.isupper()}
        data.update({k: v for k, v in extra.items() if not k.isupper()})
        with django_capture_on_commit_callbacks(execute=True):
            return (using or client).post("/", data, **meta)

    return post


@pytest.fixture
def outbox():
    return mail.outbox
