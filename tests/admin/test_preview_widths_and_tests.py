"""The preview at phone and desktop width, a pin's note, and where a test may be sent."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from django.core import mail

from digests.models import BatchEntry
from tests.admin.test_preview import preview_url
from tests.external import ROOT
from tests.factories import SubscriberFactory, UserFactory

pytestmark = pytest.mark.django_db


def page_of(editor_client, batch, reader):
    response = editor_client.get(preview_url(batch), {"subscriber": reader.pk})
    return BeautifulSoup(response.content.decode(), "html.parser")


def test_it_shows_the_email_at_phone_and_desktop_width(editor_client, day_batch):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    soup = page_of(editor_client, day_batch.batch, reader)
    phone, desktop = soup.select_one("#preview-html-phone"), soup.select_one("#preview-html")
    assert "pb-preview-phone" in phone["class"] and "pb-preview-desktop" in desktop["class"]
    assert phone["srcdoc"] == desktop["srcdoc"] and "Paper r1" in phone["srcdoc"]
    assert phone.has_attr("sandbox") and desktop.has_attr("sandbox")
    css = (ROOT / "static" / "paperboy" / "admin.css").read_text()
    assert ".pb-preview-frame.pb-preview-phone { width: 375px; }" in css


def test_a_pin_outside_the_subscribers_topics_is_in_the_preview_with_a_note(
    editor_client, day_batch
):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    soup = page_of(editor_client, day_batch.batch, reader)
    assert "Paper v1" not in soup.select_one("#preview-html")["srcdoc"]
    assert soup.select_one("#preview-pins") is None

    BatchEntry.objects.filter(paper=day_batch.papers["v1"]).update(pinned=True)
    soup = page_of(editor_client, day_batch.batch, reader)
    assert "Paper v1" in soup.select_one("#preview-html")["srcdoc"]
    note = " ".join(soup.select_one("#preview-pins").get_text().split())
    assert "Paper v1" in note and "only because it is pinned" in note

    # A pin that matches their topics anyway needs no note.
    BatchEntry.objects.filter(paper=day_batch.papers["v1"]).update(pinned=False)
    BatchEntry.objects.filter(paper=day_batch.papers["r1"]).update(pinned=True)
    assert page_of(editor_client, day_batch.batch, reader).select_one("#preview-pins") is None


def send_test(editor_client, batch, reader, to):
    url = f"{preview_url(batch)}?subscriber={reader.pk}"
    return editor_client.post(
        url, {"subscriber": reader.pk, "send_test": "1", "to": to}, follow=True
    )


def test_a_test_goes_to_a_team_address_and_never_to_anyone_else(
    editor_client, editor, day_batch, settings
):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    UserFactory(username="colleague", email="colleague@paperboy.localhost", is_staff=True)
    UserFactory(
        username="former", email="former@paperboy.localhost", is_staff=True, is_active=False
    )
    settings.PREVIEW_TEST_RECIPIENTS = ["team@paperboy.localhost"]

    refused = send_test(editor_client, day_batch.batch, reader, "stranger@example.org")
    assert not mail.outbox
    assert b"Not sent: stranger@example.org is not allowed for test sends" in refused.content
    send_test(editor_client, day_batch.batch, reader, "former@paperboy.localhost")
    assert not mail.outbox

    for allowed in ("Colleague@paperboy.localhost", "team@paperboy.localhost", editor.email):
        response = send_test(editor_client, day_batch.batch, reader, allowed)
        assert f"Test sent to {allowed}".encode() in response.content
    assert [m.to for m in mail.outbox] == [
        ["Colleague@paperboy.localhost"],
        ["team@paperboy.localhost"],
        [editor.email],
    ]
    assert all(m.subject.startswith("[Test] ") for m in mail.outbox)
