"""The batch's own page: Approve, Send now, Preview and Re-fetch as buttons on it, ordering
by up/down (the no-JavaScript path of dragging), and the position given is the one kept."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from digests.models import BatchEntry, DailyBatch
from newsletter.services.issues import issue_create
from tests.admin.conftest import changeform_data, entry_prefix, logged
from tests.admin.test_batches import change_url, draft_batch, ordered
from tests.digests.conftest import API_SAMPLE
from tests.newsletter.conftest import DAY

pytestmark = pytest.mark.django_db


def buttons(response) -> list[str]:
    soup = BeautifulSoup(response.content.decode(), "html.parser")
    actions = soup.select_one("#batch-actions")
    return [" ".join(b.get_text().split()) for b in actions.select("a.button, button")]


def test_a_draft_shows_preview_approve_and_refetch_and_approve_works(editor_client, editor):
    batch = draft_batch()
    page = editor_client.get(change_url(batch))
    assert buttons(page) == ["Preview", "Approve", "Re-fetch from upstream"]
    response = editor_client.post(f"/admin/digests/dailybatch/{batch.pk}/approve/", follow=True)
    batch.refresh_from_db()
    assert batch.status == DailyBatch.Status.APPROVED and batch.approved_by == editor
    assert response.redirect_chain[-1][0] == change_url(batch)
    assert b"approved" in response.content
    assert buttons(response) == ["Preview", "Send now…", "Re-fetch from upstream"]
    assert logged(editor, batch) == ["Approved"]


def test_the_buttons_refuse_a_get_and_a_second_approval_says_why(editor_client):
    batch = draft_batch()
    assert editor_client.get(f"/admin/digests/dailybatch/{batch.pk}/approve/").status_code == 403
    editor_client.post(f"/admin/digests/dailybatch/{batch.pk}/approve/")
    again = editor_client.post(f"/admin/digests/dailybatch/{batch.pk}/approve/", follow=True)
    assert b"Only a draft batch can be approved" in again.content


def test_the_refetch_button_fetches_the_day(editor_client, editor, settings):
    settings.DIGEST_SOURCE = "file"
    settings.DIGEST_SOURCE_FILE = str(API_SAMPLE)
    from digests.services import batch_ingest

    batch_ingest(day=DAY)
    batch = DailyBatch.objects.get(date=DAY)
    response = editor_client.post(f"/admin/digests/dailybatch/{batch.pk}/refetch/", follow=True)
    assert batch.runs.count() == 2
    assert logged(editor, batch)[0].startswith("Re-fetched:")
    assert response.redirect_chain[-1][0] == change_url(batch)


def test_a_sent_batch_has_only_preview(editor_client):
    batch = draft_batch()
    batch.status = DailyBatch.Status.SENT
    batch.save()
    page = editor_client.get(change_url(batch))
    assert buttons(page) == ["Preview"]
    assert b'name="_move"' not in page.content


def test_the_down_button_without_javascript_moves_a_row_one_place(editor_client):
    batch = draft_batch(4)
    before = ordered(batch)
    page = editor_client.get(change_url(batch))
    data = changeform_data(page)
    data["_move"] = f"{before[1]}:down"
    response = editor_client.post(change_url(batch), data, follow=True)
    assert ordered(batch) == [before[0], before[2], before[1], before[3]]
    assert response.redirect_chain[-1][0] == change_url(batch)
    assert b"The new order is saved" in response.content
    data = changeform_data(editor_client.get(change_url(batch)))
    data["_move"] = f"{before[0]}:up"  # already first: nothing moves
    editor_client.post(change_url(batch), data)
    assert ordered(batch) == [before[0], before[2], before[1], before[3]]


@pytest.mark.parametrize(("moved", "typed"), [(4, 2), (2, 4), (5, 1), (1, 5), (3, 3)])
def test_the_position_typed_or_dragged_to_is_the_position_kept(editor_client, moved, typed):
    batch = draft_batch(5)
    before = ordered(batch)
    entry = BatchEntry.objects.get(pk=before[moved - 1])
    page = editor_client.get(change_url(batch))
    data = changeform_data(page)
    data[f"{entry_prefix(page, entry)}-rank"] = str(typed)
    assert editor_client.post(change_url(batch), data).status_code == 302
    after = ordered(batch)
    assert after.index(entry.pk) + 1 == typed
    assert [pk for pk in after if pk != entry.pk] == [pk for pk in before if pk != entry.pk]


def test_the_list_keeps_a_pinned_paper_where_it_was_put_and_says_what_pinning_does(editor_client):
    batch = draft_batch(3)
    before = ordered(batch)
    BatchEntry.objects.filter(pk=before[2]).update(pinned=True)
    page = editor_client.get(change_url(batch))
    rows = [
        form.instance.pk
        for inline in page.context["inline_admin_formsets"]
        for form in inline.formset.forms
        if isinstance(form.instance, BatchEntry)
    ]
    assert rows == before  # not moved to the top because it is pinned
    help_text = BeautifulSoup(page.content.decode(), "html.parser").select_one("#entries-help")
    assert "sent to every subscriber, even those whose topics it does not match" in (
        help_text.get_text()
    )


def test_once_the_issue_exists_rows_cannot_be_moved(editor_client, day_batch):
    issue_create(batch=day_batch.batch)
    page = editor_client.get(change_url(day_batch.batch))
    assert b'name="_move"' not in page.content
