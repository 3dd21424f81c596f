from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from digests.models import BatchEntry, DailyBatch, IngestRun, Paper, PaperTopic
from digests.selectors import batch_preview_latest
from digests.services import batch_approve, batch_ingest
from tests.digests.conftest import API_SAMPLE, PAGE_SAMPLE, api_body, api_items
from tests.factories import BatchEntryFactory, DailyBatchFactory, PaperFactory, UserFactory

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 5, 8)


def write(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def snapshot() -> dict:
    """Every stored row of the ingest's tables, minus the timestamps a re-run may move."""

    def rows(model, drop=()):
        return sorted(
            (
                {k: v for k, v in model_to_dict(obj).items() if k not in drop}
                for obj in model.objects.all()
            ),
            key=lambda row: sorted(map(str, row.items())),
        )

    return {
        "papers": rows(Paper, drop={"topics"}),
        "entries": rows(BatchEntry),
        "paper_topics": rows(PaperTopic),
        "batches": rows(DailyBatch, drop={"fetched_at"}),
    }


def test_it_ingests_the_api_sample_into_a_draft_batch():
    report = batch_ingest(day=DAY, path=API_SAMPLE)

    assert (report.new, report.updated, report.skipped, report.errors) == (37, 0, 0, [])
    assert not report.failed
    batch = DailyBatch.objects.get(date=DAY)
    assert batch.status == DailyBatch.Status.DRAFT
    assert (batch.source, batch.entry_count, batch.new_count, batch.error) == ("file", 37, 37, "")
    entries = list(batch.entries.order_by("rank").select_related("paper"))
    assert [e.paper.arxiv_id for e in entries] == [x["paper"]["id"] for x in api_items()]
    assert [e.rank for e in entries] == list(range(1, 38))
    assert entries[0].upvotes_at_fetch == 86
    run = IngestRun.objects.get()
    assert run.ok and run.item_count == 37
    assert run.raw_payload[0]["body"] == api_body()  # kept verbatim for audit


def test_every_ingested_paper_gets_topics_with_a_reason():
    batch_ingest(day=DAY, path=API_SAMPLE)

    untagged = Paper.objects.filter(paper_topics__isnull=True)
    assert list(untagged.values_list("arxiv_id", flat=True)) == []
    # The topic model's own account: meaning (description/closest phrase), words, probability.
    for link in PaperTopic.objects.all():
        assert not link.is_manual
        assert re.fullmatch(
            r"meaning -?[01]\.\d\d/-?[01]\.\d\d, (title|abstract|no) phrase, "
            r"p=[01]\.\d\d",
            link.reason,
        ), link.reason


def test_reingesting_the_same_day_changes_nothing_but_timestamps():
    batch_ingest(day=DAY, path=API_SAMPLE)
    before = snapshot()

    with time_machine.travel(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)):
        report = batch_ingest(day=DAY, path=API_SAMPLE)

    assert (report.new, report.updated, report.unchanged) == (0, 0, 37)
    after = snapshot()
    assert after["batches"][0].pop("new_count") == 0
    before["batches"][0].pop("new_count")
    assert after == before
    assert IngestRun.objects.count() == 2
    assert DailyBatch.objects.get().fetched_at.year == 2030


def test_a_refresh_updates_upvotes_and_fields_and_adds_new_papers(tmp_path):
    batch_ingest(day=DAY, path=API_SAMPLE)
    items = api_items()
    items[5]["paper"]["upvotes"] = 500
    items[5]["paper"]["title"] = "A\n  Renamed   Title"
    new = json.loads(json.dumps(items[0]))
    new["paper"]["id"] = "2605.00001"
    items.insert(0, new)

    report = batch_ingest(day=DAY, path=write(tmp_path, "day.json", json.dumps(items)))

    assert (report.new, report.updated, report.unchanged) == (1, 1, 36)
    paper = Paper.objects.get(arxiv_id=items[6]["paper"]["id"])
    assert (paper.title, paper.upvotes) == ("A Renamed Title", 500)
    entry = BatchEntry.objects.get(paper=paper)
    assert (entry.rank, entry.upvotes_at_fetch) == (7, 500)
    assert Paper.objects.count() == 38
    assert DailyBatch.objects.get().entry_count == 38


