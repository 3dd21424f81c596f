"""The public archive's topic pages and Atom feeds, checked against RFC 4287 with an XML
parser (no feed validator is installable here without the network)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import pytest
from django.utils.html import escape, strip_tags

from digests.models import BatchEntry
from newsletter.models import Issue
from newsletter.services.issues import issue_create, issue_start
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def published(day_batch, django_capture_on_commit_callbacks, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    for name, paper in day_batch.papers.items():
        paper.abstract = f"What paper {name} found, in a sentence & more."
        paper.authors = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"]
        paper.save(update_fields=["abstract", "authors"])
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=day_batch.batch))
    return day_batch


def _rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_valid_atom(body: bytes) -> ET.Element:
    """RFC 4287's required elements: feed id, title, updated, author (on the feed or every
    entry), a self link; each entry's id, title, updated, and a summary or content. Ids are
    absolute IRIs and unique; dates are RFC 3339."""
    feed = ET.fromstring(body)  # noqa: S314 - our own server's output
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert len(feed.findall(f"{ATOM}{name}")) == 1, f"feed needs one atom:{name}"
    assert feed.findtext(f"{ATOM}id").startswith("http")
    _rfc3339(feed.findtext(f"{ATOM}updated"))
    feed_author = feed.find(f"{ATOM}author")
    assert feed_author is None or feed_author.findtext(f"{ATOM}name")
    links = {link.get("rel", "alternate"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links["self"].startswith("http") and links["alternate"].startswith("http")
    ids = []
    for entry in feed.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, f"entry needs one atom:{name}"
        _rfc3339(entry.findtext(f"{ATOM}updated"))
        assert feed_author is not None or entry.find(f"{ATOM}author") is not None
        assert entry.find(f"{ATOM}summary") is not None or entry.find(f"{ATOM}content") is not None
        assert entry.find(f"{ATOM}link").get("href").startswith("http")
        ids.append(entry.findtext(f"{ATOM}id"))
    assert all(i.startswith("http") for i in ids) and len(set(ids)) == len(ids)
    return feed


def test_the_site_feed_is_valid_atom_with_a_summary_of_each_paper(client, published):
    response = client.get("/digests/feed.atom")
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = assert_valid_atom(response.content)
    assert feed.findtext(f"{ATOM}author/{ATOM}name") == "Paperboy"
    [entry] = feed.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "Trending papers · Tue 10 Mar 2026 · 7 papers"
    summary = entry.find(f"{ATOM}summary")
    assert summary.get("type") == "html"
    markup = summary.text  # HTML, escaped once inside the XML
    assert "; " not in strip_tags(markup).replace("&amp;", "&")  # not titles joined by ";"
    for name in published.papers:
        assert f">Paper {name}</a></h3>" in markup
        assert f"What paper {name} found, in a sentence &amp; more." in markup
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in markup


def test_a_topic_feed_has_only_that_topics_papers(client, published):
    feed = assert_valid_atom(client.get("/digests/topics/robotics/feed.atom").content)
    assert feed.findtext(f"{ATOM}title") == f"Paperboy: {published.topics['robotics'].name}"
    [entry] = feed.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}id").endswith("/digests/topics/robotics/#day-2026-03-10")
    markup = entry.findtext(f"{ATOM}summary")
    for name in ("r1", "r2", "r3", "ra"):
        assert f"Paper {name}<" in markup
    for name in ("a1", "a2", "v1"):
        assert f"Paper {name}<" not in markup
    assert client.get("/digests/topics/no-such-topic/feed.atom").status_code == 404


def test_a_topic_page_lists_its_published_papers_and_offers_its_feed(client, published):
    BatchEntry.objects.filter(paper=published.papers["r2"]).update(hidden=True)
    page = client.get("/digests/topics/robotics/")
    assert page.status_code == 200
    body = page.content.decode()
    name = escape(published.topics["robotics"].name)
    assert (
        f'<link rel="alternate" type="application/atom+xml" title="Paperboy: {name}" '
        'href="/digests/topics/robotics/feed.atom">' in body
    )
    assert 'id="day-2026-03-10"' in body
    assert "Paper r1" in body and "Paper ra" in body
    assert "Paper r2" not in body  # hidden by an editor
    assert "Paper a1" not in body and "Paper v1" not in body
    # Unpublished days are not shown.
    Issue.objects.update(status=Issue.Status.SCHEDULED)
    assert "Paper r1" not in client.get("/digests/topics/robotics/").content.decode()
    assert client.get("/digests/topics/nope/").status_code == 404


@pytest.mark.parametrize("path", ["/", "/digests/", "/digests/2026-03-10/", "/link/"])
def test_pages_offer_the_feed_for_discovery(client, published, path):
    body = client.get(path).content.decode()
    assert (
        '<link rel="alternate" type="application/atom+xml" title="Paperboy: every digest" '
        'href="/digests/feed.atom">' in body
    )


def test_the_archive_links_each_topic_page(client, published):
    index = client.get("/digests/").content.decode()
    assert 'href="/digests/topics/robotics/"' in index
    assert 'href="/digests/topics/robotics/feed.atom"' in index
    day = client.get("/digests/2026-03-10/").content.decode()
    assert f'href="/digests/topics/agents/">{escape(published.topics["agents"].name)}</a>' in day
