"""The real Anymail Postmark backend over HTTP, against the local fake Postmark API."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from anymail.exceptions import AnymailSerializationError
from anymail.message import AnymailMessage
from django.core.mail import get_connection
from django.utils import timezone

from devtools.fakes.postmark import TOKEN, FakePostmark
from newsletter.models import Delivery, Issue
from newsletter.services.previews import digest_preview
from newsletter.services.sending import TransientSendError, deliveries_send_chunk, deliveries_sweep
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def postmark(settings):
    with FakePostmark() as fake:
        settings.ANYMAIL_ESP = "postmark"
        settings.EMAIL_BACKEND = "newsletter.backends.PostmarkBatchEmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "POSTMARK_SERVER_TOKEN": TOKEN,
            "POSTMARK_API_URL": fake.url,
        }
        settings.SITE_URL = "https://paperboy.example.org"
        yield fake


def test_it_sends_one_message_per_recipient_with_their_own_links(postmark, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(3)]
    # Frozen: feedback links carry the second they were signed in, preview and send alike.
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 3

        assert postmark.state.calls["/email/batch"] == 1
        by_to = {m["To"]: m for m in postmark.state.messages}
        assert set(by_to) == {r.email for r in readers}  # each message names one recipient
        for reader in readers:
            message = by_to[reader.email]
            link = unsubscribe_url(reader)
            assert link in message["HtmlBody"] and link in message["TextBody"]
            assert "{{" not in message["HtmlBody"] + message["TextBody"]
            headers = {h["Name"]: h["Value"] for h in message["Headers"]}
            assert headers["List-Unsubscribe"] == f"<{link}>"
            assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            delivery = Delivery.objects.get(subscriber=reader)
            assert message["Metadata"]["delivery"] == str(delivery.pk)
            assert delivery.status == Delivery.Status.SENT
            assert delivery.provider_message_id == message["_MessageID"]
            assert message["Tag"] == "daily-digest"
            # What the editor previews is byte for byte what the provider was given.
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert preview.html == message["HtmlBody"] and preview.text == message["TextBody"]
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_it_records_a_per_recipient_rejection_and_sends_the_rest(postmark, day_batch, sending):
    kept = SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="inactive@example.org", topics=[day_batch.topics["robotics"]])
    postmark.state.inactive.add("inactive@example.org")
    issue = sending()

    deliveries_send_chunk(issue_id=issue.pk)

    rejected = Delivery.objects.get(subscriber__email="inactive@example.org")
    assert rejected.status == Delivery.Status.FAILED
    assert "rejected" in rejected.last_error
    assert Delivery.objects.get(subscriber=kept).status == Delivery.Status.SENT
    assert postmark.state.recipients() == ["kept@example.org"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_it_retries_a_transient_error_without_losing_or_duplicating(
    postmark, day_batch, sending, status
):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    postmark.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    if status == 429:
        assert raised.value.retry_after == 1.0  # the fake's Retry-After
    claim = raised.value.claim
    waiting = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENDING, claim=claim)
    assert waiting.count() == 2 and postmark.state.messages == []
    # The rows wait for this claim's retry: another worker does not take them meanwhile.
    assert deliveries_send_chunk(issue_id=issue.pk) == 0

    assert deliveries_send_chunk(issue_id=issue.pk, claim=claim) == 2
    assert sorted(postmark.state.recipients()) == sorted(r.email for r in readers)
    assert set(Delivery.objects.filter(issue=issue).values_list("attempts", flat=True)) == {2}


def test_it_fails_the_batch_on_a_permanent_error(postmark, day_batch, sending):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    postmark.state.token = "another-token"  # our key is refused: 401
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    [delivery] = Delivery.objects.filter(issue=issue)
    assert delivery.status == Delivery.Status.FAILED
    assert "refused" in delivery.last_error


def test_it_treats_a_refused_connection_as_transient(postmark, day_batch, sending, settings):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:1/"}
    issue = sending()
    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    delivery = Delivery.objects.get(issue=issue)
    assert (delivery.status, delivery.claim) == (Delivery.Status.SENDING, raised.value.claim)


def test_it_gives_up_on_a_row_after_its_last_attempt(postmark, day_batch, sending, settings):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    settings.DIGEST_MAX_ATTEMPTS = 2
    issue = sending()
    postmark.state.fail_next(500, 500)
    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 0
    delivery = Delivery.objects.get(issue=issue)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error.startswith("gave up after retries")


def test_it_settles_rows_a_dead_worker_left_by_asking_the_provider(
    postmark, day_batch, sending, settings, django_capture_on_commit_callbacks
):
    """A worker died after Postmark accepted its call but before recording it."""
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(4)]
    issue = sending()
    deliveries_send_chunk(issue_id=issue.pk)
    accepted = dict(Delivery.objects.values_list("pk", "provider_message_id"))
    # Roll two rows back to the state a crash mid-call leaves: claimed, nothing recorded.
    stuck = list(Delivery.objects.order_by("pk")[:2])
    unsent = readers[-1]
    Delivery.objects.filter(pk__in=[d.pk for d in stuck]).update(
        status=Delivery.Status.SENDING, provider_message_id=""
    )
    Delivery.objects.filter(subscriber=unsent).update(
        status=Delivery.Status.SENDING, claim="lost-claim", provider_message_id=""
    )
    postmark.state.messages[:] = [
        m for m in postmark.state.messages if m["To"] != unsent.email
    ]  # the provider never got that one
    issue.__class__.objects.filter(pk=issue.pk).update(status=Issue.Status.SENDING)
    # The crash was a lease ago: too long for the provider to accept that call still.
    long_ago = timezone.now() - timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    Delivery.objects.update(claimed_at=long_ago, handed_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        deliveries_sweep()

    for delivery in stuck:
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.SENT
        assert delivery.provider_message_id == accepted[delivery.pk]
    # The one the provider never saw went back to pending and was sent by the re-enqueued
    # chunk task: everyone has exactly one message.
    assert sorted(postmark.state.recipients()) == sorted(r.email for r in readers)
    assert Delivery.objects.get(subscriber=unsent).status == Delivery.Status.SENT


def test_a_late_answer_never_marks_rows_another_claim_now_owns(
    postmark, day_batch, sending, monkeypatch
):
    """A call answered after its rows were settled and claimed again by another worker."""
    from newsletter.services import sending as sending_module

    SubscriberFactory(topics=[day_batch.topics["agents"]])
    issue = sending()
    send = sending_module._send

    def answered_late(backend, messages):
        error = send(backend, messages)
        # Meanwhile the sweeper settled the rows and another worker took them as its claim.
        Delivery.objects.filter(issue=issue).update(claim="another-claim")
        return error

    monkeypatch.setattr(sending_module, "_send", answered_late)
    deliveries_send_chunk(issue_id=issue.pk)

    [delivery] = Delivery.objects.filter(issue=issue)
    assert (delivery.status, delivery.claim) == (Delivery.Status.SENDING, "another-claim")
    assert delivery.provider_message_id == ""


def test_the_sweeper_re_enqueues_only_an_issue_nobody_works_on(
    postmark, day_batch, sending, settings, django_capture_on_commit_callbacks
):
    [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(3)]
    issue = sending()
    settings.DIGEST_CLAIM_LEASE_SECONDS = 60
    busy = Delivery.objects.filter(issue=issue).first()
    Delivery.objects.filter(pk=busy.pk).update(claimed_at=timezone.now())  # a worker is on it

    with django_capture_on_commit_callbacks() as enqueued:
        deliveries_sweep()
    assert enqueued == []

    Delivery.objects.filter(pk=busy.pk).update(claimed_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks() as enqueued:
        deliveries_sweep()
    assert len(enqueued) == 1


def test_the_sweeper_sends_pending_rows_an_issue_marked_sent_still_holds(
    postmark, day_batch, sending, settings, django_capture_on_commit_callbacks
):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    issue = sending()
    settings.DIGEST_REQUEUE_SECONDS = 0
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT)  # rows still pending

    with django_capture_on_commit_callbacks(execute=True):
        deliveries_sweep()

    assert sorted(m["To"] for m in postmark.state.messages) == sorted(r.email for r in readers)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def _batch_message(subject: str, to: list[str], **extra) -> AnymailMessage:
    message = AnymailMessage(subject, "Hi {{name}}", "Paperboy <digest@paperboy.example.org>", to)
    message.merge_data = {address: {"name": f"reader {address}"} for address in to}
    for name, value in extra.items():
        setattr(message, name, value)
    return message


def test_it_sends_non_ascii_text_intact_as_utf8_json(postmark):
    subject = "Schrödinger's ∑ — 量子"
    message = _batch_message(subject, ["a@example.org", "b@example.org"])

    get_connection().send_messages([message])

    assert [m["Subject"] for m in postmark.state.messages] == [subject, subject]
    assert {m["TextBody"] for m in postmark.state.messages} == {
        "Hi reader a@example.org",
        "Hi reader b@example.org",
    }
    assert message.anymail_status.status == {"sent"}


def test_it_refuses_a_value_json_cannot_carry_before_calling_the_provider(postmark):
    message = _batch_message("Digest", ["a@example.org"], metadata={"delivery": object()})

    with pytest.raises(AnymailSerializationError):
        get_connection().send_messages([message, _batch_message("Other", ["b@example.org"])])
    assert postmark.state.calls["/email/batch"] == 0
