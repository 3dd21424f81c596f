"""After a failed submit, the errors are summarised at the top of the form, focus goes there,
and each error links to its field: signup, preferences and erase; in Chromium at phone width."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from subscriptions.links import preferences_url
from tests.external import ROOT
from tests.factories import SubscriberFactory
from tests.subscriptions.helpers import path_of

pytestmark = pytest.mark.django_db


def summary_of(response, summary_id: str):
    soup = BeautifulSoup(response.content, "html.parser")
    heading = soup.find(id=summary_id)
    assert heading is not None, "no error summary"
    box = heading.find_parent(class_="error-summary")
    assert box["role"] == "alert"
    assert heading.has_attr("autofocus") and heading["tabindex"] == "-1"
    # The summary comes first in its form, before any field.
    form = box.find_parent("form")
    assert form.find(["input", "textarea", "fieldset"], type=lambda t: t != "hidden") is not None
    first_control = form.find(
        lambda t: (
            t.name in {"textarea", "fieldset"} or (t.name == "input" and t.get("type") != "hidden")
        )
    )
    assert box.sourceline <= first_control.sourceline
    links = {a["href"][1:]: a.get_text(" ", strip=True) for a in box.find_all("a")}
    for target in links:
        assert soup.find(id=target) is not None, (
            f"the summary links to #{target}, which is not there"
        )
    return links, soup


def test_it_summarises_signup_errors_linking_each_field(client, topics):
    response = client.post("/", {"email": "not an address", "consent_version": "1"})
    assert response.status_code == 400
    links, soup = summary_of(response, "signup-errors")
    assert "id_email" in links and links["id_email"].startswith("Email address:")
    assert "id_topics_0" in links  # a group of checkboxes: its first box
    assert soup.find(id="id_email")["aria-describedby"] == "email-errors"


def test_it_summarises_preference_errors(client, topics):
    subscriber = SubscriberFactory(email="reader@example.org", topics=[topics[0]])
    prefs = path_of(preferences_url(subscriber))
    response = client.post(prefs + "topics", {"interests": ""})
    assert response.status_code == 400
    links, _ = summary_of(response, "preferences-errors")
    assert list(links) == ["id_topics_0"]


def test_it_summarises_the_erase_error_and_describes_the_box(client, topics):
    subscriber = SubscriberFactory(email="reader@example.org", topics=[topics[0]])
    prefs = path_of(preferences_url(subscriber))
    response = client.post(prefs + "erase", {})
    assert response.status_code == 400
    links, soup = summary_of(response, "erase-summary")
    assert list(links) == ["id_confirm"]
    assert soup.find(id="id_confirm")["aria-describedby"] == "erase-errors"


def test_it_shows_no_summary_without_errors(client, topics):
    assert b"error-summary" not in client.get("/").content


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_moves_focus_to_the_summary_on_a_phone(live_server, browser_page):
    from playwright.sync_api import expect

    from tests.factories import TopicFactory
    from tests.subscriptions.conftest import without_seeded_topics

    without_seeded_topics()
    TopicFactory(name="Language models", slug="llm", position=1)
    page = browser_page
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(live_server.url + "/")
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Subscribe").click()
    summary = page.get_by_role("heading", name="There are 2 problems")
    expect(summary).to_be_focused()
    expect(summary).to_be_in_viewport()
    shots = ROOT / "test-artifacts" / "newcomer" / "errors"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shots / "phone-signup-errors.png")
    page.get_by_role("link", name="Email address:").click()
    expect(page.get_by_label("Email address")).to_be_focused()
    expect(page.get_by_label("Email address")).to_be_in_viewport()
