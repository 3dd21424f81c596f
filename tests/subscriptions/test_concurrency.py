from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection

from subscriptions import services
from subscriptions.consent import CONSENT_VERSION
from subscriptions.models import ConsentRecord, Subscriber
from tests.external import require_postgres
from tests.factories import TopicFactory


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_subscriber_and_one_email_for_simultaneous_signups():
    require_postgres()
    topic = TopicFactory()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            barrier.wait(timeout=10)
            services.subscriber_subscribe(
                email="race@example.org",
                topics=[topic],
                ip="192.0.2.1",
                user_agent="t",
                form_version=CONSENT_VERSION,
            )
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert Subscriber.objects.count() == 1
    assert ConsentRecord.objects.count() == 1
    assert len(mail.outbox) == 1