def test_a_paper_seen_on_two_days_is_one_paper_with_two_entries():
    batch_ingest(day=DAY, path=API_SAMPLE)
    batch_ingest(day=DAY + dt.timedelta(days=1), path=API_SAMPLE)

    assert Paper.objects.count() == 37
    assert BatchEntry.objects.count() == 74
    assert Paper.objects.get(arxiv_id="2605.05242").entries.count() == 2


def test_editor_fields_survive_a_refresh():
    batch_ingest(day=DAY, path=API_SAMPLE)
    BatchEntry.objects.filter(paper__arxiv_id="2605.05242").update(
        pinned=True, hidden=True, editor_note="keep"
    )

    batch_ingest(day=DAY, path=API_SAMPLE)

    entry = BatchEntry.objects.get(paper__arxiv_id="2605.05242")
    assert (entry.pinned, entry.hidden, entry.editor_note) == (True, True, "keep")


def test_a_partly_broken_payload_keeps_the_good_items_and_says_what_was_wrong(tmp_path):
    items = api_items()
    items[3] = {"paper": {"id": "not-an-id", "title": "x"}}
    items[7] = []

    report = batch_ingest(day=DAY, path=write(tmp_path, "day.json", json.dumps(items)))

    assert report.new == 35 and not report.failed
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.DRAFT
    assert batch.error_count == 2
    assert "item 3: paper id 'not-an-id' is not an arXiv id" in batch.error
    assert "item 7: item is a list, not an object" in batch.error


def test_a_failed_fetch_records_failed_with_the_reason_and_the_raw_payload(tmp_path):
    truncated = api_body()[:10_000]

    report = batch_ingest(day=DAY, path=write(tmp_path, "day.json", truncated))

    assert report.failed
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.FAILED
    assert batch.error.startswith("Fetch failed: invalid JSON")
    assert IngestRun.objects.get().raw_payload[0]["body"] == truncated
    assert Paper.objects.count() == 0


def test_a_failed_refresh_loses_nothing_stored_before(tmp_path):
    batch_ingest(day=DAY, path=API_SAMPLE)
    before = snapshot()

    report = batch_ingest(day=DAY, path=write(tmp_path, "day.json", "<html>changed</html>"))

    assert report.failed
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.DRAFT
    assert "neither DailyPapers data-props nor paper cards" in batch.error
    after = snapshot()
    for name in ("papers", "entries", "paper_topics"):
        assert after[name] == before[name]


def test_one_transaction_per_batch(monkeypatch):
    from digests import services

    calls = {"n": 0}
    real = services.paper_upsert

    def flaky(*, item):
        calls["n"] += 1
        if calls["n"] == 20:
            raise RuntimeError("database went away")
        return real(item=item)

    monkeypatch.setattr(services, "paper_upsert", flaky)
    with pytest.raises(RuntimeError):
        batch_ingest(day=DAY, path=API_SAMPLE)

    assert (Paper.objects.count(), DailyBatch.objects.count(), BatchEntry.objects.count()) == (
        0,
        0,
        0,
    )


def test_a_batch_keeps_upstreams_top_papers_up_to_the_cap(settings, tmp_path):
    settings.DIGEST_MAX_PAPERS_PER_BATCH = 10
    ids = [item["paper"]["id"] for item in api_items()]

    report = batch_ingest(day=DAY, path=API_SAMPLE)

    assert not report.failed
    assert (report.new, report.left_out, report.errors) == (10, 27, [])
    batch = DailyBatch.objects.get()
    assert [e.paper.arxiv_id for e in batch.entries.order_by("rank")] == ids[:10]
    assert batch.entry_count == 10 and batch.error_count == 0
    reason = "27 paper(s) left out: a batch holds at most 10 (DIGEST_MAX_PAPERS_PER_BATCH)"
    assert reason in batch.error
    run = IngestRun.objects.get()
    assert run.ok and run.item_count == 37 and reason in run.error

    # A refresh whose top papers changed keeps the batch's papers (an editor may have
    # curated them) and adds none past the cap; those still listed get their new rank.
    reordered = write(tmp_path, "reordered.json", json.dumps(api_items()[::-1]))
    report = batch_ingest(day=DAY, path=reordered)

    assert (report.new, report.unchanged, report.left_out) == (0, 10, 27)
    assert set(batch.entries.values_list("paper__arxiv_id", flat=True)) == set(ids[:10])
    assert batch.entries.get(paper__arxiv_id=ids[0]).rank == 37


