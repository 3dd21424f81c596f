"""Writes for digests: ingesting a day into its batch, tagging papers, approving a batch."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, transaction
from django.db.models import Count
from django.utils import timezone

from digests import embedding, sources, tagging, text
from digests.models import BatchEntry, DailyBatch, IngestRun, Paper, PaperTopic, Topic

# The phrase matchers live in digests.phrases; they are named here too, where callers and
# benchmarks have always imported them from.
from digests.phrases import TopicMatcher, topic_matchers, topics_match  # noqa: F401
from digests.sources import FetchResult, PaperItem

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Fields copied from upstream on every run (first_seen_at and editor fields are ours).
PAPER_FIELDS = (
    "arxiv_version",
    "organization",
    "title",
    "abstract",
    "authors",
    "published_at",
    "hf_url",
    "arxiv_url",
    "pdf_url",
    "project_url",
    "code_url",
    "thumbnail_url",
    "upvotes",
    "comment_count",
    "ai_summary",
    "ai_keywords",
)
# Upstream sometimes omits fields it sent before (the page's card fallback has no abstract):
# an empty value never overwrites a stored one.
KEEP_WHEN_MISSING = {
    "arxiv_version",
    "organization",
    "abstract",
    "authors",
    "published_at",
    "project_url",
    "code_url",
    "thumbnail_url",
    "ai_summary",
    "ai_keywords",
}
# What a paper's meaning vector is computed from (embedding.paper_text).
MEANING_FIELDS = {"title", "abstract", "ai_keywords"}
ERROR_TEXT_MAX = 4000


@dataclass
class IngestReport:
    day: dt.date
    source: str
    status: str = ""
    batch_id: int | None = None
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    left_out: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fatal: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.fatal)

    def summary(self) -> str:
        line = (
            f"{self.day} from {self.source}: {self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped, {len(self.errors)} errors; "
            f"batch is {self.status}"
        )
        if self.notes:
            line += f"; {'; '.join(self.notes)}"
        if self.fatal:
            line += f"; FAILED: {self.fatal}"
        # One line whatever upstream sent: it ends up as the command's only error line.
        return " ".join(text.storable(line).split())


# --- Tagging ---------------------------------------------------------------------------------


def papers_embed(*, papers: Iterable[Paper], force: bool = False) -> int:
    """Store the meaning vector of each paper that lacks a current one; returns how many.

    A vector is current when it exists and was made by today's model (embedding.MODEL_NAME):
    ingest clears it when a paper's title, abstract or keywords change, and a new model makes
    every old vector stale. All the papers' texts go to the model in one call (a static model
    is cheapest in bulk); `force` re-embeds even current ones.
    """
    stale = [
        paper
        for paper in papers
        if force or paper.embedding is None or paper.embedding_model != embedding.MODEL_NAME
    ]
    if not stale:
        return 0
    vectors = embedding.embed_texts(
        [embedding.paper_text(paper.title, paper.abstract, _keywords(paper)) for paper in stale]
    )
    for paper, vector in zip(stale, vectors, strict=True):
        paper.embedding = embedding.vector_to_bytes(vector)
        paper.embedding_model = embedding.MODEL_NAME
    # Not save(): that would bump updated_at, which means "upstream data last changed".
    Paper.objects.bulk_update(stale, ["embedding", "embedding_model"], batch_size=500)
    return len(stale)


def _keywords(paper: Paper) -> list[str]:
    keywords = paper.ai_keywords if isinstance(paper.ai_keywords, list) else []
    return [k for k in keywords if isinstance(k, str)]


def papers_tag(*, papers: Iterable[Paper], model: tagging.TopicModel | None = None) -> int:
    """Recompute the automatic topics of papers with the topic model (meaning and phrases).

    Manual tags stay, and a paper whose topics an editor corrected (topics_locked) is left
    exactly as the editor set it. Papers without a current vector are embedded first.
    Returns the number of PaperTopic rows created or removed.
    """
    papers = [paper for paper in papers if not paper.topics_locked]
    if not papers:
        return 0
    papers_embed(papers=papers)
    if model is None:
        model = tagging.TopicModel.build()
    vectors = embedding.vectors_from_bytes(paper.embedding for paper in papers)
    scored = model.score(
        vectors, [(paper.title, paper.abstract, _keywords(paper)) for paper in papers]
    )
    current_by_paper: dict[int, dict[int, PaperTopic]] = {paper.pk: {} for paper in papers}
    for link in PaperTopic.objects.filter(paper__in=papers):
        current_by_paper[link.paper_id][link.topic_id] = link
    changes = 0
    for row, paper in enumerate(papers):
        wanted = {
            model.topics[column].pk: scored.reason(row, column)[:200] for column in scored.tags[row]
        }
        current = current_by_paper[paper.pk]
        for topic_id, link in current.items():
            if link.is_manual:
                continue
            if topic_id not in wanted:
                link.delete()
                changes += 1
            elif link.reason != wanted[topic_id]:
                link.reason = wanted[topic_id]
                link.save(update_fields=["reason"])
        for topic_id, reason in wanted.items():
            if topic_id not in current:
                PaperTopic.objects.create(paper=paper, topic_id=topic_id, reason=reason)
                changes += 1
    return changes


@transaction.atomic
def paper_topics_lock(*, paper: Paper) -> None:
    """An editor changed the paper's topics: what it carries now is theirs, and automatic
    tagging leaves it alone from now on (every later ingest and re-tag keeps it as is).

    The automatic tags the editor kept become manual too: keeping one is a choice."""
    Paper.objects.filter(pk=paper.pk).update(topics_locked=True)
    paper.topics_locked = True
    for link in PaperTopic.objects.filter(paper=paper, is_manual=False):
        link.is_manual = True
        link.reason = f"kept by an editor; {link.reason}"[:200]
        link.save(update_fields=["is_manual", "reason"])


@transaction.atomic
def papers_topics_unlock(*, papers: Iterable[Paper]) -> int:
    """Hand papers' topics back to automatic tagging: unlock them, let their manual tags go
    and tag them again now. Returns how many papers were locked."""
    ids = [paper.pk for paper in papers]
    unlocked = Paper.objects.filter(pk__in=ids, topics_locked=True).update(topics_locked=False)
    PaperTopic.objects.filter(paper_id__in=ids, is_manual=True).update(is_manual=False)
    papers_tag(papers=Paper.objects.filter(pk__in=ids))
    return unlocked


# --- Ingest ----------------------------------------------------------------------------------


def paper_upsert(*, item: PaperItem) -> tuple[Paper, str]:
    """Create or refresh the Paper for an item; returns it and "new", "updated" or "unchanged".

    Only writes when something changed, so updated_at means "upstream data last changed".
    """
    values = {name: getattr(item, name) for name in PAPER_FIELDS}
    paper, created = Paper.objects.get_or_create(arxiv_id=item.arxiv_id, defaults=values)
    if created:
        return paper, "new"
    changed = []
    for name, value in values.items():
        if name in KEEP_WHEN_MISSING and value in ("", [], None):
            continue
        if name == "arxiv_version" and paper.arxiv_version and value < paper.arxiv_version:
            continue  # an older listing must not roll the version back
        if getattr(paper, name) != value:
            setattr(paper, name, value)
            changed.append(name)
    if not changed:
        return paper, "unchanged"
    if MEANING_FIELDS.intersection(changed):
        # What the vector was computed from changed: papers_embed makes a new one.
        paper.embedding, paper.embedding_model = None, ""
        changed += ["embedding", "embedding_model"]
    paper.save(update_fields=[*changed, "updated_at"])
    return paper, "updated"


def batch_ingest(
    *,
    day: dt.date,
    source_name: str | None = None,
    path: str | Path | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Fetch one day from a source and bring its batch up to date; safe to run again.

    The fetch happens outside any transaction; everything it leads to is written in one.
    A failed fetch keeps whatever the batch held before and records why; valid items of a
    partly broken payload are still ingested.
    """
    source_name = source_name or (sources.local_file.NAME if path else settings.DIGEST_SOURCE)
    started_at = timezone.now()
    if progress:
        progress(f"Fetching {day} from {source_name} ...")
    result = sources.fetch(source_name, day, path=path, progress=progress)
    report = IngestReport(day=day, source=source_name, fatal=result.fatal)
    report.errors = list(result.errors)
    report.notes = list(result.notes)
    try:
        _batch_store(day=day, result=result, report=report, started_at=started_at)
    except DataError as exc:
        # Sources clean what they return, so this means a value slipped through that the
        # database refuses. Nothing of the fetch was stored (the transaction rolled back); the
        # run is still recorded, failed and saying why, rather than lost with a traceback.
        reason = text.storable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        result = sources.FetchResult(
            fatal=f"the database refused the fetched data: {reason}",
            raw=[{"url": r.get("url", ""), "status": r.get("status")} for r in result.raw],
        )
        report = IngestReport(day=day, source=source_name, fatal=result.fatal)
        _batch_store(day=day, result=result, report=report, started_at=started_at)
    log = logger.error if report.failed else logger.info
    log("digest ingest: %s", report.summary(), extra={"day": day.isoformat()})
    return report


