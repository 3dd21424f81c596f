"""The editor's morning in headless Chromium, on a phone and on a desktop, by visible labels only:
log in, open today's draft from the admin's front page, add a note, pin a paper, reorder, approve,
preview at both widths, send, and read the dashboard.

No page may scroll sideways. A PNG of every step goes to test-artifacts/editor/<width>/
(git-ignored) for a human to look at.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from digests.models import DailyBatch, PaperTopic
from newsletter.models import Delivery, Issue
from tests.admin.conftest import editors_group
from tests.external import ROOT
from tests.factories import (
    BatchEntryFactory,
    DailyBatchFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
    UserFactory,
)
from tests.newsletter.conftest import papers_of

ARTIFACTS = ROOT / "test-artifacts" / "editor"
ROBOT_PAPERS = ["Walking robots learn fast", "Robots that fold laundry", "Grasping in clutter"]
PINNED = "A survey of protein folding"  # no robots in it: the reader gets it only as a pin
NOTE = "Read the ablations: they explain the speed-up."


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [375, 1280])
def test_an_editor_s_morning_by_visible_labels(live_server, browser_page, width):
    from playwright.sync_api import expect

    robots = TopicFactory(name="Robots", slug="robots")
    biology = TopicFactory(name="Biology", slug="biology")
    today = timezone.localdate()
    batch = DailyBatchFactory(date=today, status=DailyBatch.Status.DRAFT)
    for rank, (title, topic) in enumerate(
        [*((t, robots) for t in ROBOT_PAPERS), (PINNED, biology)], start=1
    ):
        paper = PaperFactory(title=title, upvotes=100 - rank)
        PaperTopic.objects.create(paper=paper, topic=topic, reason="test")
        BatchEntryFactory(batch=batch, paper=paper, rank=rank)
    reader = SubscriberFactory(email="reader@example.org", topics=[robots])
    editor = UserFactory(username="eddie", email="eddie@paperboy.localhost")
    editor.set_password("correct horse")
    editor.save()
    editor.groups.add(editors_group())

    folder = ARTIFACTS / str(width)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    shots: list[str] = []

    def shot(name: str) -> None:
        # Every step at this width: nothing wider than the screen, then a picture of it.
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page scrolls {overflow} px sideways at {width} px"
        page.screenshot(path=folder / f"{len(shots) + 1:02d}-{name}.png", full_page=True)
        shots.append(name)

    # Log in.
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill("eddie")
    page.get_by_label("Password").fill("correct horse")
    shot("login")
    page.get_by_role("button", name="Log in").click()

    # The front page says what needs doing and leads to today's draft.
    expect(page.get_by_text("Today's batch is a draft: review it and approve it")).to_be_visible()
    shot("index")
    page.get_by_role("link", name=f"{today:%Y-%m-%d}, Draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Change daily batch")
    shot("draft")

    # A note, a pin, and the last robots paper moved up one place.
    page.get_by_label(f"Editor's note: {ROBOT_PAPERS[1]}").fill(NOTE)
    page.get_by_label(f"Pin: {PINNED}").check()
    page.get_by_role("button", name=f"Move up: {ROBOT_PAPERS[2]}").click()
    expect(page.get_by_role("status")).to_have_text(
        "Moved to position 2. Save to keep the new order."
    )
    shot("curated")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.get_by_label(f"Rank: {ROBOT_PAPERS[2]}")).to_have_value("2")
    expect(page.get_by_label(f"Pin: {PINNED}")).to_be_checked()
    shot("saved")

    # Approve on the batch itself.
    page.get_by_role("button", name="Approve").click()
    expect(
        page.get_by_text("goes out at the scheduled time unless you send it now")
    ).to_be_visible()
    shot("approved")

    # Preview as the reader, at phone and desktop width.
    page.get_by_role("link", name="Preview", exact=True).click()
    page.get_by_label("Subscriber email").fill("reader@")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="reader@example.org").click()
    expect(page.get_by_text("Phone (375 px)")).to_be_visible()
    expect(page.get_by_text("Desktop (720 px)")).to_be_visible()
    for frame_title in ("The email on a phone", "The email on a desktop"):
        frame = page.frame_locator(f"iframe[title^='{frame_title}']")
        expect(frame.get_by_text(PINNED)).to_be_visible()
        expect(frame.get_by_text(f"Editor's note: {NOTE}")).to_be_visible()
    expect(page.get_by_text("Pinned, so sent to everyone:")).to_be_visible()
    if width >= 1280:
        # On a desktop screen the two widths sit side by side, not one under the other.
        phone = page.locator("iframe[title^='The email on a phone']").bounding_box()
        desktop = page.locator("iframe[title^='The email on a desktop']").bounding_box()
        assert phone["y"] == desktop["y"], "the two previews are stacked"
        assert phone["x"] + phone["width"] <= desktop["x"]
    shot("preview")
    # Chromium leaves an iframe below the first screen blank in a full-page picture: each
    # width also gets a picture of its own.
    for name in ("phone", "desktop"):
        frame = page.locator(f"iframe[title^='The email on a {name}']")
        frame.scroll_into_view_if_needed()
        frame.screenshot(path=folder / f"{len(shots) + 1:02d}-preview-{name}.png")
        shots.append(f"preview-{name}")
    # After a picture of an element Chromium ignores a click's own scrolling: back to the top.
    page.evaluate("window.scrollTo(0, 0)")

    # Send, after the confirmation page.
    page.get_by_role("link", name=f"Back to the batch of {batch.date:%Y-%m-%d}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Change daily batch")
    page.get_by_role("link", name="Send now…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Send the digest of")
    shot("send-confirm")
    assert not Issue.objects.exists()
    page.get_by_role("button", name="Yes, send the digest now").click()
    expect(page.locator(".messagelist")).to_contain_text("Sending the digest")
    shot("sent")

    # The dashboard, from the front page.
    page.get_by_role("link", name="Home").first.click()
    page.get_by_role("link", name="Dashboard: deliveries, signups, bounces and clicks").click()
    expect(page.get_by_role("img", name="Deliveries per day, last 30 days")).to_be_visible()
    expect(page.get_by_role("link", name="90 days")).to_be_visible()
    expect(page.locator(".pb-legend").first).to_contain_text("Sent (1 in all)")
    shot("dashboard")
    page.get_by_role("link", name="90 days").click()
    expect(page.get_by_role("img", name="Deliveries per day, last 90 days")).to_be_visible()
    shot("dashboard-90")

    delivery = Delivery.objects.get()
    assert delivery.subscriber == reader and delivery.status == Delivery.Status.SENT
    titles = dict(batch.entries.values_list("paper_id", "paper__title"))
    assert titles[papers_of(delivery)[0]] == PINNED  # a pin comes first, whatever the topics
    # The batch keeps the order the editor gave (the archive's order).
    assert list(batch.entries.order_by("rank").values_list("paper__title", flat=True)) == [
        ROBOT_PAPERS[0],
        ROBOT_PAPERS[2],
        ROBOT_PAPERS[1],
        PINNED,
    ]
    assert batch.entries.get(paper__title=ROBOT_PAPERS[1]).editor_note == NOTE
    assert sorted(p.name for p in folder.glob("*.png")) == [
        f"{i:02d}-{name}.png" for i, name in enumerate(shots, 1)
    ]
    assert len(shots) == 13
