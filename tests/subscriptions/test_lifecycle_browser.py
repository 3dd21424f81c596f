"""'Email me my link' and change of address, as a person does them, in headless Chromium at a
phone's width and a desktop's. A PNG of every step goes to test-artifacts/lifecycle/
(git-ignored)."""

from __future__ import annotations

import re

import pytest

from config.outbox import outbox_list
from subscriptions.models import Subscriber
from tests.external import ROOT
from tests.factories import SubscriberFactory
from tests.subscriptions.test_browser import UNLABELLED

ARTIFACTS = ROOT / "test-artifacts" / "lifecycle"


def _mail_to(address: str, subject: str):
    found = [m for m in outbox_list() if m.to == address and m.subject == subject]
    assert found, f"no “{subject}” to {address} in {[(m.to, m.subject) for m in outbox_list()]}"
    return found[0]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [375, 1280])
def test_a_reader_gets_their_link_and_moves_to_a_new_address(live_server, browser_page, width):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    old, new = f"old-{width}@example.org", f"new-{width}@example.net"
    subscriber = SubscriberFactory(email=old)
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {name}"
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        page.screenshot(path=ARTIFACTS / f"{width}-{next(step):02d}-{name}.png", full_page=True)

    # Lost the link: from the front page to "Email me my link".
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Email me my link").click()
    expect(page.get_by_role("heading", name="Email me my link")).to_be_visible()
    shot("my-link-form")
    page.get_by_label("Email address").fill(old.upper())
    page.get_by_role("button", name="Email me my link").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    shot("my-link-sent")

    message = _mail_to(old, "Your Paperboy preferences link")
    preferences = re.search(r"http://\S+/p/\S+/", message.body("plain")).group(0)
    page.goto("about:blank")
    page.set_content(message.body("html"))
    shot("my-link-email")

    # The preference center: change of address.
    page.goto(preferences)
    expect(page.get_by_role("heading", name="Email address")).to_be_visible()
    page.get_by_label("New email address").fill(new)
    page.get_by_role("button", name="Change my address").click()
    expect(page.get_by_text(f"We sent a link to {new}")).to_be_visible()
    page.get_by_role("heading", name="Email address").scroll_into_view_if_needed()
    shot("address-asked")
    subscriber.refresh_from_db()
    assert subscriber.email == old  # the old address works until the new one confirms

    confirm = _mail_to(new, "Confirm your new address for Paperboy")
    link = re.search(r"http://\S+/address/\S+/", confirm.body("plain")).group(0)
    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm your new address")).to_be_visible()
    shot("address-confirm")
    page.get_by_role("button", name="Use this address").click()
    expect(page.get_by_role("heading", name="Your address is changed")).to_be_visible()
    shot("address-changed")

    subscriber.refresh_from_db()
    assert subscriber.email == new
    assert Subscriber.objects.filter(email=old).count() == 0
    notice = _mail_to(old, "Your Paperboy address was changed")
    assert new in notice.body("plain")
    page.get_by_role("link", name="Manage your preferences").click()
    expect(page.get_by_text(f"Digests go to {new}")).to_be_visible()