@transaction.atomic
def _batch_store(
    *, day: dt.date, result: FetchResult, report: IngestReport, started_at: dt.datetime
) -> None:
    batch, _ = DailyBatch.objects.get_or_create(date=day, kind=DailyBatch.Kind.DAILY)
    # Two runs for one day (beat and an editor's command) take turns here.
    batch = DailyBatch.objects.select_for_update().get(pk=batch.pk)
    papers: list[Paper] = []

    seen: set[str] = set()
    # Once an editor has ordered the batch, upstream's ranks no longer move existing entries,
    # and papers that arrive later go to the end instead of jumping ahead of the editor's picks.
    keep_order = batch.reordered_at is not None
    last_rank = max(batch.entries.values_list("rank", flat=True), default=0)
    # A day holds at most DIGEST_MAX_PAPERS_PER_BATCH papers, upstream's top ones: a listing
    # of thousands would make every later step (tagging, curating, planning) that much slower.
    cap = settings.DIGEST_MAX_PAPERS_PER_BATCH
    in_batch = set(batch.entries.values_list("paper__arxiv_id", flat=True))
    room = max(cap - len(in_batch), 0)
    for rank, item in enumerate(result.items, start=1):
        if item.arxiv_id in seen:
            report.skipped += 1
            continue
        seen.add(item.arxiv_id)
        if item.arxiv_id not in in_batch:
            if room == 0:
                report.left_out += 1
                continue
            room -= 1
        paper, outcome = paper_upsert(item=item)
        setattr(report, outcome, getattr(report, outcome) + 1)
        papers.append(paper)
        entry, created = BatchEntry.objects.get_or_create(
            batch=batch,
            paper=paper,
            defaults={
                "rank": last_rank + 1 if keep_order else rank,
                "upvotes_at_fetch": item.upvotes,
                # A sent batch is history: a late paper is recorded, not shown as sent.
                "hidden": batch.status == DailyBatch.Status.SENT,
                "editor_note": (
                    "Added after the batch was sent."
                    if batch.status == DailyBatch.Status.SENT
                    else ""
                ),
            },
        )
        if created:
            last_rank = max(last_rank, entry.rank)
            continue
        wanted_rank = entry.rank if keep_order else rank
        if (entry.rank, entry.upvotes_at_fetch) != (wanted_rank, item.upvotes):
            entry.rank, entry.upvotes_at_fetch = wanted_rank, item.upvotes
            entry.save(update_fields=["rank", "upvotes_at_fetch"])

    # Once for the whole day: one call to the embedding model, one topic model.
    papers_embed(papers=papers)
    papers_tag(papers=papers)

    if report.left_out:
        report.notes.append(
            f"{report.left_out} paper(s) left out: a batch holds at most {cap} "
            "(DIGEST_MAX_PAPERS_PER_BATCH), upstream's top ones by rank"
        )
    now = timezone.now()
    entry_count = batch.entries.count()
    batch.status = _status_after(batch=batch, result=result, entry_count=entry_count)
    if batch.status == DailyBatch.Status.APPROVED and batch.approved_at is None:
        batch.approved_at = now  # auto-approved: no user
    batch.source = report.source
    batch.fetched_at = now
    batch.entry_count = entry_count
    batch.new_count = report.new
    batch.updated_count = report.updated
    batch.skipped_count = report.skipped
    batch.error_count = len(report.errors) + (1 if report.fatal else 0)
    batch.error = _error_text(report)
    batch.save()
    IngestRun.objects.create(
        batch=batch,
        source=report.source,
        started_at=started_at,
        finished_at=now,
        ok=not report.failed,
        item_count=len(result.items),
        new_count=report.new,
        updated_count=report.updated,
        skipped_count=report.skipped,
        error_count=batch.error_count,
        error=batch.error,
        raw_payload=_storable(result.raw),
    )
    report.status = batch.status
    report.batch_id = batch.pk


