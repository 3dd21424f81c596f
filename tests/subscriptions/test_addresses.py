"""Which addresses Paperboy accepts: one set of rules for the form, the import and sending."""

from __future__ import annotations

import csv
import io
from html import escape

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from subscriptions.addresses import email_normalize, email_problem
from subscriptions.csv_io import IMPORT_CONSENTED, subscribers_import_csv
from subscriptions.models import Subscriber
from subscriptions.services import subscriber_import

pytestmark = pytest.mark.django_db

# (what someone types, what the refusal must say is not supported)
UNSUPPORTED = [
    ('"a\x01b"@example.net', "control characters"),
    ('"x,evil@example.com"@example.net', "quotation marks"),
    ('"quoted local"@example.org', "quotation marks"),
    ("tab\there@example.org", "control characters"),
    ("a b@example.org", "spaces"),
    ("x,evil@example.com", 'the character ","'),
    ("x@evil.example@example.net", 'the character "@"'),
    ("(comment)reader@example.org", 'the character "("'),
    ("rëader@example.org", "letters outside A-Z"),
    ("reader.@example.org", "a dot at the start or end"),
    ("re..ader@example.org", "two in a row"),
    ("@example.org", "nothing before the @"),
]
SUPPORTED = [
    ("Reader@Example.org", "reader@example.org"),
    ("ada.lovelace+digest@Bücher.example", "ada.lovelace+digest@xn--bcher-kva.example"),
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("{curly}|pipe~@example.org", "{curly}|pipe~@example.org"),
]


@pytest.mark.parametrize(("typed", "why"), UNSUPPORTED)
def test_its_form_refuses_what_the_send_path_cannot_carry_and_says_why(signup, typed, why):
    response = signup(typed)

    assert response.status_code == 400
    body = response.content.decode()
    assert "cannot send to addresses with" in body
    assert escape(why) in body
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize(("typed", "stored"), SUPPORTED)
def test_its_form_takes_plain_addresses_in_their_normal_form(signup, typed, stored):
    assert signup(typed).status_code == 200
    assert Subscriber.objects.get().email == stored


@pytest.mark.parametrize(("typed", "why"), UNSUPPORTED)
def test_its_import_refuses_the_same_addresses(topics, typed, why):
    with pytest.raises(ValidationError) as refused:
        subscriber_import(email=typed, topics=topics[:1], consent_note="a list")
    assert why in refused.value.messages[0]

    out = io.StringIO()
    csv.writer(out).writerow(["email"])
    csv.writer(out).writerow([typed])
    report = subscribers_import_csv(
        text=out.getvalue(), topics=topics[:1], mode=IMPORT_CONSENTED, consent_note="a list"
    )
    assert report.created == []
    assert [reason for _, _, reason in report.invalid] == [refused.value.messages[0]]
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(("typed", "why"), UNSUPPORTED)
def test_its_send_path_applies_the_same_rules(typed, why):
    problem = email_problem(typed)
    assert problem is not None and why in problem
    for _, stored in SUPPORTED:
        assert email_problem(stored) is None
        assert email_normalize(stored) == stored
