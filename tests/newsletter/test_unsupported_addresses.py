"""The send path and addresses stored before the address rules applied."""

from __future__ import annotations

import pytest
from django.core import mail

from newsletter.models import Delivery
from newsletter.services.issues import issue_create, issue_start
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_it_sends_to_the_others_when_a_stored_address_cannot_be_carried(
    day_batch, settings, django_capture_on_commit_callbacks
):
    """A row stored before the rules applied fails alone; its chunk goes out."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    agents = [day_batch.topics["agents"]]
    SubscriberFactory(email="reader@example.org", topics=agents)
    for legacy in ('"a\x01b"@example.net', '"x,evil@example.com"@example.net'):
        SubscriberFactory(email=legacy, topics=agents)
    issue = issue_create(batch=day_batch.batch)

    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue)

    assert [to for message in mail.outbox for to in message.to] == ["reader@example.org"]
    rows = {d.subscriber.email: d for d in Delivery.objects.filter(issue=issue)}
    assert rows["reader@example.org"].status == Delivery.Status.SENT
    for legacy in ('"a\x01b"@example.net', '"x,evil@example.com"@example.net'):
        assert rows[legacy].status == Delivery.Status.FAILED
        assert rows[legacy].last_error.startswith("address not supported: ")