def _status_after(*, batch: DailyBatch, result: FetchResult, entry_count: int) -> str:
    Status = DailyBatch.Status
    if batch.status in {Status.APPROVED, Status.SENT}:
        return batch.status  # a refresh never undoes an editor's or the mailer's work
    if entry_count == 0:
        if result.fatal or result.errors:
            return Status.FAILED
        return Status.EMPTY  # weekends: upstream answers []
    # A draft, or a day that failed or was empty before and now has papers.
    if settings.DIGEST_AUTO_APPROVE and not result.fatal:
        return Status.APPROVED
    return Status.DRAFT


def _error_text(report: IngestReport) -> str:
    lines = []
    if report.fatal:
        lines.append(f"Fetch failed: {report.fatal}")
    lines.extend(f"Note: {note}" for note in report.notes)
    if report.errors:
        lines.append(f"{len(report.errors)} item(s) could not be used:")
        lines.extend(f"- {error}" for error in report.errors)
    return text.storable("\n".join(lines))[:ERROR_TEXT_MAX]


def _storable(value: Any) -> Any:
    """The raw responses with every string cleaned as the database needs (the sources already
    did; this keeps a future source from storing what PostgreSQL refuses)."""
    if isinstance(value, str):
        return text.storable(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


# --- Editorial -------------------------------------------------------------------------------


def batch_approve(*, batch: DailyBatch, user=None) -> DailyBatch:
    """Mark a draft batch ready to send. Only drafts with at least one visible paper qualify."""
    if not batch.entries.filter(hidden=False).exists():
        raise ValidationError("A batch needs at least one visible paper to be approved.")
    now = timezone.now()
    # Conditional update: two editors clicking at once approve once.
    updated = DailyBatch.objects.filter(pk=batch.pk, status=DailyBatch.Status.DRAFT).update(
        status=DailyBatch.Status.APPROVED, approved_at=now, approved_by=user
    )
    batch.refresh_from_db()
    if not updated:
        raise ValidationError(f"Only a draft batch can be approved; this one is {batch.status}.")
    return batch


def batch_mark_sent(*, batch: DailyBatch) -> bool:
    """Record that the batch's digest went out (called by the newsletter when an issue ends)."""
    return bool(
        DailyBatch.objects.filter(pk=batch.pk, status=DailyBatch.Status.APPROVED).update(
            status=DailyBatch.Status.SENT
        )
    )


def batch_unapprove(*, batch: DailyBatch) -> DailyBatch:
    """Take an approved batch back to draft, so the day's scheduled send skips it.

    Only while nothing was sent: the newsletter refuses once an issue exists (see its admin).
    """
    updated = DailyBatch.objects.filter(pk=batch.pk, status=DailyBatch.Status.APPROVED).update(
        status=DailyBatch.Status.DRAFT, approved_at=None, approved_by=None
    )
    batch.refresh_from_db()
    if not updated:
        raise ValidationError(
            f"Only an approved batch can go back to draft; this one is {batch.status}."
        )
    return batch


def _check_curatable(batch: DailyBatch) -> None:
    # A sent batch is history: what people received must stay what the archive shows.
    if batch.status == DailyBatch.Status.SENT:
        raise ValidationError("This batch was sent; its entries can no longer change.")


@transaction.atomic
def batch_entry_set_flags(
    *,
    entry: BatchEntry,
    pinned: bool | None = None,
    hidden: bool | None = None,
    editor_note: str | None = None,
) -> BatchEntry:
    """Pin, hide or annotate one entry; None leaves a flag as it is."""
    batch = DailyBatch.objects.select_for_update().get(pk=entry.batch_id)
    _check_curatable(batch)
    changes = {
        name: value
        for name, value in (("pinned", pinned), ("hidden", hidden), ("editor_note", editor_note))
        if value is not None and getattr(entry, name) != value
    }
    if (
        changes.get("hidden")
        and batch.status == DailyBatch.Status.APPROVED
        and not batch.entries.filter(hidden=False).exclude(pk=entry.pk).exists()
    ):
        raise ValidationError("An approved batch must keep at least one visible paper.")
    for name, value in changes.items():
        setattr(entry, name, value)
    if changes:
        entry.save(update_fields=list(changes))
    return entry


@transaction.atomic
def batch_entries_reorder(*, batch: DailyBatch, entry_ids: list[int]) -> None:
    """Put the batch's entries in the order given (ranks 1..n); entries not named keep their
    relative order after the named ones. The order is kept across later re-fetches."""
    batch = DailyBatch.objects.select_for_update().get(pk=batch.pk)
    _check_curatable(batch)
    entries = {e.pk: e for e in batch.entries.order_by("rank", "pk")}
    unknown = [pk for pk in entry_ids if pk not in entries]
    if unknown:
        raise ValidationError(f"Entries {unknown} are not in the batch of {batch.date}.")
    named = list(dict.fromkeys(entry_ids))
    order = named + [pk for pk in entries if pk not in set(named)]
    changed = []
    for rank, pk in enumerate(order, start=1):
        if entries[pk].rank != rank:
            entries[pk].rank = rank
            changed.append(entries[pk])
    BatchEntry.objects.bulk_update(changed, ["rank"])
    batch.reordered_at = timezone.now()
    batch.save(update_fields=["reordered_at"])


@dataclass
class RetagReport:
    papers: int
    changes: int
    matches: dict[Topic, int]
    locked: int = 0  # papers an editor corrected, left as they are


def papers_retag_recent(*, days: int = 30) -> RetagReport:
    """Re-tag the papers first seen in the last `days` days with the current topics (after an
    editor changed their descriptions or phrases) and count how many papers each active topic
    now has. Papers whose topics an editor corrected keep them."""
    since = timezone.now() - dt.timedelta(days=days)
    papers = Paper.objects.filter(first_seen_at__gte=since)
    model = tagging.TopicModel.build()
    changes = 0
    chunk: list[Paper] = []
    for paper in papers.filter(topics_locked=False).iterator(chunk_size=RETAG_CHUNK):
        chunk.append(paper)
        if len(chunk) == RETAG_CHUNK:
            changes += _retag_chunk(chunk, model)
            chunk = []
    changes += _retag_chunk(chunk, model)
    counts = dict(
        PaperTopic.objects.filter(paper__in=papers)
        .values_list("topic_id")
        .annotate(n=Count("id"))
        .values_list("topic_id", "n")
    )
    matches = {t: counts.get(t.pk, 0) for t in Topic.objects.filter(is_active=True)}
    return RetagReport(
        papers=papers.count(),
        changes=changes,
        matches=matches,
        locked=papers.filter(topics_locked=True).count(),
    )


# Papers tagged per transaction: short transactions, and memory flat over any number of days.
RETAG_CHUNK = 500


def _retag_chunk(papers: list[Paper], model: tagging.TopicModel) -> int:
    if not papers:
        return 0
    with transaction.atomic():
        return papers_tag(papers=papers, model=model)
