from __future__ import annotations

import json

import pytest
from django.core import mail
from django.test import Client

from subscriptions.links import preferences_url
from subscriptions.models import Subscriber, Suppression
from tests.factories import SubscriberFactory
from tests.subscriptions.helpers import path_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscriber(topics):
    return SubscriberFactory(email="reader@example.org", topics=[topics[0]])


@pytest.fixture
def prefs(subscriber):
    return path_of(preferences_url(subscriber))


def test_it_shows_the_subscription_without_changing_it(client, subscriber, prefs):
    response = client.get(prefs)
    assert response.status_code == 200
    body = response.content.decode()
    assert "reader@example.org" in body and "Pause digests" in body
    [checked] = response.context["preferences_form"].initial["topics"]
    assert checked == subscriber.topics.get()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_it_changes_topics(client, subscriber, prefs, topics):
    response = client.post(prefs + "topics", {"topics": [topics[1].pk, topics[2].pk]})
    assert response.status_code == 302
    assert response["Location"] == prefs
    assert set(subscriber.topics.all()) == {topics[1], topics[2]}
    assert b"Your preferences are saved" in client.get(prefs).content


def test_it_refuses_an_empty_topic_list(client, subscriber, prefs, topics):
    response = client.post(prefs + "topics", {"topics": []})
    assert response.status_code == 400
    assert b"Choose at least one topic" in response.content
    assert list(subscriber.topics.all()) == [topics[0]]


def test_it_pauses_and_resumes(client, subscriber, prefs):
    client.post(prefs + "pause")
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PAUSED
    assert subscriber.paused_at is not None
    assert b"Resume digests" in client.get(prefs).content

    client.post(prefs + "resume")
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.paused_at is None


def test_it_unsubscribes_and_offers_to_come_back_through_confirmation(
    client, subscriber, prefs, django_capture_on_commit_callbacks
):
    client.post(prefs + "unsubscribe")
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    page = client.get(prefs).content
    assert b"Subscribe again" in page and b"Save preferences" not in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(prefs + "resubscribe")
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    [message] = mail.outbox
    assert message.subject == "Confirm your Paperboy subscription"


def test_it_downloads_the_data_as_json(client, subscriber, prefs):
    response = client.post(prefs + "export")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == 'attachment; filename="paperboy-my-data.json"'
    data = json.loads(response.content)
    assert data["profile"]["email"] == "reader@example.org"
    assert data["consent_records"][0]["ip"] == "192.0.2.10"
    assert client.get(prefs + "export").status_code == 405  # never by a prefetched link


def test_it_erases_only_when_confirmed(client, subscriber, prefs):
    refused = client.post(prefs + "erase", {})
    assert refused.status_code == 400
    assert b"Tick the box" in refused.content
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()

    done = client.post(prefs + "erase", {"confirm": "on"})
    assert done.status_code == 200
    assert b"Your data is erased" in done.content
    assert not Subscriber.objects.exists()
    assert Suppression.objects.get().reason == "erased"
    assert client.get(prefs).status_code == 404


def test_it_requires_csrf_on_preference_changes(subscriber, prefs):
    client = Client(enforce_csrf_checks=True)
    assert client.post(prefs + "pause").status_code == 403
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
