"""ANYMAIL_ESP=sparkpost: Anymail's SparkPost backend over HTTP, against its fake."""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone

from devtools.fakes.sparkpost import API_KEY, FakeSparkPost
from newsletter.models import Delivery
from newsletter.services.previews import digest_preview
from newsletter.services.sending import TransientSendError, deliveries_send_chunk
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sparkpost(settings):
    with FakeSparkPost() as fake:
        settings.ANYMAIL_ESP = "sparkpost"
        settings.EMAIL_BACKEND = "anymail.backends.sparkpost.EmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "SPARKPOST_API_KEY": API_KEY,
            "SPARKPOST_API_URL": fake.url,
        }
        settings.SITE_URL = "https://paperboy.example.org"
        yield fake


def test_each_reader_gets_their_own_filled_copy(sparkpost, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 2

        sent = sparkpost.state.transmissions
        by_to = {t["recipients"][0]["address"]["email"]: t for t in sent}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            transmission = by_to[reader.email]
            content = transmission["content"]
            assert content["headers"]["List-Unsubscribe"] == f"<{unsubscribe_url(reader)}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert transmission["metadata"]["delivery"] == str(delivery.pk)
            assert (delivery.status, delivery.provider_message_id) == ("sent", transmission["_id"])
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert (content["html"], content["text"]) == (preview.html, preview.text)


def test_a_suppressed_address_fails_alone(sparkpost, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["robotics"]])
    sparkpost.state.suppressed.add("gone@example.org")
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 1
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "suppressed" in gone.last_error
    assert sparkpost.state.recipients() == ["kept@example.org"]


@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(sparkpost, day_batch, sending, status):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    sparkpost.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    # The copy answered so was not taken; the other, sent beside it (SEND_CONCURRENCY), was.
    beside = len(sparkpost.state.transmissions)
    assert beside <= 1
    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2 - beside
    assert sorted(sparkpost.state.recipients()) == sorted(r.email for r in readers)
