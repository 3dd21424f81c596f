"""'View in browser': each reader's own email of the day, behind a signed link."""

from __future__ import annotations

import pytest
from django.core import mail

from newsletter.composition import messages_per_recipient
from newsletter.services.issues import digest_send_for_day
from subscriptions import services
from subscriptions.links import (
    feedback_reader_token_read,
    preferences_url,
    unsubscribe_url,
    view_token,
)
from tests.factories import SubscriberFactory
from tests.newsletter.conftest import DAY

pytestmark = pytest.mark.django_db

DAY_PATH = f"/digests/{DAY.isoformat()}/"


@pytest.fixture
def sent(day_batch, django_capture_on_commit_callbacks, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    t = day_batch.topics
    robot = SubscriberFactory(email="robot@example.org", topics=[t["robotics"]])
    agent = SubscriberFactory(email="agent@example.org", topics=[t["agents"]])
    services.subscriber_update_schedule(subscriber=robot, time_zone="Asia/Tokyo", delivery_hour=8)
    with django_capture_on_commit_callbacks(execute=True):
        digest_send_for_day(day=DAY)
    return day_batch, robot, agent


def _emails() -> dict[str, object]:
    return {addr: one for m in mail.outbox for addr, one in messages_per_recipient(m)}


def test_the_emails_view_link_opens_the_readers_own_email(client, sent):
    _, robot, agent = sent
    emails = _emails()
    link = f"http://127.0.0.1:8000{DAY_PATH}yours/{view_token(robot)}/"
    robot_html = emails["robot@example.org"].alternatives[0][0]
    assert robot_html.count(f'href="{link}"') == 2
    assert f"View in browser: {link}" in emails["robot@example.org"].body

    page = client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert page.status_code == 200
    body = page.content.decode()
    for name in ("r1", "r2", "r3", "ra"):
        assert f"Paper {name}" in body
    for name in ("a1", "a2", "v1"):
        assert f"Paper {name}" not in body  # the agents reader's papers, not this one's
    assert "You get this digest weekdays at 08:00 (Asia/Tokyo) because" in body
    # 👍/👎 are the reader's own; the links to change or end the subscription are not there.
    feedback = body.split('href="http://127.0.0.1:8000/f/', 1)[1].split("/", 1)[0]
    assert feedback_reader_token_read(feedback) == str(robot.key)
    assert preferences_url(robot) not in body and unsubscribe_url(robot) not in body
    assert "/p/" not in body and "/u/" not in body
    assert body.count('href="http://127.0.0.1:8000/link/"') == 2
    assert page["X-Robots-Tag"] == "noindex" and page["Referrer-Policy"] == "no-referrer"
    assert "'unsafe-inline'" in page["Content-Security-Policy"]  # the email's inline styles
    assert "no-cache" in page["Cache-Control"]

    theirs = client.get(f"{DAY_PATH}yours/{view_token(agent)}/").content.decode()
    assert "Paper a1" in theirs and "Paper r1" not in theirs


def test_a_bad_or_foreign_view_link_shows_nothing_personal(client, sent, day_batch):
    _, robot, _ = sent
    token = view_token(robot)
    tampered = client.get(f"{DAY_PATH}yours/{token[:-3]}abc/")
    assert tampered.status_code == 400 and b"Paper r1" not in tampered.content
    # A preferences token is not a view token (each purpose has its own salt).
    pref_token = preferences_url(robot).rstrip("/").rsplit("/", 1)[1]
    assert client.get(f"{DAY_PATH}yours/{pref_token}/").status_code == 400
    # A reader who got nothing that day: a pointer to the public archive of the day.
    stranger = SubscriberFactory(email="late@example.org")
    none = client.get(f"{DAY_PATH}yours/{view_token(stranger)}/")
    assert none.status_code == 404 and f'href="{DAY_PATH}"'.encode() in none.content
    assert client.get(f"/digests/2030-01-01/yours/{token}/").status_code == 404
    # Erased: the link shows nothing any more.
    services.subscriber_erase(subscriber=robot)
    assert client.get(f"{DAY_PATH}yours/{token}/").status_code == 404


def test_the_public_archive_stays_public_and_whole(client, sent):
    page = client.get(DAY_PATH)
    assert page.status_code == 200
    for name in ("r1", "a1", "v1"):
        assert f"Paper {name}" in page.content.decode()
    assert "'unsafe-inline'" not in page["Content-Security-Policy"]
    email = _emails()["robot@example.org"].alternatives[0][0]
    assert f'<a href="http://127.0.0.1:8000{DAY_PATH}" style=' in email
    assert "Public archive</a>" in email
