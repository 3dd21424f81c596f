from __future__ import annotations

import importlib
import sys
import types
import zlib

import numpy as np
import pytest
from django.core import mail
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

import digests
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


class StandInEmbedding:
    """A tiny, deterministic stand-in for digests.embedding: words hashed into its dimensions.

    Unit tests of profiles need a vector that depends on the text, not the real model's load
    time. Calls are recorded, so a test can tell whether the service embedded anything.
    """

    MODEL_NAME = "stand-in"
    DIMS = 256  # the real model's, so stored vectors pass its size checks

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = np.zeros((len(texts), self.DIMS), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                rows[i, zlib.crc32(word.encode()) % self.DIMS] += 1.0
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms == 0, 1, norms)

    @staticmethod
    def vector_to_bytes(vector: np.ndarray) -> bytes:
        return np.asarray(vector, dtype=np.float32).tobytes()

    @staticmethod
    def vectors_from_bytes(blobs) -> np.ndarray:
        return np.stack([np.frombuffer(bytes(b), dtype=np.float32) for b in blobs])


@pytest.fixture
def embedding(monkeypatch) -> StandInEmbedding:
    """Replace digests.embedding's model (or the whole module, where it is not there yet)."""
    stand_in = StandInEmbedding()
    try:
        real = importlib.import_module("digests.embedding")
    except ImportError:
        module = types.ModuleType("digests.embedding")
        for name in ("MODEL_NAME", "DIMS", "vector_to_bytes", "vectors_from_bytes"):
            setattr(module, name, getattr(stand_in, name))
        module.embed_texts = stand_in.embed_texts
        monkeypatch.setitem(sys.modules, "digests.embedding", module)
        monkeypatch.setattr(digests, "embedding", module, raising=False)
    else:
        monkeypatch.setattr(real, "embed_texts", stand_in.embed_texts)
        monkeypatch.setattr(real, "MODEL_NAME", stand_in.MODEL_NAME)
        stand_in.vector_to_bytes = real.vector_to_bytes
        stand_in.vectors_from_bytes = real.vectors_from_bytes
    return stand_in
