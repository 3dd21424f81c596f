"""👍/👎 as a reader gives it, in headless Chromium: with JavaScript (no tap) and without (one).

PNGs at 375 px and 1280 px go to test-artifacts/browser/feedback/ (git-ignored).
"""

from __future__ import annotations

import pytest

from subscriptions.links import feedback_url
from subscriptions.models import Feedback
from tests.external import ROOT
from tests.factories import PaperFactory, SubscriberFactory, TopicFactory
from tests.subscriptions.conftest import without_seeded_topics
from tests.subscriptions.test_browser import UNLABELLED

ARTIFACTS = ROOT / "test-artifacts" / "browser" / "feedback"
WIDTHS = (375, 1280)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_records_feedback_without_a_tap_with_one_tap_without_js_and_resets(
    live_server, browser_page
):
    from playwright.sync_api import expect

    without_seeded_topics()
    subscriber = SubscriberFactory(topics=[TopicFactory(name="Robotics", slug="robotics")])
    folding = PaperFactory(title="Robots That Fold Laundry")
    walking = PaperFactory(title="Quadrupeds on Ice")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    shots: list[str] = []

    def shot(page, name: str) -> None:
        assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {name}"
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
        shots.append(name)

    # With JavaScript: opening the link is all it takes.
    page = browser_page
    page.goto(feedback_url(subscriber, folding.pk, 1))
    expect(page.get_by_text("Saved. We will show you more papers like this.")).to_be_visible()
    shot(page, "saved")
    [feedback] = Feedback.objects.all()
    assert (feedback.paper_id, feedback.value) == (folding.pk, 1)

    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_role("heading", name="Undone")).to_be_visible()
    shot(page, "undone")
    assert not Feedback.objects.exists()

    # Without JavaScript: the page asks, and one tap records.
    context = page.context.browser.new_context(java_script_enabled=False)
    try:
        nojs = context.new_page()
        nojs.goto(feedback_url(subscriber, walking.pk, -1))
        expect(nojs.get_by_role("heading", level=1)).to_have_text(
            "Less like this: Quadrupeds on Ice"
        )
        shot(nojs, "confirm-without-js")
        assert not Feedback.objects.exists()
        nojs.get_by_role("button", name="Confirm: less like this").click()
        expect(nojs.get_by_text("Saved. We will show you fewer papers like this.")).to_be_visible()
        assert Feedback.objects.get().value == -1

        # The preference center lists it; reset forgets it.
        nojs.get_by_role("link", name="See what you liked and disliked").click()
        feedback_section = nojs.locator("section", has=nojs.locator("#feedback-heading"))
        expect(feedback_section.get_by_text("Quadrupeds on Ice")).to_be_visible()
        shot(nojs, "preferences-with-feedback")
        nojs.get_by_role("button", name="Reset my personalization").click()
        expect(nojs.get_by_text("Your personalization is reset")).to_be_visible()
        expect(feedback_section.get_by_text("You have not rated any paper yet.")).to_be_visible()
        shot(nojs, "preferences-reset")
        assert not Feedback.objects.exists()
    finally:
        context.close()

    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == sorted(
        f"{name}-{width}.png" for name in shots for width in WIDTHS
    )
