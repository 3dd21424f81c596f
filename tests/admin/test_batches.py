"""An editor curates a day's batch: approve, pin, hide, reorder, re-fetch, send now, cancel."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail

from digests.models import BatchEntry, DailyBatch
from digests.services import batch_ingest
from newsletter.models import Delivery, Issue
from newsletter.services.issues import issue_create
from tests.admin.conftest import changeform_data, entry_prefix, logged
from tests.digests.conftest import API_SAMPLE
from tests.factories import BatchEntryFactory, DailyBatchFactory, SubscriberFactory
from tests.newsletter.conftest import DAY

pytestmark = pytest.mark.django_db

LIST = "/admin/digests/dailybatch/"


def change_url(batch) -> str:
    return f"/admin/digests/dailybatch/{batch.pk}/change/"


def draft_batch(n: int = 3) -> DailyBatch:
    batch = DailyBatchFactory(date=DAY, status=DailyBatch.Status.DRAFT)
    for rank in range(1, n + 1):
        BatchEntryFactory(batch=batch, rank=rank)
    return batch


def ordered(batch) -> list[int]:
    return list(batch.entries.order_by("rank").values_list("pk", flat=True))


def test_it_lists_batches_by_date_with_status_and_counts(editor_client):
    batch = draft_batch(3)
    BatchEntry.objects.filter(pk=ordered(batch)[0]).update(hidden=True)
    BatchEntry.objects.filter(pk=ordered(batch)[1]).update(pinned=True)
    page = editor_client.get(LIST)
    assert page.status_code == 200
    row = page.context["cl"].result_list.get(pk=batch.pk)
    assert (row._papers, row._visible, row._pinned, row._hidden) == (3, 2, 1, 1)
    assert b"Draft" in page.content and b"March 10, 2026" in page.content


def test_it_approves_as_an_editor_and_logs_it(editor_client, editor):
    batch = draft_batch()
    response = editor_client.post(LIST, {"action": "approve", "_selected_action": [batch.pk]})
    assert response.status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.approved_by) == (DailyBatch.Status.APPROVED, editor)
    assert logged(editor, batch) == ["Approved"]


def test_it_pins_hides_and_annotates_entries_from_the_change_page(editor_client, editor):
    batch = draft_batch()
    first, second, third = (BatchEntry.objects.get(pk=pk) for pk in ordered(batch))
    unchanged = editor_client.post(
        change_url(batch), changeform_data(editor_client.get(change_url(batch)))
    )
    assert unchanged.status_code == 302 and logged(editor, batch) == ["No fields changed."]
    page = editor_client.get(change_url(batch))
    data = changeform_data(page)
    data[f"{entry_prefix(page, third)}-pinned"] = "on"
    data[f"{entry_prefix(page, first)}-hidden"] = "on"
    data[f"{entry_prefix(page, second)}-editor_note"] = "Great figures"
    response = editor_client.post(change_url(batch), data)

    assert response.status_code == 302, response.context["errors"]
    flags = {e.pk: (e.pinned, e.hidden, e.editor_note) for e in batch.entries.all()}
    assert flags == {
        first.pk: (False, True, ""),
        second.pk: (False, False, "Great figures"),
        third.pk: (True, False, ""),
    }
    message = logged(editor, batch)[-1]
    assert "pinned" in message.lower() and "hidden" in message.lower()


def test_it_reorders_by_the_typed_ranks_and_keeps_the_order_on_a_refetch(editor_client, settings):
    settings.DIGEST_SOURCE = "file"
    settings.DIGEST_SOURCE_FILE = str(API_SAMPLE)
    batch_ingest(day=DAY)
    batch = DailyBatch.objects.get(date=DAY)
    before = ordered(batch)
    last = BatchEntry.objects.get(pk=before[-1])

    page = editor_client.get(change_url(batch))
    data = changeform_data(page)
    data[f"{entry_prefix(page, last)}-rank"] = "0"  # to the top
    response = editor_client.post(change_url(batch), data)

    assert response.status_code == 302, response.context["errors"]
    assert ordered(batch) == [last.pk, *before[:-1]]
    assert list(batch.entries.order_by("rank").values_list("rank", flat=True)) == list(
        range(1, len(before) + 1)
    )
    # Re-fetching the day from upstream keeps the editor's order.
    response = editor_client.post(LIST, {"action": "refetch", "_selected_action": [batch.pk]})
    assert response.status_code == 302
    assert batch.runs.count() == 2
    assert ordered(batch) == [last.pk, *before[:-1]]


def test_it_refuses_to_hide_every_paper_of_an_approved_batch(editor_client):
    batch = draft_batch(2)
    batch.status = DailyBatch.Status.APPROVED
    batch.save()
    page = editor_client.get(change_url(batch))
    data = changeform_data(page)
    for entry in batch.entries.all():
        data[f"{entry_prefix(page, entry)}-hidden"] = "on"
    response = editor_client.post(change_url(batch), data)
    assert response.status_code == 200
    assert b"at least one visible paper" in response.content
    assert not batch.entries.filter(hidden=True).exists()


def test_it_refetches_a_day_from_upstream(editor_client, editor, settings):
    settings.DIGEST_SOURCE = "file"
    settings.DIGEST_SOURCE_FILE = str(API_SAMPLE)
    batch = DailyBatchFactory(date=dt.date(2026, 5, 8), status=DailyBatch.Status.EMPTY)
    response = editor_client.post(
        LIST, {"action": "refetch", "_selected_action": [batch.pk]}, follow=True
    )
    batch.refresh_from_db()
    assert batch.status == DailyBatch.Status.DRAFT and batch.entries.count() > 0
    assert b"new" in response.content
    assert logged(editor, batch)[0].startswith("Re-fetched: 2026-05-08 from file")


def test_it_sends_now_after_a_confirmation_and_only_once(
    editor_client, editor, day_batch, on_commit
):
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    batch = day_batch.batch
    send_url = f"/admin/digests/dailybatch/{batch.pk}/send/"

    # From the list, the action leads to the confirmation page; nothing is sent yet.
    response = editor_client.post(LIST, {"action": "send_now", "_selected_action": [batch.pk]})
    assert response.status_code == 302 and response["Location"] == send_url
    confirm = editor_client.get(send_url)
    assert confirm.status_code == 200 and b"Yes, send the digest now" in confirm.content
    assert not Issue.objects.exists() and mail.outbox == []

    with on_commit():
        response = editor_client.post(send_url)
    issue = Issue.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/newsletter/issue/{issue.pk}/change/"
    assert [m.to for m in mail.outbox] == [[reader.email]]
    assert Delivery.objects.get().status == Delivery.Status.SENT
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT

    # A second click (or a stale confirmation tab) sends nothing.
    with on_commit():
        again = editor_client.post(send_url, follow=True)
    assert b"already sent" in again.content
    assert len(mail.outbox) == 1 and Issue.objects.count() == 1
    assert logged(editor, batch) == [f"Sent now: issue {issue.pk} to 1"]


def test_it_does_not_send_a_draft(editor_client, on_commit):
    batch = draft_batch()
    SubscriberFactory()
    with on_commit():
        response = editor_client.post(f"/admin/digests/dailybatch/{batch.pk}/send/", follow=True)
    assert b"Only an approved batch can be sent" in response.content
    assert not Issue.objects.exists() and mail.outbox == []


def test_it_cancels_a_scheduled_send(editor_client, editor, day_batch):
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    other = DailyBatchFactory(date=DAY + dt.timedelta(days=1), status=DailyBatch.Status.APPROVED)
    BatchEntryFactory(batch=other)
    issue = issue_create(batch=day_batch.batch)  # planned, not started

    response = editor_client.post(
        LIST, {"action": "cancel_send", "_selected_action": [day_batch.batch.pk, other.pk]}
    )

    assert response.status_code == 302
    issue.refresh_from_db()
    other.refresh_from_db()
    assert issue.status == Issue.Status.CANCELLED
    # No issue yet: the approved batch goes back to draft, so the daily job skips it.
    assert other.status == DailyBatch.Status.DRAFT
    assert logged(editor, day_batch.batch) == [f"Cancelled issue {issue.pk} before sending"]
    assert logged(editor, other) == ["Cancelled the scheduled send: back to draft"]
    # And a cancelled day cannot be sent now either.
    page = editor_client.get(f"/admin/digests/dailybatch/{day_batch.batch.pk}/send/", follow=True)
    assert b"already cancelled" in page.content


def test_it_freezes_the_entries_once_the_issue_exists(editor_client, day_batch):
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    issue_create(batch=day_batch.batch)
    page = editor_client.get(change_url(day_batch.batch))
    [entries] = [i for i in page.context["inline_admin_formsets"] if i.opts.model is BatchEntry]
    assert not entries.has_change_permission
    # A crafted post is ignored too: planned deliveries must match what was previewed.
    data = changeform_data(page)
    for entry in day_batch.batch.entries.all():
        data[f"{entry_prefix(page, entry)}-hidden"] = "on"
    editor_client.post(change_url(day_batch.batch), data)
    assert not day_batch.batch.entries.filter(hidden=True).exists()
