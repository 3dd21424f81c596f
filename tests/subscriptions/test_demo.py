from __future__ import annotations

import pytest

from config.demo import DEMO_STEPS, DEMO_SUBSCRIBERS, step_subscribers
from subscriptions.models import Subscriber
from subscriptions.selectors import subscribers_sendable
from tests.subscriptions.conftest import without_seeded_topics

pytestmark = pytest.mark.django_db


def test_it_is_a_demo_step():
    assert step_subscribers in DEMO_STEPS


def test_it_skips_without_topics():
    without_seeded_topics()
    lines: list[str] = []
    step_subscribers(lines.append)
    assert len(lines) == 1 and "no active topics" in lines[0]
    assert not Subscriber.objects.exists()


def test_it_creates_active_subscribers_once(topics):
    lines: list[str] = []
    step_subscribers(lines.append)
    step_subscribers(lines.append)
    assert subscribers_sendable().count() == len(DEMO_SUBSCRIBERS)
    assert all(s.topics.exists() for s in Subscriber.objects.all())
    assert "(3 new)" in lines[0] and "(0 new)" in lines[1]
    assert len(lines) == 2
    assert "/p/" in lines[0]  # a preferences link to try
