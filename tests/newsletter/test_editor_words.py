"""An editor's note on a paper and the batch's intro reach the email (both parts) and the
archive, escaped, in the editor's safe subset of formatting."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from digests.models import BatchEntry
from newsletter.models import Delivery
from newsletter.services.issues import issue_create, issue_start
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

INTRO = (
    "Good morning. Today is about **robots**.\n\n"
    "Read [the workshop notes](https://example.org/notes) <script>alert(1)</script>"
)


@pytest.fixture
def sent(day_batch, django_capture_on_commit_callbacks, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    batch = day_batch.batch
    batch.intro = INTRO
    batch.save(update_fields=["intro"])
    BatchEntry.objects.filter(paper=day_batch.papers["r1"]).update(
        editor_note="Read section 4 <b>first</b>."
    )
    SubscriberFactory(email="robo@example.org", topics=[day_batch.topics["robotics"]])
    from django.core import mail

    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=batch))
    assert Delivery.objects.get().status == Delivery.Status.SENT
    [message] = mail.outbox
    return day_batch, message


def test_the_email_carries_the_note_under_its_paper_and_the_intro_above_the_papers(sent):
    _day, message = sent
    html = message.alternatives[0][0]
    soup = BeautifulSoup(html, "html.parser")
    intro = soup.select_one("td.editorial-intro")
    assert intro is not None
    assert [p.get_text() for p in intro.find_all("p")] == [
        "Good morning. Today is about robots.",
        "Read the workshop notes <script>alert(1)</script>",
    ]
    assert intro.find("strong").get_text() == "robots"
    assert intro.find("a")["href"] == "https://example.org/notes"
    assert soup.find("script") is None
    # Above the papers: the intro comes before the first paper's title.
    assert html.index("Good morning") < html.index("Paper r1")

    notes = soup.select("p.note")
    assert len(notes) == 1
    assert notes[0].get_text() == "Editor's note: Read section 4 <b>first</b>."
    block = notes[0].find_parent("td", class_="paper")
    assert "Paper r1" in block.get_text()

    text = message.body
    assert "Good morning. Today is about robots." in text
    assert "the workshop notes (https://example.org/notes)" in text
    assert "Editor's note: Read section 4 <b>first</b>." in text
    assert text.index("Good morning") < text.index("Paper r1") < text.index("Editor's note")


def test_the_archive_shows_the_intro_and_the_note(client, sent):
    page = client.get("/digests/2026-03-10/")
    soup = BeautifulSoup(page.content.decode(), "html.parser")
    intro = soup.select_one("section.editorial")
    assert intro.find("a")["href"] == "https://example.org/notes"
    assert "<script>alert(1)</script>" in intro.get_text() and soup.find("script") is None
    [note] = soup.select("p.note")
    assert note.get_text() == "Editor's note: Read section 4 <b>first</b>."
    assert "Paper r1" in note.find_parent("article").get_text()


def test_without_intro_or_notes_nothing_is_added(day_batch, django_capture_on_commit_callbacks):
    from django.core import mail

    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=day_batch.batch))
    soup = BeautifulSoup(mail.outbox[0].alternatives[0][0], "html.parser")
    assert soup.select("td.editorial-intro, p.note") == []
    assert "Editor's note" not in soup.get_text()
    assert "Editor's note" not in mail.outbox[0].body
