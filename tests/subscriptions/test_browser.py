"""The whole subscription, as a person does it, in headless Chromium against the live server.

A PNG of every page goes to test-artifacts/browser/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config.outbox import outbox_list
from subscriptions.models import Subscriber
from tests.external import ROOT
from tests.factories import TopicFactory
from tests.subscriptions.conftest import without_seeded_topics

ARTIFACTS = ROOT / "test-artifacts" / "browser"

# Every visible form control must have a label (the honeypot too: it is hidden by CSS only).
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), button')]
  .filter(el => el.tagName === 'INPUT' ? el.labels.length === 0 : !el.textContent.trim())
  .map(el => el.name || el.outerHTML)"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_subscribes_confirms_and_manages_preferences_in_a_browser(live_server, browser_page):
    from playwright.sync_api import expect

    without_seeded_topics()
    llm = TopicFactory(name="Language models", slug="llm", position=1)
    cv = TopicFactory(name="Computer vision", slug="cv", position=2)
    TopicFactory(name="Robotics", slug="robotics", position=3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()

    page = browser_page
    page.set_viewport_size({"width": 1000, "height": 800})
    shots: list[str] = []

    def shot(name: str) -> None:
        assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {name}"
        page.screenshot(path=ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png", full_page=True)
        shots.append(name)

    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("trending research")
    shot("landing")

    page.get_by_label("Email address").fill("reader@example.org")
    page.get_by_label("Language models").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    shot("check-inbox")

    [message] = outbox_list()
    assert message.to == "reader@example.org"
    link = re.search(r"http://\S+/confirm/\S+/", message.body("plain")).group(0)
    # As a mail client shows it: set_content writes into the current document, which would
    # keep the site's Content-Security-Policy (and block the email's inline styles).
    page.goto("about:blank")
    page.set_content(message.body("html"))
    shot("confirmation-email")

    page.goto(link)
    shot("confirm")
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()
    shot("confirmed")
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE

    page.get_by_role("link", name="Manage your preferences").click()
    expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
    expect(page.get_by_label("Language models")).to_be_checked()
    shot("preferences")

    page.get_by_label("Computer vision").check()
    page.get_by_label("Language models").uncheck()
    page.get_by_role("button", name="Save topics").click()
    expect(page.get_by_text("Your topics are saved")).to_be_visible()
    shot("topics-saved")
    subscriber = Subscriber.objects.get()
    assert list(subscriber.topics.all()) == [cv]
    assert llm not in subscriber.topics.all()

    page.get_by_role("button", name="Pause digests").click()
    expect(page.locator("#status")).to_have_text("Paused")
    shot("paused")
    assert Subscriber.objects.get().status == Subscriber.Status.PAUSED

    page.get_by_role("button", name="Resume digests").click()
    expect(page.locator("#status")).to_have_text("Active")
    shot("resumed")
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert data["profile"]["email"] == "reader@example.org"
    assert data["consent_records"][0]["confirmed_at"]

    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    expect(page.locator("#status")).to_have_text("Unsubscribed")
    expect(page.get_by_role("button", name="Subscribe again")).to_be_visible()
    shot("unsubscribed")
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED

    page.emulate_media(color_scheme="dark")
    page.goto(live_server.url + "/")
    shot("landing-dark")

    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == [
        f"{i:02d}-{name}.png" for i, name in enumerate(shots, 1)
    ]
    assert len(shots) == 11
