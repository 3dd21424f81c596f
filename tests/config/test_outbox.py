from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest
from anymail.message import AnymailMessage
from django.core.mail import EmailMultiAlternatives, get_connection
from django.test import override_settings
from django.urls import clear_url_caches

from newsletter.composition import merge_fields_apply

OUTBOX = "config.outbox.OutboxEmailBackend"


def _read_all(directory):
    return [
        email.message_from_bytes(p.read_bytes(), policy=default_policy)
        for p in sorted(directory.glob("*.eml"))
    ]


def test_it_writes_one_eml_file_per_message(settings):
    message = EmailMultiAlternatives("Hello", "plain body", to=["reader@example.org"])
    message.attach_alternative("<p>html body</p>", "text/html")
    assert get_connection(OUTBOX).send_messages([message]) == 1

    [parsed] = _read_all(settings.EMAIL_OUTBOX_DIR)
    assert parsed["To"] == "reader@example.org"
    assert parsed["Subject"] == "Hello"
    assert parsed.get_body(("plain",)).get_content().strip() == "plain body"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>html body</p>"


def test_it_expands_a_batch_message_per_recipient_with_merge_fields(settings):
    message = AnymailMessage("Digest", "Leave: {{url}}", to=["a@example.org", "B <b@example.org>"])
    message.attach_alternative('<a href="{{url}}">leave</a>', "text/html")
    message.merge_data = {
        "a@example.org": {"url": "https://s.test/u/a?x=1&y=2"},
        "b@example.org": {"url": "https://s.test/u/b"},
    }
    message.merge_headers = {
        "a@example.org": {"List-Unsubscribe": "<https://s.test/u/a>"},
        "b@example.org": {"List-Unsubscribe": "<https://s.test/u/b>"},
    }
    get_connection(OUTBOX).send_messages([message])

    by_to = {m["To"]: m for m in _read_all(settings.EMAIL_OUTBOX_DIR)}
    assert set(by_to) == {"a@example.org", "B <b@example.org>"}  # nobody sees the other
    a = by_to["a@example.org"]
    assert a["List-Unsubscribe"] == "<https://s.test/u/a>"
    assert a.get_body(("plain",)).get_content().strip() == "Leave: https://s.test/u/a?x=1&y=2"
    assert 'href="https://s.test/u/a?x=1&amp;y=2"' in a.get_body(("html",)).get_content()
    assert "https://s.test/u/b" in by_to["B <b@example.org>"].get_body(("plain",)).get_content()
    statuses = message.anymail_status.recipients
    assert {k: v.status for k, v in statuses.items()} == {
        "a@example.org": "sent",
        "b@example.org": "sent",
    }


def test_it_fills_merge_fields_and_keeps_unknown_ones_as_written():
    body = "<a href='{{url}}'>{{ name }}</a> {{ other }}{{url}}"
    data = {"url": "https://s.test/u?a=1&b=<2>", "name": "Ada"}

    filled = merge_fields_apply(body, data, html_escape=True)
    assert filled == (
        "<a href='https://s.test/u?a=1&amp;b=&lt;2&gt;'>Ada</a> {{ other }}"
        "https://s.test/u?a=1&amp;b=&lt;2&gt;"
    )
    # The same body again (cached split) with another recipient's values, unescaped.
    assert merge_fields_apply(body, {"url": "u2"}, html_escape=False) == (
        "<a href='u2'>{{ name }}</a> {{ other }}u2"
    )
    assert merge_fields_apply("no fields here", data, html_escape=True) == "no fields here"


@pytest.fixture
def debug_urls(settings):
    settings.DEBUG = True
    clear_url_caches()
    import importlib

    import config.urls

    importlib.reload(config.urls)
    yield
    settings.DEBUG = False
    importlib.reload(config.urls)
    clear_url_caches()


def test_it_lists_and_shows_the_outbox_in_debug(client, settings, debug_urls):
    with override_settings(EMAIL_BACKEND=OUTBOX):
        message = EmailMultiAlternatives("Confirm <now>", "text part", to=["r@example.org"])
        message.attach_alternative("<p>html part</p>", "text/html")
        message.send()
    name = next(settings.EMAIL_OUTBOX_DIR.glob("*.eml")).name

    listing = client.get("/outbox/")
    assert listing.status_code == 200
    assert f"/outbox/{name}/" in listing.content.decode()
    assert "Confirm &lt;now&gt;" in listing.content.decode()

    detail = client.get(f"/outbox/{name}/").content.decode()
    assert "text part" in detail
    assert "&lt;p&gt;html part&lt;/p&gt;" in detail  # inside a sandboxed srcdoc, escaped
    assert client.get("/outbox/..%2Fpaperboy.sqlite3/").status_code == 404


@pytest.mark.django_db
def test_it_does_not_serve_the_outbox_outside_debug(client):
    assert client.get("/outbox/").status_code == 404
