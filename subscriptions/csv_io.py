"""Subscribers in and out as CSV: the admin's upload form and its export action.

Each imported row goes through subscriber_import, so a CSV adds people exactly as one call
would (suppressions refused, consent recorded, a confirmation email when asked for).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from digests.models import Topic
from subscriptions.models import Subscriber
from subscriptions.services import SubscriberSuppressed, subscriber_import

IMPORT_MAX_ROWS = 5000  # the import runs inside the request; bigger lists go in pieces
IMPORT_CONFIRM = "confirm"  # each new address gets a confirmation email
IMPORT_CONSENTED = "consented"  # consent was given elsewhere; the note says where
TOPIC_SEPARATOR = "; "  # between topics in the "topics" column, in the export and the import
EXPORT_COLUMNS = [
    "email",
    "status",
    "topics",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "consent_source",
    "consent_note",
]


@dataclass
class ImportReport:
    created: list[Subscriber] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # line, value, why

    def summary(self) -> str:
        return (
            f"{len(self.created)} added, {len(self.existing)} already subscribed (left as they "
            f"were), {len(self.suppressed)} suppressed (not added), {len(self.invalid)} invalid"
        )


def subscribers_import_csv(
    *, text: str, topics: Iterable[Topic], mode: str, consent_note: str = ""
) -> ImportReport:
    """Import a CSV with an "email" column and an optional "topics" column (topic names or
    slugs, any case, separated by ";" as the export writes them; rows without use `topics`).
    Each row is its own transaction, so one bad row does not undo the others; the report says
    what happened to each.
    """
    if mode not in (IMPORT_CONFIRM, IMPORT_CONSENTED):
        raise ValueError(f"unknown import mode {mode!r}")
    if mode == IMPORT_CONSENTED and not consent_note.strip():
        raise ValidationError("Say where these people gave their consent.", code="no_consent")
    reader, columns = _reader(text)
    by_key = topics_by_key()
    default_topics = list(topics)
    report = ImportReport()
    for line, row in enumerate(reader, start=2):
        if line - 1 > IMPORT_MAX_ROWS:
            raise ValidationError(f"At most {IMPORT_MAX_ROWS} rows per file.")
        raw = (row.get(columns["email"]) or "").strip()
        wanted = _row_topics(row, columns.get("topics"), by_key)
        unknown = [name for name in wanted if name.casefold() not in by_key]
        if unknown:
            report.invalid.append(
                (line, raw, f"unknown topic {', '.join(unknown)} (the import page lists them)")
            )
            continue
        _import_row(
            report,
            line=line,
            email=raw,
            topics=list({by_key[n.casefold()]: None for n in wanted}) or default_topics,
            confirmed=mode == IMPORT_CONSENTED,
            consent_note=consent_note,
        )
    return report


def _reader(text: str) -> tuple[csv.DictReader, dict[str, str]]:
    """The rows, and the header's column names by their lower-case spelling."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    if "email" not in columns:
        raise ValidationError('The first row must name the columns, one of them "email".')
    return reader, columns


def topics_by_key() -> dict[str, Topic]:
    """The active topics by their slug and by their name, case-folded."""
    topics = Topic.objects.filter(is_active=True)
    return {key.casefold(): t for t in topics for key in (t.slug, t.name)}


def _row_topics(row: dict[str, str | None], column: str | None, by_key: dict) -> list[str]:
    """The topics a row names: split at ";" (or ","). A cell with neither that is not one
    topic's name is read as slugs separated by spaces, as exports before the ";" were."""
    cell = ((row.get(column) or "") if column is not None else "").strip()
    if not cell:
        return []
    if ";" in cell or "," in cell:
        return [part.strip() for part in cell.replace(",", ";").split(";") if part.strip()]
    if cell.casefold() in by_key:
        return [cell]
    return cell.split()


def _import_row(
    report: ImportReport,
    *,
    line: int,
    email: str,
    topics: list[Topic],
    confirmed: bool,
    consent_note: str,
) -> None:
    try:
        subscriber, created = subscriber_import(
            email=email, topics=topics, consent_note=consent_note, confirmed=confirmed
        )
    except SubscriberSuppressed:
        report.suppressed.append(email)
    except ValidationError as exc:
        report.invalid.append((line, email, exc.messages[0]))
    else:
        if created:
            report.created.append(subscriber)
        else:
            report.existing.append(subscriber.email)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A spreadsheet would run a cell starting with one of these as a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def subscribers_export_csv(*, subscribers: QuerySet[Subscriber], out: TextIO) -> int:
    """Write subscribers as CSV (EXPORT_COLUMNS) to the file-like `out`; returns the count.

    The email and topics columns are what subscribers_import_csv reads back.
    """
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    rows = subscribers.prefetch_related("topics", "consents").order_by("created_at", "pk")
    for subscriber in rows.iterator(chunk_size=1000):
        consent = next(iter(subscriber.consents.all()), None)  # newest first
        writer.writerow(
            _csv_cell(v)
            for v in (
                subscriber.email,
                subscriber.status,
                TOPIC_SEPARATOR.join(t.slug for t in subscriber.topics.all()),
                subscriber.created_at,
                subscriber.confirmed_at,
                subscriber.unsubscribed_at,
                consent.source if consent else "",
                consent.note if consent else "",
            )
        )
        count += 1
    return count
