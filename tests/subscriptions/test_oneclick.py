"""RFC 8058 one-click unsubscribe: what mailbox providers do with List-Unsubscribe-Post."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from subscriptions import services
from subscriptions.links import confirm_token, preferences_url, unsubscribe_url
from subscriptions.models import Subscriber, Suppression
from subscriptions.selectors import subscribers_sendable
from tests.factories import SubscriberFactory
from tests.subscriptions.helpers import path_of

pytestmark = pytest.mark.django_db


def _one_click(path: str, encoding: str):
    # A provider's POST: no cookies, no CSRF token, just the body RFC 8058 prescribes.
    client = Client(enforce_csrf_checks=True)
    if encoding == "urlencoded":
        return client.post(
            path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
    return client.post(path, {"List-Unsubscribe": "One-Click"})  # multipart/form-data


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_it_unsubscribes_with_one_post(encoding):
    subscriber = SubscriberFactory()
    path = path_of(unsubscribe_url(subscriber))

    response = _one_click(path, encoding)
    assert response.status_code == 200
    assert "Location" not in response
    assert not response.cookies
    assert b"unsubscribed" in response.content
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    first = subscriber.unsubscribed_at
    assert first is not None
    assert not subscribers_sendable().exists()
    assert Suppression.objects.get().reason == "unsubscribed"

    # A retrying provider: same answer, nothing changes (not even the timestamp).
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        again = _one_click(path, encoding)
    assert again.status_code == 200
    assert "Location" not in again
    subscriber.refresh_from_db()
    assert subscriber.unsubscribed_at == first
    assert Suppression.objects.count() == 1


def test_it_only_asks_on_get():
    subscriber = SubscriberFactory()
    response = Client().get(path_of(unsubscribe_url(subscriber)))
    assert response.status_code == 200
    assert b'name="List-Unsubscribe" value="One-Click"' in response.content
    assert not response.cookies
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.unsubscribed_at is None
    assert not Suppression.objects.exists()


def test_it_refuses_tampered_and_foreign_tokens():
    subscriber = SubscriberFactory()
    path = path_of(unsubscribe_url(subscriber))
    token = path.rsplit("/", 1)[1]
    tampered = path[:-1] + ("A" if path[-1] != "A" else "B")
    consent = subscriber.consents.get()
    foreign = [
        tampered,
        f"/u/{token[:-6]}",
        f"/u/{confirm_token(subscriber, consent)}",  # a confirmation token is not an unsubscribe
        "/u/" + path_of(preferences_url(subscriber)).split("/")[2],
    ]
    for bad in foreign:
        response = _one_click(bad, "urlencoded")
        assert response.status_code == 400, bad
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_it_answers_404_for_an_erased_subscriber():
    subscriber = SubscriberFactory()
    path = path_of(unsubscribe_url(subscriber))
    services.subscriber_erase(subscriber=subscriber)
    assert _one_click(path, "multipart").status_code == 404


def test_its_urls_are_absolute_and_site_based(settings):
    settings.SITE_URL = "https://paperboy.example"
    subscriber = SubscriberFactory()
    for url, name in [
        (unsubscribe_url(subscriber), "subscriptions:unsubscribe"),
        (preferences_url(subscriber), "subscriptions:preferences"),
    ]:
        assert url.startswith("https://paperboy.example/")
        assert resolve(path_of(url)).view_name == name
