"""A day's batch at DIGEST_MAX_PAPERS_PER_BATCH: the ingest stops at the cap and says so, and
the batch page stays one page of entries in a constant number of queries."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from django.utils import timezone

from digests.admin import ENTRIES_PER_PAGE, RUNS_SHOWN
from digests.models import BatchEntry, DailyBatch, IngestRun, PaperTopic
from digests.services import batch_ingest
from digests.sources.decoding import RAW_KEEP_CHARS
from tests.admin.conftest import changeform_data, entry_prefix
from tests.digests.conftest import api_body, api_items
from tests.factories import BatchEntryFactory, DailyBatchFactory, TopicFactory

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 5, 8)


def change_url(batch) -> str:
    return f"/admin/digests/dailybatch/{batch.pk}/change/"


def entries_on(page) -> list[BatchEntry]:
    [entries] = [
        inline.formset
        for inline in page.context["inline_admin_formsets"]
        if inline.formset.model is BatchEntry
    ]
    return [form.instance for form in entries.forms]


def ordered(batch) -> list[int]:
    return list(batch.entries.order_by("rank").values_list("pk", flat=True))


def batch_of(n: int, *, runs: int = 0) -> DailyBatch:
    """A batch of n entries whose papers carry two topics each, and runs with the real
    sample kept as their raw response (what makes a run heavy)."""
    batch = DailyBatchFactory(date=DAY, status=DailyBatch.Status.DRAFT)
    topics = [TopicFactory(), TopicFactory()]
    entries = [BatchEntryFactory(batch=batch, rank=rank) for rank in range(1, n + 1)]
    PaperTopic.objects.bulk_create(
        PaperTopic(paper=entry.paper, topic=topic, reason="set by a test")
        for entry in entries
        for topic in topics
    )
    now = timezone.now()
    raw = [{"url": "https://huggingface.co/api/daily_papers", "status": 200, "body": api_body()}]
    IngestRun.objects.bulk_create(
        IngestRun(batch=batch, source="hf_api", started_at=now, finished_at=now, raw_payload=raw)
        for _ in range(runs)
    )
    return batch


def test_the_batch_page_at_the_cap_shows_one_page_in_a_few_queries(
    editor_client, settings, django_assert_max_num_queries
):
    cap = settings.DIGEST_MAX_PAPERS_PER_BATCH
    batch = batch_of(cap, runs=30)

    with django_assert_max_num_queries(20):
        page = editor_client.get(change_url(batch))

    assert page.status_code == 200
    assert [e.pk for e in entries_on(page)] == ordered(batch)[:ENTRIES_PER_PAGE]
    html = page.content.decode()
    assert f"Entries 1\u2013{ENTRIES_PER_PAGE} of {cap}" in html
    assert '<a href="?entries_page=2">2</a>' in html
    # The latest runs only, without their raw responses, and a way to all of them.
    runs = [
        i.formset for i in page.context["inline_admin_formsets"] if i.formset.model is IngestRun
    ]
    assert len(runs[0].forms) == RUNS_SHOWN
    assert all("raw_payload" in run.get_deferred_fields() for run in runs[0].get_queryset())
    assert f'?batch__id__exact={batch.pk}">All 30 runs of this day' in html

    with django_assert_max_num_queries(20):
        last = editor_client.get(change_url(batch) + "?entries_page=4")
    assert [e.pk for e in entries_on(last)] == ordered(batch)[150:200]


def test_all_runs_of_a_day_are_one_filtered_list_away(editor_client):
    batch = batch_of(1, runs=12)
    other = DailyBatchFactory(date=DAY + dt.timedelta(days=1))
    IngestRun.objects.create(
        batch=other, source="file", started_at=timezone.now(), finished_at=timezone.now()
    )

    page = editor_client.get(f"/admin/digests/ingestrun/?batch__id__exact={batch.pk}")

    assert page.status_code == 200
    assert {run.batch_id for run in page.context["cl"].result_list} == {batch.pk}
    assert page.context["cl"].result_count == 12


def test_saving_a_page_of_entries_keeps_the_other_pages_in_order(editor_client):
    batch = batch_of(120)
    before = ordered(batch)
    url = change_url(batch) + "?entries_page=2"
    page = editor_client.get(url)
    shown = entries_on(page)
    assert [e.pk for e in shown] == before[50:100]
    moved, hidden = shown[-1], shown[10]  # ranks 100 and 61

    data = changeform_data(page)
    data[f"{entry_prefix(page, moved)}-rank"] = "55"
    data[f"{entry_prefix(page, hidden)}-hidden"] = "on"
    response = editor_client.post(url, data)

    assert response.status_code == 302, response.context["errors"]
    # Typed 55: it is 55th (before the entry that was there, as it moved up), and the first
    # page and the entries after the moved one are where they were.
    assert ordered(batch) == [*before[:54], moved.pk, *before[54:99], *before[100:]]
    assert list(batch.entries.filter(hidden=True).values_list("pk", flat=True)) == [hidden.pk]


def test_an_approved_batch_may_hide_a_whole_page_when_other_pages_are_visible(editor_client):
    batch = batch_of(ENTRIES_PER_PAGE + 1)
    batch.status = DailyBatch.Status.APPROVED
    batch.save()
    page = editor_client.get(change_url(batch))
    data = changeform_data(page)
    for entry in entries_on(page):
        data[f"{entry_prefix(page, entry)}-hidden"] = "on"

    response = editor_client.post(change_url(batch), data)

    assert response.status_code == 302, response.context["errors"]
    assert batch.entries.filter(hidden=False).count() == 1


def ten_thousand_papers() -> str:
    """The real sample's items, repeated with distinct arXiv ids to 10,000 papers."""
    items = api_items()
    papers = []
    for n in range(10_000):
        item = copy.deepcopy(items[n % len(items)])
        item["paper"]["id"] = f"2605.{20000 + n}"
        papers.append(item)
    return json.dumps(papers)


def test_the_10000_paper_file_gives_a_batch_of_the_cap_and_the_page_says_why(
    editor_client, tmp_path, settings
):
    cap = settings.DIGEST_MAX_PAPERS_PER_BATCH
    assert cap == 200  # the default
    path = tmp_path / "10000.json"
    path.write_text(ten_thousand_papers(), encoding="utf-8")

    report = batch_ingest(day=DAY, path=path)

    assert not report.failed and (report.new, report.left_out) == (200, 9800)
    batch = DailyBatch.objects.get(date=DAY)
    assert batch.entry_count == batch.entries.count() == 200
    # The top ones by upstream rank, in upstream's order.
    assert [e.paper.arxiv_id for e in batch.entries.order_by("rank")] == [
        f"2605.{20000 + n}" for n in range(200)
    ]
    run = IngestRun.objects.get()
    assert run.ok and run.item_count == 10_000
    # The body is kept up to a bound, saying how long it was.
    kept = run.raw_payload[0]
    assert len(kept["body"]) == RAW_KEEP_CHARS < kept["truncated_from_chars"] == kept["size"]
    reason = "9800 paper(s) left out: a batch holds at most 200 (DIGEST_MAX_PAPERS_PER_BATCH)"
    assert reason in run.error and reason in batch.error
    assert reason in report.summary()

    page = editor_client.get(change_url(batch))
    assert page.status_code == 200
    assert reason in page.content.decode()
    assert len(entries_on(page)) == ENTRIES_PER_PAGE
