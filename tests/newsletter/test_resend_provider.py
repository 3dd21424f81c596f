"""ANYMAIL_ESP=resend: Paperboy's Resend backend (newsletter/resend.py, on Anymail's) over HTTP,
against devtools/fakes/resend.py.

Resend cannot merge fields into bodies rendered here, so each reader gets a filled copy of
their own (newsletter/services/single_sends.py); a claim's copies, up to 100, go out in one
``POST /emails/batch`` with permissive validation.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from devtools.fakes.resend import API_KEY
from newsletter.models import Delivery, Issue
from newsletter.services import rate
from newsletter.services.previews import digest_preview
from newsletter.services.sending import (
    DIGEST_TAG,
    ClaimUnsettled,
    TransientSendError,
    deliveries_send_chunk,
    deliveries_sweep,
)
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory
from tests.newsletter.test_send_rate import admissions

pytestmark = pytest.mark.django_db


def batch_calls(resend) -> int:
    return resend.counters.calls["/emails/batch"]


def test_each_reader_gets_their_own_filled_copy_all_in_one_call(resend, day_batch, sending):
    topics = day_batch.topics
    readers = [
        SubscriberFactory(topics=[topics["robotics"]]),
        SubscriberFactory(topics=[topics["agents"]]),
        SubscriberFactory(topics=[topics["robotics"]]),
        SubscriberFactory(topics=[topics["vision"]]),
    ]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 4

        # Three distinct contents, four readers: one call, one email of it each.
        assert resend.counters.calls == {"/emails/batch": 1}
        by_to = {m["to"][0]: m for m in resend.state.messages}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            message = by_to[reader.email]
            assert message["to"] == [reader.email]
            link = unsubscribe_url(reader)
            assert message["headers"]["List-Unsubscribe"] == f"<{link}>"
            assert message["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            delivery = Delivery.objects.get(subscriber=reader)
            metadata = json.loads(message["headers"]["X-Metadata"])
            assert metadata == {
                "issue": str(issue.pk),
                "claim": delivery.claim,
                "delivery": str(delivery.pk),
            }
            assert json.loads(message["headers"]["X-Tags"]) == [DIGEST_TAG]
            # The id Resend answered for this very email, read from the answer by position.
            assert delivery.status == Delivery.Status.SENT
            assert delivery.provider_message_id == message["_id"]
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert (message["subject"], message["html"], message["text"]) == (
                preview.subject,
                preview.html,
                preview.text,
            )
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_an_address_resend_refuses_fails_alone_and_the_ids_after_it_stay_right(
    resend, day_batch, sending
):
    for name in ("a-kept", "b-gone", "c-kept", "d-kept"):
        SubscriberFactory(email=f"{name}@example.org", topics=[day_batch.topics["robotics"]])
    resend.state.suppressed.add("b-gone@example.org")
    issue = sending()

    deliveries_send_chunk(issue_id=issue.pk)

    assert batch_calls(resend) == 1  # permissive: the others were created in the same call
    gone = Delivery.objects.get(subscriber__email="b-gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "not a deliverable" in gone.last_error
    ids = {m["to"][0]: m["_id"] for m in resend.state.messages}
    assert sorted(ids) == ["a-kept@example.org", "c-kept@example.org", "d-kept@example.org"]
    for delivery in Delivery.objects.exclude(pk=gone.pk).select_related("subscriber"):
        assert (delivery.status, delivery.provider_message_id) == (
            "sent",
            ids[delivery.subscriber.email],
        )


@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(resend, day_batch, sending, status):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(3)]
    issue = sending()
    resend.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    if status == 429:
        assert raised.value.retry_after == 1.0  # Resend's retry-after
    assert resend.state.messages == []  # the call was answered so: nothing of it was taken
    assert deliveries_send_chunk(issue_id=issue.pk) == 0  # held for the retry

    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 3
    assert batch_calls(resend) == 2
    assert sorted(resend.state.recipients()) == sorted(r.email for r in readers)


def test_a_refused_key_fails_the_rows(resend, day_batch, sending):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    resend.state.api_key = "re_another"
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    rows = Delivery.objects.filter(issue=issue)
    assert {d.status for d in rows} == {Delivery.Status.FAILED}
    assert all("invalid_api_key" in d.last_error for d in rows)


def test_a_call_answered_too_late_leaves_exactly_its_rows_unknown_never_resent(
    resend, day_batch, sending, settings
):
    settings.DIGEST_BATCH_SIZE = 2
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(5)]
    resend.state.answer_late = 1.0  # Resend took the call; the answer comes after our timeout
    issue = sending()

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    in_call = set(resend.state.recipients())
    assert len(in_call) == 2
    resend.state.answer_late = 0
    assert sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(2)) == 3  # the others
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()
        assert deliveries_send_chunk(issue_id=issue.pk) == 0

    unknown = Delivery.objects.filter(issue=issue, status=Delivery.Status.UNKNOWN)
    assert {d.subscriber.email for d in unknown} == in_call  # Resend cannot be asked
    sent = Delivery.objects.filter(issue=issue, status=Delivery.Status.SENT).count()
    assert sent == 3
    assert sorted(resend.state.recipients()) == sorted(r.email for r in readers)  # once each


def test_the_send_rate_spends_a_token_per_email_of_each_call(
    resend, day_batch, sending, settings, redis_url
):
    settings.SEND_RATE_PER_SECOND = 4
    for _ in range(10):
        SubscriberFactory(topics=[day_batch.topics["robotics"]])
    issue = sending()

    # A claim is never larger than the second's limit: calls of 4, 4 and 2 emails.
    assert sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(3)) == 10
    assert batch_calls(resend) == 3
    admitted = admissions(rate.limiter())
    assert [n for _, n in admitted] == [4, 4, 2]
    assert admitted[-1][0] - admitted[0][0] >= 1.9, admitted  # ten emails at four a second
    assert resend.counters.peak_per_second() <= 4


def test_more_than_a_hundred_messages_go_in_calls_of_a_hundred(resend, settings):
    messages = [
        mail.EmailMessage("Hello", f"Hi {i}", "from@example.org", [f"reader{i}@example.org"])
        for i in range(101)
    ]
    with mail.get_connection() as connection:
        assert connection.send_messages(messages) == 101

    assert resend.counters.calls == {"/emails/batch": 2}
    assert sorted(resend.state.recipients()) == sorted(m.to[0] for m in messages)
    assert all(m.anymail_status.status == {"queued"} for m in messages)


def test_a_message_a_batch_cannot_carry_goes_out_alone(resend, settings):
    plain = mail.EmailMessage("Hello", "Hi", "from@example.org", ["one@example.org"])
    attached = mail.EmailMessage("Hello", "Hi", "from@example.org", ["two@example.org"])
    attached.attach("notes.txt", "some notes", "text/plain")
    with mail.get_connection() as connection:
        assert connection.send_messages([plain, attached]) == 2

    assert resend.counters.calls == {"/emails/batch": 1, "/emails": 1}
    assert sorted(resend.state.recipients()) == ["one@example.org", "two@example.org"]


@pytest.mark.parametrize("mode", ["strict", "permissive"])
def test_the_fake_answers_a_batch_as_resend_documents_it(resend, mode):
    def email(to: str) -> dict:
        return {"from": "a@example.org", "to": [to], "subject": "s", "html": "<p>h</p>"}

    answer = httpx.post(
        f"{resend.url}emails/batch",
        json=[email("one@example.org"), email("not-an-address"), email("three@example.org")],
        headers={"Authorization": f"Bearer {API_KEY}", "x-batch-validation": mode},
    )

    if mode == "strict":  # one invalid email refuses the whole call
        assert answer.status_code == 422 and answer.json()["name"] == "validation_error"
        assert resend.state.messages == []
        return
    body = answer.json()
    assert answer.status_code == 200 and len(body["data"]) == 2
    assert [e["index"] for e in body["errors"]] == [1]
    assert [m["_id"] for m in resend.state.messages] == [d["id"] for d in body["data"]]
    assert resend.state.recipients() == ["one@example.org", "three@example.org"]
