from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError
from django.utils import timezone

from subscriptions import services
from subscriptions.consent import CONSENT_VERSION
from subscriptions.models import ConsentRecord, Subscriber, Suppression
from subscriptions.selectors import subscribers_sendable
from tests.factories import SubscriberFactory, TopicFactory
from tests.subscriptions.helpers import link_in, path_of

pytestmark = pytest.mark.django_db


def test_it_shows_the_form_with_active_topics_and_the_consent_version(client, topics):
    TopicFactory(name="Retired topic", slug="retired", is_active=False)
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="email"' in body and 'name="csrfmiddlewaretoken"' in body
    assert "Language models" in body and "Robotics" in body
    assert "Retired topic" not in body
    assert f'value="{CONSENT_VERSION}"' in body
    assert response.context["preview_papers"] == []


def test_it_creates_a_pending_subscriber_and_mails_a_confirmation(signup, topics):
    response = signup(
        "Reader@Example.org",
        chosen=topics[:2],
        REMOTE_ADDR="198.51.100.23",
        HTTP_USER_AGENT="Mozilla/5.0 (X11) Firefox/140",
    )

    assert response.status_code == 200
    assert b"Check your inbox" in response.content
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "reader@example.org"
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.confirmed_at is None
    assert set(subscriber.topics.all()) == set(topics[:2])
    consent = subscriber.consents.get()
    assert consent.ip == "198.51.100.23"
    assert consent.user_agent == "Mozilla/5.0 (X11) Firefox/140"
    assert consent.form_version == CONSENT_VERSION
    assert consent.topics == ["llm", "cv"]
    assert consent.confirmed_at is None
    assert not subscribers_sendable().exists()

    [message] = mail.outbox
    assert message.to == ["reader@example.org"]
    assert message.subject == "Confirm your Paperboy subscription"
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    url = link_in(message)
    assert url.startswith("http://127.0.0.1:8000/confirm/")
    assert url in html


def test_it_confirms_on_post_only(client, signup):
    signup("reader@example.org")
    confirm = path_of(link_in(mail.outbox[0]))

    page = client.get(confirm)
    assert page.status_code == 200
    assert b"Confirm my subscription" in page.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING  # GET changed nothing

    done = client.post(confirm)
    assert done.status_code == 200
    assert b"Manage your preferences" in done.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.confirmed_at is not None
    assert subscriber.consents.get().confirmed_at == subscriber.confirmed_at
    assert list(subscribers_sendable()) == [subscriber]

    # A second click is harmless and keeps the first confirmation time.
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        again = client.post(confirm)
    assert again.status_code == 200
    assert Subscriber.objects.get().confirmed_at == subscriber.confirmed_at


def test_it_treats_addresses_case_insensitively_with_idna_domains(signup):
    signup("Ada@Bücher.Example")
    signup("ada@xn--bcher-kva.example")
    signup("ADA@BÜCHER.example")
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "ada@xn--bcher-kva.example"
    assert len(mail.outbox) == 1


def test_it_enforces_case_insensitive_uniqueness_in_the_database(db):
    SubscriberFactory(email="ada@example.org")
    # Even a write that bypasses the services (and the hash) cannot add a case variant.
    with pytest.raises(IntegrityError):
        SubscriberFactory(email="ADA@example.org", email_hash="x" * 64)


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "two@@example.org",
        "space in@example.org",
        "a@-bad-.example",
        "a@exa_mple.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 63 + ".org",
    ],
)
def test_it_refuses_invalid_addresses(signup, email):
    response = signup(email)
    assert response.status_code == 400
    assert b'class="errorlist"' in response.content
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_it_requires_at_least_one_active_topic(signup):
    retired = TopicFactory(name="Retired", slug="retired", is_active=False)
    for chosen in ([], [retired]):
        response = signup("reader@example.org", chosen=chosen)
        assert response.status_code == 400
        assert b"Choose at least one topic" in response.content or b"valid choice" in (
            response.content
        )
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_it_refuses_an_unknown_consent_version(signup):
    response = signup("reader@example.org", consent_version="1999-01-01")
    assert response.status_code == 400
    assert b"out of date" in response.content
    assert not Subscriber.objects.exists()


