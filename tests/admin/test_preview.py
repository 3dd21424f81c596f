"""Preview as a subscriber: what the editor sees is what the subscriber gets."""

from __future__ import annotations

import html
import re

import pytest
import time_machine
from bs4 import BeautifulSoup
from django.core import mail
from django.utils import timezone

from newsletter.composition import merge_fields_apply
from newsletter.services.previews import digest_preview
from tests.admin.conftest import logged
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def preview_url(batch) -> str:
    return f"/admin/digests/dailybatch/{batch.pk}/preview/"


def srcdoc(page) -> str:
    """The HTML inside the preview's iframe, as the browser reads the attribute."""
    match = re.search(rb'<iframe[^>]*id="preview-html"[^>]*srcdoc="([^"]*)"', page.content)
    assert match, "no preview frame"
    return html.unescape(match.group(1).decode())


def test_it_finds_subscribers_by_email(editor_client, day_batch):
    SubscriberFactory(email="ada@example.org")
    SubscriberFactory(email="alan@example.org")
    page = editor_client.get(preview_url(day_batch.batch), {"q": "ada@"})
    assert page.status_code == 200
    assert [s.email for s in page.context["matches"]] == ["ada@example.org"]


def test_it_shows_subject_headers_size_text_and_a_sandboxed_frame(editor_client, day_batch):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    # Frozen: feedback links carry the second they were signed in.
    with time_machine.travel(timezone.now(), tick=False):
        page = editor_client.get(preview_url(day_batch.batch), {"subscriber": reader.pk})
        preview = page.context["preview"]
        assert preview == digest_preview(batch=day_batch.batch, subscriber=reader)
    content = page.content.decode()
    assert html.escape(preview.subject) in content
    assert f"{preview.size_kb} KB" in content
    assert "List-Unsubscribe" in content
    assert re.search(r"<iframe[^>]*\ssandbox[\s>]", content)
    assert srcdoc(page) == preview.html
    assert html.escape(preview.text, quote=False) in content
    assert "Paper r1" in srcdoc(page) and "Paper v1" not in srcdoc(page)
    # Each paper sits inside the email's layout table (a bare fragment once lost its <tr>).
    papers = BeautifulSoup(preview.html, "html.parser").select("td.paper")
    assert len(papers) == len(preview.selection) == 4
    assert all(p.find_parent("table", class_="container") for p in papers)


def test_it_says_so_when_nothing_matches(editor_client, day_batch):
    reader = SubscriberFactory()  # follows a topic with no paper today
    page = editor_client.get(preview_url(day_batch.batch), {"subscriber": reader.pk})
    assert page.context["preview"] is None and b'id="preview-none"' in page.content


def test_the_preview_is_byte_identical_to_the_sent_html(editor_client, day_batch, on_commit):
    reader = SubscriberFactory(email="reader@example.org", topics=[day_batch.topics["agents"]])
    # Frozen: feedback links carry the second they were signed in.
    with time_machine.travel(timezone.now(), tick=False):
        page = editor_client.get(preview_url(day_batch.batch), {"subscriber": reader.pk})
        shown = srcdoc(page)
        with on_commit():
            editor_client.post(f"/admin/digests/dailybatch/{day_batch.batch.pk}/send/")

    [sent] = mail.outbox
    # Anymail's test backend keeps the batch message; the provider fills the merge fields.
    [(body, mimetype)] = sent.alternatives
    assert mimetype == "text/html"
    received = merge_fields_apply(body, sent.merge_data[reader.email], html_escape=True)
    assert received.encode() == shown.encode()
    text = merge_fields_apply(sent.body, sent.merge_data[reader.email], html_escape=False)
    assert text == page.context["preview"].text


def test_it_sends_the_preview_to_the_editor_without_the_unsubscribe_header(
    editor_client, editor, day_batch
):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    url = f"{preview_url(day_batch.batch)}?subscriber={reader.pk}"
    # Frozen: feedback links carry the second they were signed in.
    with time_machine.travel(timezone.now(), tick=False):
        response = editor_client.post(url, {"subscriber": reader.pk, "send_test": "1"})
        assert response.status_code == 302
        [test] = mail.outbox
        preview = digest_preview(batch=day_batch.batch, subscriber=reader)
    assert test.to == [editor.email]
    assert test.subject == f"[Test] {preview.subject}"
    assert test.alternatives[0][0] == preview.html
    # The one-click header would let the editor's mail client unsubscribe the reader.
    assert not any(k.lower().startswith("list-unsub") for k in test.extra_headers)
    assert logged(editor, day_batch.batch) == [
        f"Sent a test of subscriber {reader.pk}'s digest to {editor.email}"
    ]


def test_a_hidden_paper_is_gone_from_the_preview(editor_client, day_batch):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    entry = day_batch.batch.entries.get(paper=day_batch.papers["r1"])
    assert "Paper r1" in srcdoc(
        editor_client.get(preview_url(day_batch.batch), {"subscriber": reader.pk})
    )
    entry.hidden = True
    entry.save()
    shown = srcdoc(editor_client.get(preview_url(day_batch.batch), {"subscriber": reader.pk}))
    assert "Paper r1" not in shown and "Paper r2" in shown