def test_an_empty_day_is_empty_not_failed(tmp_path):
    report = batch_ingest(day=dt.date(2026, 5, 9), path=write(tmp_path, "sat.json", "[]"))

    assert not report.failed
    batch = DailyBatch.objects.get()
    assert (batch.status, batch.error, batch.entry_count) == (DailyBatch.Status.EMPTY, "", 0)


def test_the_html_page_ingests_through_data_props():
    report = batch_ingest(day=dt.date(2024, 8, 1), path=PAGE_SAMPLE)

    assert report.new == 13
    assert Paper.objects.get(arxiv_id="2407.21783").abstract.startswith("Modern artificial")


def test_auto_approve_moves_a_good_draft_to_approved(settings, tmp_path):
    settings.DIGEST_AUTO_APPROVE = True

    batch_ingest(day=DAY, path=API_SAMPLE)
    batch_ingest(day=DAY + dt.timedelta(days=1), path=write(tmp_path, "sat.json", "[]"))

    approved = DailyBatch.objects.get(date=DAY)
    assert approved.status == DailyBatch.Status.APPROVED
    assert approved.approved_at is not None and approved.approved_by is None
    assert DailyBatch.objects.get(date=DAY + dt.timedelta(days=1)).status == "empty"


def test_without_auto_approve_batches_stay_draft(settings):
    settings.DIGEST_AUTO_APPROVE = False
    batch_ingest(day=DAY, path=API_SAMPLE)

    assert DailyBatch.objects.get().status == DailyBatch.Status.DRAFT


def test_papers_arriving_after_a_batch_was_sent_are_recorded_hidden(tmp_path):
    items = api_items()
    batch_ingest(day=DAY, path=write(tmp_path, "a.json", json.dumps(items[1:])))
    DailyBatch.objects.update(status=DailyBatch.Status.SENT)

    batch_ingest(day=DAY, path=API_SAMPLE)

    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.SENT
    late = BatchEntry.objects.get(paper__arxiv_id=items[0]["paper"]["id"])
    assert late.hidden and "after the batch was sent" in late.editor_note
    assert batch.entries.filter(hidden=False).count() == 36


def test_batch_approve_approves_a_draft_once():
    editor = UserFactory()
    entry = BatchEntryFactory()

    batch = batch_approve(batch=entry.batch, user=editor)

    assert batch.status == DailyBatch.Status.APPROVED
    assert batch.approved_by == editor and batch.approved_at is not None
    with pytest.raises(ValidationError, match="Only a draft"):
        batch_approve(batch=batch, user=editor)


def test_batch_approve_refuses_a_batch_with_nothing_visible():
    entry = BatchEntryFactory(hidden=True)

    with pytest.raises(ValidationError, match="visible paper"):
        batch_approve(batch=entry.batch)
    assert DailyBatch.objects.get().status == DailyBatch.Status.DRAFT


def test_preview_shows_the_top_visible_papers_of_the_latest_batch_with_papers():
    old = DailyBatchFactory(date=dt.date(2026, 5, 1))
    BatchEntryFactory(batch=old, rank=1)
    latest = DailyBatchFactory(date=dt.date(2026, 5, 4))
    DailyBatchFactory(date=dt.date(2026, 5, 5), status=DailyBatch.Status.EMPTY)
    DailyBatchFactory(date=dt.date(2026, 5, 6), status=DailyBatch.Status.FAILED)
    hidden_only = DailyBatchFactory(date=dt.date(2026, 5, 7))
    BatchEntryFactory(batch=hidden_only, hidden=True)
    entries = [BatchEntryFactory(batch=latest, rank=rank) for rank in range(1, 8)]
    BatchEntry.objects.filter(pk=entries[1].pk).update(hidden=True)
    BatchEntry.objects.filter(pk=entries[6].pk).update(pinned=True)

    preview = batch_preview_latest(limit=5)

    assert [e.pk for e in preview] == [entries[i].pk for i in (6, 0, 2, 3, 4)]
    assert preview[0].batch == latest and preview[0].paper.title


def test_preview_is_empty_without_batches():
    PaperFactory()
    assert batch_preview_latest() == []
