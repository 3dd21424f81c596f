"""ANYMAIL_ESP=smtp: Django's SMTP backend (newsletter/smtp.py) against a local SMTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from devtools.fakes.smtp import FakeSmtp
from newsletter.models import Delivery, Issue
from newsletter.services.previews import digest_preview
from newsletter.services.sending import (
    ClaimUnsettled,
    TransientSendError,
    deliveries_send_chunk,
    deliveries_sweep,
)
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(settings):
    with FakeSmtp() as fake:
        settings.ANYMAIL_ESP = "smtp"
        settings.EMAIL_BACKEND = "newsletter.smtp.SmtpEmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", fake.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.SITE_URL = "https://paperboy.example.org"
        yield fake


def _bodies(message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if not part.is_multipart()
    }


def test_each_reader_gets_their_own_copy(smtp, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(3)]
    # Each answer takes a round trip's time, so the three copies are in flight together however
    # slowly the machine starts the threads (answered at once, one could finish before the
    # last thread starts, which then reuses its connection).
    smtp.counters.answer_delay = 0.3
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 3

        assert smtp.state.connections == 3  # each copy in flight beside the others
        assert smtp.state.pipelined == 3  # MAIL, RCPT and DATA of each in one round trip
        by_to = {m["to"][0]: m["message"] for m in smtp.state.messages}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            message = by_to[reader.email]
            assert message["To"] == reader.email  # nobody sees another reader's address
            link = unsubscribe_url(reader)
            assert message["List-Unsubscribe"].strip() == f"<{link}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert message["X-Paperboy-Delivery"] == str(delivery.pk)
            assert delivery.status == Delivery.Status.SENT
            assert delivery.provider_message_id == message["Message-ID"]
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            bodies = _bodies(message)
            assert bodies["text/html"].replace("\r\n", "\n") == preview.html.replace("\r\n", "\n")
            assert "{{" not in bodies["text/plain"] and link in bodies["text/plain"]
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_a_recipient_refused_at_rcpt_fails_alone(smtp, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["robotics"]])
    smtp.state.refused.add("gone@example.org")
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 2  # both answered

    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert (gone.status, gone.last_error) == (
        Delivery.Status.FAILED,
        "provider rejected this recipient",
    )
    assert Delivery.objects.get(subscriber__email="kept@example.org").status == "sent"
    assert smtp.state.recipients() == ["kept@example.org"]


def test_a_temporary_failure_is_retried_exactly_once(smtp, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    smtp.state.failures.append("451 4.3.0 try again later")

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    # The copy answered 451 was not taken; the other, sent beside it (SEND_CONCURRENCY), was.
    beside = len(smtp.state.messages)
    assert beside <= 1
    assert deliveries_send_chunk(issue_id=issue.pk) == 0  # held for the retry

    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2 - beside
    assert sorted(smtp.state.recipients()) == sorted(r.email for r in readers)


def test_a_permanent_failure_fails_the_message(smtp, day_batch, sending):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    smtp.state.failures.append("554 5.7.1 relay denied")
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    [delivery] = Delivery.objects.filter(issue=issue)
    assert delivery.status == Delivery.Status.FAILED and "554" in delivery.last_error


def test_an_unreachable_server_is_transient(smtp, day_batch, sending, settings):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    settings.EMAIL_PORT = 1
    issue = sending()
    with pytest.raises(TransientSendError):
        deliveries_send_chunk(issue_id=issue.pk)
    assert Delivery.objects.get(issue=issue).status == Delivery.Status.SENDING


def test_a_lost_answer_is_never_resent_blindly(smtp, day_batch, sending, settings):
    SubscriberFactory(email="first@example.org", topics=[day_batch.topics["agents"]])
    issue = sending()
    smtp.state.drop_after_data = 1  # the server takes the message and hangs up

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()

    delivery = Delivery.objects.get(issue=issue)
    assert delivery.status == Delivery.Status.UNKNOWN  # for an operator: SMTP cannot be asked
    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert smtp.state.recipients() == ["first@example.org"]  # exactly once


def test_the_send_rate_paces_each_message_as_it_goes_on_the_wire(
    smtp, day_batch, sending, settings, redis_url
):
    settings.SEND_CONCURRENCY = 1  # one connection a chunk, reused message after message
    settings.SEND_RATE_PER_SECOND = 2
    for _ in range(5):
        SubscriberFactory(topics=[day_batch.topics["robotics"]])
    issue = sending()

    # A chunk is never larger than the second's limit: three chunks of 2, 2 and 1.
    assert sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(3)) == 5
    # Each message's turn is taken once its bytes are built, right before they are written:
    # the server never sees more than the limit in any second, and five take two seconds.
    arrivals = sorted(when for when, _ in smtp.counters.arrivals)
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 1.9, arrivals
    for start in arrivals:
        assert sum(1 for when in arrivals if start <= when < start + 1.0) <= 2, arrivals
    # Each chunk's messages, one call each under a send rate, share one connection.
    assert smtp.state.connections == 3
