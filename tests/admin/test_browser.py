"""An editor's morning in headless Chromium: log in, open today's batch, hide a paper, preview
as a subscriber (the paper is gone), approve, send, and watch the counts move.

A PNG of every step goes to test-artifacts/admin/ (git-ignored) for a human to look at.
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

ARTIFACTS = ROOT / "test-artifacts" / "admin"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_editor_curates_previews_approves_and_sends_in_a_browser(live_server, browser_page):
    from playwright.sync_api import expect

    robots = TopicFactory(name="Browser robots", slug="browser-robots")
    batch = DailyBatchFactory(date=timezone.localdate(), status=DailyBatch.Status.DRAFT)
    titles = ["Walking robots learn fast", "Robots that fold laundry", "Grasping in clutter"]
    for rank, title in enumerate(titles, start=1):
        paper = PaperFactory(title=title, upvotes=100 - rank)
        PaperTopic.objects.create(paper=paper, topic=robots, reason="test")
        BatchEntryFactory(batch=batch, paper=paper, rank=rank)
    reader = SubscriberFactory(email="reader@example.org", topics=[robots])
    editor = UserFactory(username="eddie", email="eddie@paperboy.localhost")
    editor.set_password("correct horse")
    editor.save()
    editor.groups.add(editors_group())
    hidden_title = titles[0]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()

    page = browser_page
    shots: list[str] = []

    def shot(name: str) -> None:
        page.screenshot(path=ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png", full_page=True)
        shots.append(name)

    def batch_row():
        return page.locator(f"#result_list tbody tr:has(input.action-select[value='{batch.pk}'])")

    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill("eddie")
    page.get_by_label("Password").fill("correct horse")
    shot("login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Dashboard: deliveries, signups, bounces and clicks")).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    shot("admin-index")

    page.get_by_role("link", name="Daily batches").first.click()
    expect(batch_row().locator("td.field-hidden_count")).to_have_text("0")
    expect(batch_row().locator("td.field-visible_count")).to_have_text("3")
    shot("batches")

    batch_row().locator("th a").click()
    row = page.locator("tr.form-row", has_text=hidden_title)
    row.locator("input[name$='-hidden']").check()
    shot("hide-paper")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(batch_row().locator("td.field-hidden_count")).to_have_text("1")
    expect(batch_row().locator("td.field-visible_count")).to_have_text("2")
    shot("hidden-count")

    batch_row().locator("th a").click()
    page.get_by_role("link", name="Preview", exact=True).click()
    page.get_by_label("Subscriber email").fill("reader@")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="reader@example.org").click()
    frame = page.frame_locator("#preview-html")
    expect(frame.get_by_text(titles[1])).to_be_visible()
    expect(frame.get_by_text(hidden_title)).to_have_count(0)
    expect(page.locator("#preview-text")).not_to_contain_text(hidden_title)
    expect(page.locator("#preview-size")).to_contain_text("KB")
    shot("preview")

    page.goto(live_server.url + "/admin/digests/dailybatch/")
    batch_row().locator("input.action-select").check()
    page.locator("select[name=action]").select_option("approve")
    page.locator("button[name=index]").click()
    expect(page.locator(".messagelist")).to_contain_text("approved")
    expect(batch_row().locator("td.field-status")).to_have_text("Approved")
    shot("approved")

    batch_row().locator("th a").click()
    page.get_by_role("link", name="Send now…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Send the digest of")
    shot("send-confirm")
    assert not Issue.objects.exists()
    page.get_by_role("button", name="Yes, send the digest now").click()
    expect(page.locator(".messagelist")).to_contain_text("Sending the digest")
    shot("issue")

    page.goto(live_server.url + "/admin/newsletter/issue/")
    issue_row = page.locator("#result_list tbody tr").first
    expect(issue_row.locator("td.field-status")).to_have_text("Sent")
    expect(issue_row.locator("td.field-count_sent")).to_have_text("1")
    expect(issue_row.locator("td.field-count_failed")).to_have_text("0")
    shot("issues")

    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("svg.pb-chart")).to_have_count(3)
    shot("dashboard")

    delivery = Delivery.objects.get()
    assert delivery.subscriber == reader and delivery.status == Delivery.Status.SENT
    hidden_id = batch.entries.get(paper__title=hidden_title).paper_id
    assert hidden_id not in papers_of(delivery)
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == [
        f"{i:02d}-{name}.png" for i, name in enumerate(shots, 1)
    ]
    assert len(shots) == 11
