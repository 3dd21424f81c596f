"""Export, erase, suppression and who may be mailed."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from digests.models import Paper
from subscriptions import exports, profiles, services
from subscriptions.addresses import email_hash
from subscriptions.consent import CONSENT_TEXTS, CONSENT_VERSION
from subscriptions.models import ConsentRecord, Feedback, Profile, Subscriber, Suppression
from subscriptions.selectors import subscribers_sendable
from tests.factories import PaperFactory, SubscriberFactory
from tests.subscriptions.helpers import link_in, path_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(exports, "_SECTIONS", {})
    return exports


def test_its_export_contains_the_consent_record_and_registered_sections(
    client, signup, registry, topics
):
    registry.register_export_section(
        "delivery_history", lambda s: [{"issue": "2026-11-27", "to": s.email, "status": "sent"}]
    )
    signup("reader@example.org", REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="TestBrowser/1")
    client.post(path_of(link_in(mail.outbox[0])))
    subscriber = Subscriber.objects.get()

    data = services.subscriber_export(subscriber=subscriber)

    assert data["profile"]["email"] == "reader@example.org"
    assert data["profile"]["status"] == "active"
    assert data["topics"] == [{"slug": "llm", "name": "Language models"}]
    [consent] = data["consent_records"]
    assert consent["ip"] == "198.51.100.4"
    assert consent["user_agent"] == "TestBrowser/1"
    assert consent["form_version"] == CONSENT_VERSION
    assert consent["form_text"] == CONSENT_TEXTS[CONSENT_VERSION]
    assert consent["requested_at"] and consent["confirmed_at"]
    assert data["delivery_history"] == [
        {"issue": "2026-11-27", "to": "reader@example.org", "status": "sent"}
    ]


def test_its_registry_refuses_clashing_sections(registry):
    def history(subscriber):
        return []

    registry.register_export_section("delivery_history", history)
    registry.register_export_section("delivery_history", history)  # same function: harmless
    with pytest.raises(ValueError, match="already registered"):
        registry.register_export_section("delivery_history", lambda s: [])
    with pytest.raises(ValueError, match="reserved"):
        registry.register_export_section("profile", history)


def test_it_erases_the_address_but_refuses_a_later_import(topics):
    subscriber = SubscriberFactory(email="gone@example.org")
    services.subscriber_erase(subscriber=subscriber)

    assert not Subscriber.objects.exists()
    assert not ConsentRecord.objects.exists()
    entry = Suppression.objects.get()
    assert entry.reason == "erased"
    assert entry.email_hash == email_hash("gone@example.org")
    assert "gone" not in entry.email_hash

    for spelling in ("gone@example.org", "GONE@Example.ORG "):
        with pytest.raises(services.SubscriberSuppressed):
            services.subscriber_import(email=spelling, topics=topics[:1])
    assert not Subscriber.objects.exists()


def test_it_lets_an_erased_person_come_back_through_double_opt_in(client, signup, topics):
    services.subscriber_erase(subscriber=SubscriberFactory(email="back@example.org"))
    signup("back@example.org")
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    assert not subscribers_sendable().exists()
    client.post(path_of(link_in(mail.outbox[0])))
    assert list(subscribers_sendable().values_list("email", flat=True)) == ["back@example.org"]
    assert not Suppression.objects.exists()


def test_it_refuses_to_import_an_unsubscribed_address(topics):
    subscriber = SubscriberFactory(email="left@example.org")
    services.subscriber_unsubscribe(subscriber=subscriber)
    subscriber.delete()  # even if the row went away some other way
    with pytest.raises(services.SubscriberSuppressed):
        services.subscriber_import(email="left@example.org", topics=topics[:1])


def test_it_imports_new_addresses_as_active_with_an_import_consent(topics):
    subscriber, created = services.subscriber_import(email="New@Example.org", topics=topics[:2])
    assert created
    assert subscriber.email == "new@example.org"
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.consents.get().source == "import"
    assert list(subscribers_sendable()) == [subscriber]
    again, created = services.subscriber_import(email="new@example.org", topics=topics[2:])
    assert (again, created) == (subscriber, False)


def test_it_imports_without_consent_as_pending_through_the_form_email_limit(
    topics, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscriber, created = services.subscriber_import(
            email="maybe@example.org", topics=topics[:1], confirmed=False
        )
    assert created and subscriber.status == Subscriber.Status.PENDING
    assert subscriber.consents.get().confirmed_at is None
    assert [m.to for m in mail.outbox] == [["maybe@example.org"]]
    assert "/confirm/" in mail.outbox[0].body
    # The import's confirmation counts against the once-per-interval limit like a form post.
    consent = subscriber.consents.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.subscriber_confirmation_resend(
            subscriber_key=str(subscriber.key), consent_id=consent.pk
        )
    assert len(mail.outbox) == 1


def test_suppress_stops_mail_and_blocks_confirmation_mail(signup, topics):
    subscriber = SubscriberFactory(email="bouncy@example.org")
    assert list(subscribers_sendable()) == [subscriber]

    services.subscriber_suppress(email="Bouncy@example.org", reason="bounced")
    assert not subscribers_sendable().exists()

    # A bounced address gets no confirmation mail either, even after unsubscribing.
    services.subscriber_unsubscribe(subscriber=subscriber)
    assert Suppression.objects.get().reason == "bounced"  # an unsubscribe does not soften it
    signup("bouncy@example.org")
    assert mail.outbox == []


def test_suppress_works_for_unknown_addresses_and_hardens_soft_entries(signup):
    services.subscriber_suppress(email="stranger@example.org", reason="complained")
    signup("stranger@example.org")
    assert mail.outbox == []
    assert not Subscriber.objects.exists()

    subscriber = SubscriberFactory(email="soft@example.org")
    services.subscriber_unsubscribe(subscriber=subscriber)
    services.subscriber_suppress(email="soft@example.org", reason="complained")
    assert Suppression.objects.get(email_hash=subscriber.email_hash).reason == "complained"

    with pytest.raises(ValueError):
        services.subscriber_suppress(email="x@example.org", reason="annoyed")


def test_sendable_means_active_confirmed_and_not_suppressed(topics):
    active = SubscriberFactory()
    SubscriberFactory(pending=True)
    SubscriberFactory(status=Subscriber.Status.PAUSED)
    SubscriberFactory(status=Subscriber.Status.UNSUBSCRIBED)
    SubscriberFactory(status=Subscriber.Status.ACTIVE, confirmed_at=None)
    suppressed = SubscriberFactory()
    Suppression.objects.create(
        email_hash=suppressed.email_hash, reason="manual", created_at=suppressed.created_at
    )
    assert list(subscribers_sendable()) == [active]


def test_pause_and_resume_guard_their_states(topics):
    pending = SubscriberFactory(pending=True)
    with pytest.raises(ValidationError):
        services.subscriber_pause(subscriber=pending)
    with pytest.raises(ValidationError):
        services.subscriber_resume(subscriber=pending)
    active = SubscriberFactory()
    services.subscriber_resume(subscriber=active)  # already active: nothing to do
    services.subscriber_pause(subscriber=active)
    services.subscriber_pause(subscriber=active)  # twice is fine
    active.refresh_from_db()
    assert active.status == Subscriber.Status.PAUSED
    assert active not in subscribers_sendable()


def test_its_export_holds_the_profile_and_feedback_and_erase_removes_them(topics, embedding):
    subscriber = SubscriberFactory(email="reader@example.org")
    profiles.profile_update(
        subscriber=subscriber,
        interests="robot hands",
        follows=["Pieter Abbeel"],
        muted=["nft"],
        focus=60,
    )
    liked, disliked = PaperFactory(title="A liked paper"), PaperFactory(title="A disliked one")
    profiles.feedback_record(subscriber=subscriber, paper=liked, value=1)
    profiles.feedback_record(subscriber=subscriber, paper=disliked, value=-1)

    data = services.subscriber_export(subscriber=subscriber)

    personal = data["personalization"]
    assert personal["what_i_work_on"] == "robot hands"
    assert (personal["follows"], personal["muted_keywords"], personal["focus"]) == (
        ["Pieter Abbeel"],
        ["nft"],
        60,
    )
    assert personal["interest_vector_model"] == embedding.MODEL_NAME
    assert {(f["paper"], f["arxiv_id"], f["value"]) for f in data["feedback"]} == {
        ("A liked paper", liked.arxiv_id, "more like this"),
        ("A disliked one", disliked.arxiv_id, "less like this"),
    }
    assert all(f["created_at"] for f in data["feedback"])

    services.subscriber_erase(subscriber=subscriber)

    assert not Profile.objects.exists()
    assert not Feedback.objects.exists()
    assert Paper.objects.count() == 2  # the papers are not theirs
