from __future__ import annotations

import datetime as dt

import pytest

from digests.models import DailyBatch
from digests.services import batch_ingest
from tests.digests.conftest import API_SAMPLE

pytestmark = pytest.mark.django_db


def test_admin_shows_a_failed_batch_with_its_counts_and_error(admin_client, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    batch_ingest(day=dt.date(2026, 5, 8), path=broken)
    batch = DailyBatch.objects.get()

    listing = admin_client.get("/admin/digests/dailybatch/")
    page = admin_client.get(f"/admin/digests/dailybatch/{batch.pk}/change/")

    assert listing.status_code == 200 and b"Failed" in listing.content
    assert page.status_code == 200
    assert b"Fetch failed: invalid JSON" in page.content


def test_admin_approve_action_approves_drafts(admin_client, admin_user):
    batch_ingest(day=dt.date(2026, 5, 8), path=API_SAMPLE)
    batch = DailyBatch.objects.get()

    response = admin_client.post(
        "/admin/digests/dailybatch/",
        {"action": "approve", "_selected_action": [batch.pk]},
        follow=True,
    )

    assert response.status_code == 200
    batch.refresh_from_db()
    assert (batch.status, batch.approved_by) == (DailyBatch.Status.APPROVED, admin_user)
    assert admin_client.get(f"/admin/digests/dailybatch/{batch.pk}/change/").status_code == 200
    paper_id = batch.entries.first().paper_id
    assert admin_client.get(f"/admin/digests/paper/{paper_id}/change/").status_code == 200
    assert admin_client.get("/admin/digests/topic/").status_code == 200


def test_an_editor_makes_the_weeks_batch_from_an_approved_day(admin_client):
    batch_ingest(day=dt.date(2026, 5, 8), path=API_SAMPLE)
    day = DailyBatch.objects.get()
    draft_answer = admin_client.post(
        "/admin/digests/dailybatch/",
        {"action": "compose_week", "_selected_action": [day.pk]},
        follow=True,
    )
    assert b"choose an approved day" in draft_answer.content
    assert not DailyBatch.objects.filter(kind=DailyBatch.Kind.WEEKLY).exists()

    DailyBatch.objects.filter(pk=day.pk).update(status=DailyBatch.Status.APPROVED)
    response = admin_client.post(
        "/admin/digests/dailybatch/",
        {"action": "compose_week", "_selected_action": [day.pk]},
        follow=True,
    )

    week = DailyBatch.objects.get(kind=DailyBatch.Kind.WEEKLY)
    assert (week.date, week.status) == (day.date, DailyBatch.Status.APPROVED)
    assert week.entry_count == day.entries.filter(hidden=False).count() > 0
    assert f"Week to 2026-05-08 (approved): {week.entry_count} papers".encode() in (
        response.content
    )
    listing = admin_client.get("/admin/digests/dailybatch/?kind__exact=weekly").content
    assert b"Weekly" in listing
