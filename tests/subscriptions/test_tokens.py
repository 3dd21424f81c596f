from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from subscriptions.models import Subscriber
from tests.subscriptions.helpers import link_in, path_of

pytestmark = pytest.mark.django_db


def test_it_confirms_until_the_last_day(client, signup):
    signup("reader@example.org")
    link = path_of(link_in(mail.outbox[0]))
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=-1)):
        assert client.post(link).status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


def test_it_refuses_an_expired_confirmation_and_offers_a_new_link(
    client, signup, django_capture_on_commit_callbacks
):
    signup("reader@example.org")
    link = path_of(link_in(mail.outbox[0]))

    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        for method in (client.get, client.post):
            page = method(link)
            assert page.status_code == 410
            assert b"expired" in page.content
            assert b"Send me a new link" in page.content
        assert Subscriber.objects.get().status == Subscriber.Status.PENDING

        # The page's button mails a fresh link, which works.
        resend = link.rstrip("/") + "/resend"
        with django_capture_on_commit_callbacks(execute=True):
            assert Client().post(resend).status_code == 200
        assert len(mail.outbox) == 2
        fresh = path_of(link_in(mail.outbox[1]))
        assert fresh != link
        assert client.post(fresh).status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


def test_it_reads_the_confirmation_age_from_settings(client, signup, settings):
    settings.CONFIRM_LINK_MAX_AGE_DAYS = 2
    signup("reader@example.org")
    link = path_of(link_in(mail.outbox[0]))
    assert "2 days" in mail.outbox[0].body
    with time_machine.travel(timezone.now() + timedelta(days=2, minutes=1)):
        assert client.post(link).status_code == 410


def test_it_refuses_a_confirmation_token_as_unsubscribe_or_preferences_token(client, signup):
    signup("reader@example.org")
    token = path_of(link_in(mail.outbox[0])).split("/")[2]
    assert client.post(f"/u/{token}", {"List-Unsubscribe": "One-Click"}).status_code == 400
    assert client.get(f"/p/{token}/").status_code == 400
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_it_refuses_a_tampered_confirmation(client, signup):
    signup("reader@example.org")
    link = path_of(link_in(mail.outbox[0]))
    tampered = link[:-3] + ("x" if link[-3] != "x" else "y") + link[-2:]
    assert client.post(tampered).status_code == 400
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_it_says_so_when_the_pending_subscriber_was_purged(client, signup):
    signup("reader@example.org")
    link = path_of(link_in(mail.outbox[0]))
    Subscriber.objects.all().delete()
    response = client.post(link)
    assert response.status_code == 404
    assert b"subscribe again" in response.content


def test_it_builds_links_exactly_as_reverse_would(settings):
    from django.urls import reverse

    from subscriptions import links
    from subscriptions.models import Subscriber

    subscriber = Subscriber(email="r@example.org")
    for site in ("https://paperboy.example.org", "http://127.0.0.1:8000"):
        settings.SITE_URL = site
        token = links._key_token(subscriber, links.SALT_UNSUBSCRIBE)
        expected = site + reverse("subscriptions:unsubscribe", args=[token])
        assert links.unsubscribe_url(subscriber) == expected


def test_it_signs_links_with_the_current_secret_key(settings):
    from django.core import signing

    from subscriptions import links
    from subscriptions.models import Subscriber

    subscriber = Subscriber(email="r@example.org")
    for secret in ("first-secret-" + "x" * 40, "second-secret-" + "y" * 40):
        settings.SECRET_KEY = secret
        token = links._key_token(subscriber, links.SALT_PREFERENCES)
        # Exactly what a Signer made now would give, so links read back after a key change.
        assert token == signing.Signer(salt=links.SALT_PREFERENCES).sign_object(str(subscriber.key))
        assert links.key_token_read(token, salt=links.SALT_PREFERENCES) == str(subscriber.key)


def test_its_fast_key_tokens_are_djangos_signer(settings):
    import uuid

    from django.core import signing

    from subscriptions import links

    for salt in (links.SALT_UNSUBSCRIBE, links.SALT_PREFERENCES):
        for key in (uuid.uuid4(), str(uuid.uuid4())):
            expected = signing.Signer(key=settings.SECRET_KEY, salt=salt).sign_object(str(key))
            assert links._key_signer(salt, settings.SECRET_KEY).sign(key) == expected
            assert links.key_token_read(expected, salt=salt) == str(key)