def test_it_does_not_let_the_form_change_a_confirmed_subscription(signup, topics):
    subscriber = SubscriberFactory(email="reader@example.org", topics=[topics[0]])
    signup("reader@example.org", chosen=[topics[2]])

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert list(subscriber.topics.all()) == [topics[0]]
    assert subscriber.consents.count() == 1
    # The owner gets a pointer to their preferences instead.
    [message] = mail.outbox
    assert message.subject == "You are already subscribed to Paperboy"
    assert "/p/" in message.body


def test_it_sends_a_returning_subscriber_through_confirmation_again(client, signup, topics):
    signup("reader@example.org")
    first_link = path_of(link_in(mail.outbox[0]))
    client.post(first_link)
    subscriber = Subscriber.objects.get()
    services.subscriber_unsubscribe(subscriber=subscriber)
    assert Suppression.objects.filter(reason="unsubscribed").count() == 1

    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        signup("reader@example.org", chosen=topics[1:])
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.confirmed_at is None
    assert not subscribers_sendable().exists()
    assert subscriber.consents.count() == 2
    assert len(mail.outbox) == 2

    # The link from the first round does not confirm the second request.
    stale = client.post(first_link)
    assert stale.status_code == 409
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING

    client.post(path_of(link_in(mail.outbox[1])))
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert set(subscriber.topics.all()) == set(topics[1:])
    assert not Suppression.objects.exists()  # the new confirmation lifted the unsubscribe
    assert list(subscribers_sendable()) == [subscriber]


def test_it_keeps_one_consent_record_while_a_request_is_pending(signup):
    signup("reader@example.org", REMOTE_ADDR="192.0.2.1")
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        signup("reader@example.org", REMOTE_ADDR="192.0.2.2")
    consent = ConsentRecord.objects.get()
    assert consent.ip == "192.0.2.2"
    # Both emails carry a link to the same request, so the first one still works.
    assert len(mail.outbox) == 2
    assert link_in(mail.outbox[0]).split(":")[1] == link_in(mail.outbox[1]).split(":")[1]


def test_it_previews_papers_escaping_upstream_titles(client, topics, monkeypatch):
    from types import SimpleNamespace

    from subscriptions import views

    papers = [
        SimpleNamespace(
            title="Attention <script>alert(1)</script>", hf_url="https://hf.co/papers/1", upvotes=42
        ),
        SimpleNamespace(title="One upvote", hf_url="https://hf.co/papers/2", upvotes=1),
    ]
    monkeypatch.setattr(views, "_latest_preview", lambda: papers)
    body = client.get("/").content.decode()
    assert "Attention &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert 'href="https://hf.co/papers/1"' in body
    assert "42 upvotes" in body and "1 upvote<" in body
    assert "not in yet" not in body


def test_it_previews_the_latest_approved_batch_but_not_a_draft(client, topics):
    from digests.models import DailyBatch
    from tests.factories import BatchEntryFactory, DailyBatchFactory, PaperFactory

    approved = DailyBatchFactory(date=dt.date(2026, 3, 9), status=DailyBatch.Status.APPROVED)
    BatchEntryFactory(batch=approved, paper=PaperFactory(title="Approved <b>paper</b>"), rank=1)
    BatchEntryFactory(batch=approved, paper=PaperFactory(title="Hidden paper"), hidden=True)
    draft = DailyBatchFactory(date=dt.date(2026, 3, 10), status=DailyBatch.Status.DRAFT)
    BatchEntryFactory(batch=draft, paper=PaperFactory(title="Draft paper"), rank=1)

    body = client.get("/").content.decode()
    assert "Approved &lt;b&gt;paper&lt;/b&gt;" in body
    assert "Hidden paper" not in body and "Draft paper" not in body


def test_it_puts_the_senders_postal_address_in_the_confirmation_footer(signup, topics, settings):
    from django.core import mail

    settings.SENDER_POSTAL_ADDRESS = "Paperboy Ltd; 1 Main Street\n12345 Springfield"
    signup("reader@example.org", chosen=topics[:1])
    [message] = mail.outbox
    html = message.alternatives[0][0]
    assert "Paperboy Ltd, 1 Main Street, 12345 Springfield" in message.body
    assert "Paperboy Ltd, 1 Main Street, 12345 Springfield" in html
