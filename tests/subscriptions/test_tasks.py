from __future__ import annotations

import pytest
from anymail.exceptions import AnymailAPIError
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from subscriptions.services import FORM_EMAIL_CONFIRM
from subscriptions.tasks import send_form_email
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


class _ProviderError(AnymailAPIError):
    def __init__(self, status_code):
        super().__init__("provider said no")
        self.status_code = status_code


def _failing_send(errors):
    real_send = EmailMultiAlternatives.send
    calls = []

    def send(self, *args, **kwargs):
        calls.append(self.to)
        if errors:
            raise errors.pop(0)
        return real_send(self, *args, **kwargs)

    return send, calls


def test_it_retries_transient_send_errors(monkeypatch):
    subscriber = SubscriberFactory(pending=True)
    send, calls = _failing_send([ConnectionError("reset"), _ProviderError(503)])
    monkeypatch.setattr(EmailMultiAlternatives, "send", send)
    # Eagerly, each retry runs at once; apply() follows a Retry only when errors do not propagate.
    monkeypatch.setitem(send_form_email.app.conf, "task_eager_propagates", False)
    result = send_form_email.apply(args=[subscriber.pk, FORM_EMAIL_CONFIRM], throw=False)
    assert result.successful()
    assert len(calls) == 3
    assert len(mail.outbox) == 1


def test_it_does_not_retry_a_refusal(monkeypatch):
    subscriber = SubscriberFactory(pending=True)
    send, calls = _failing_send([_ProviderError(422)])
    monkeypatch.setattr(EmailMultiAlternatives, "send", send)
    result = send_form_email.apply(args=[subscriber.pk, FORM_EMAIL_CONFIRM], throw=False)
    assert result.failed()
    assert isinstance(result.result, AnymailAPIError)
    assert len(calls) == 1
    assert mail.outbox == []


def test_it_sends_nothing_once_the_subscriber_confirmed_or_left():
    confirmed = SubscriberFactory()
    send_form_email.delay(confirmed.pk, FORM_EMAIL_CONFIRM)
    send_form_email.delay(confirmed.pk + 1000, FORM_EMAIL_CONFIRM)
    assert mail.outbox == []
