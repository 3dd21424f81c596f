"""Composing and delivering the daily digest.

The flow: ``issue_create`` plans one Delivery row per eligible subscriber (one transaction,
written in bulk); ``issue_start`` moves the issue to "sending" once and enqueues chunk tasks;
each ``deliveries_send_chunk`` claims up to one provider batch of pending rows, sends them and
records the provider's per-recipient answer; ``deliveries_sweep`` recovers rows a dead worker
left behind. Every state change is a conditional UPDATE, so no row is sent twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from array import array
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import groupby
from operator import itemgetter

import requests
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailRecipientsRefused,
    AnymailRequestsAPIError,
)
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Case, Count, Exists, F, FilteredRelation, OuterRef, Q, Value, When
from django.utils import timezone

from config.outbox import messages_per_recipient
from digests.models import BatchEntry, DailyBatch, PaperTopic
from digests.services import batch_mark_sent
from newsletter import providers
from newsletter.models import Delivery, Issue, IssueContent, TrackingEvent
from newsletter.rendering import IssueRenderer
from newsletter.selection import Candidate, content_key, plan_selections
from subscriptions.links import preferences_url, unsubscribe_url
from subscriptions.models import Subscriber
from subscriptions.selectors import subscribers_sendable
from subscriptions.services import subscriber_suppress

logger = logging.getLogger(__name__)

DIGEST_TAG = "daily-digest"
SENT_LIKE = [Delivery.Status.SENT, Delivery.Status.BOUNCED, Delivery.Status.COMPLAINED]


class TransientSendError(Exception):
    """The provider could not take the batch right now (429, 5xx, connection refused)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.claim: str | None = None  # the rows waiting for the retry


# --- Planning an issue -------------------------------------------------------------------------


def _candidates(batch: DailyBatch) -> list[Candidate]:
    entries = list(
        BatchEntry.objects.filter(batch=batch, hidden=False).values_list(
            "paper_id", "paper__upvotes", "pinned", "rank"
        )
    )
    topics: dict[int, set[int]] = defaultdict(set)
    for paper_id, topic_id in PaperTopic.objects.filter(
        paper_id__in=[e[0] for e in entries]
    ).values_list("paper_id", "topic_id"):
        topics[paper_id].add(topic_id)
    return [
        Candidate(paper_id=p, topic_ids=frozenset(topics[p]), upvotes=u, pinned=pin, rank=r)
        for p, u, pin, r in entries
    ]


def _followed_topics() -> Iterator[tuple[int, frozenset[int]]]:
    """(subscriber id, followed active topic ids) for everyone who may be mailed now.

    One streamed query (a LEFT JOIN, so people following no active topic come with an empty
    set: skipped, or the day's top papers if DIGEST_NO_MATCH is "top"). Equal topic sets are
    one shared object: at a million subscribers there are only thousands of distinct sets.
    """
    rows = (
        subscribers_sendable()
        .annotate(active_topic=FilteredRelation("topics", condition=Q(topics__is_active=True)))
        .order_by("id")
        .values_list("id", "active_topic__id")
    )
    shared: dict[frozenset[int], frozenset[int]] = {}
    for subscriber_id, group in groupby(rows.iterator(chunk_size=10_000), key=itemgetter(0)):
        topics = frozenset(t for _, t in group if t is not None)
        yield subscriber_id, shared.setdefault(topics, topics)


def _already_sent(
    batch: DailyBatch, paper_ids: list[int], *, subscriber_id: int | None = None
) -> dict[int, frozenset[int]]:
    """Papers of this batch each subscriber (or only `subscriber_id`) got in an earlier digest.

    On a day that repeats yesterday's papers this covers nearly every subscriber, so it is kept
    small: each earlier content is read once, and subscribers left with the same papers share
    one frozenset.
    """
    earlier = list(
        Issue.objects.filter(batch__entries__paper_id__in=paper_ids)
        .exclude(batch=batch)
        .values_list("id", flat=True)
        .distinct()
    )
    if not earlier:
        return {}
    wanted = set(paper_ids)
    # A content key is a hash of the selection, so it means the same papers in every issue.
    repeated: dict[str, frozenset[int]] = {}  # content key -> this batch's papers in it
    contents = IssueContent.objects.filter(issue_id__in=earlier).values_list("key", "selection")
    for key, selection in contents.iterator(chunk_size=2000):
        papers = frozenset(pid for pid, _ in selection if pid in wanted)
        if papers:
            repeated[key] = papers
    if not repeated:
        return {}
    rows = Delivery.objects.filter(
        issue_id__in=earlier, status__in=SENT_LIKE, subscriber__isnull=False
    )
    if subscriber_id is not None:
        rows = rows.filter(subscriber_id=subscriber_id)
    shared: dict[frozenset[int], frozenset[int]] = {}
    sent: dict[int, frozenset[int]] = {}
    for subscriber, key in rows.values_list("subscriber_id", "content_key").iterator(
        chunk_size=10_000
    ):
        papers = repeated.get(key)
        if papers is None:
            continue
        if subscriber in sent:  # in more than one earlier issue
            papers = sent[subscriber] | papers
        sent[subscriber] = shared.setdefault(papers, papers)
    return sent


@dataclass
class Plan:
    """Who gets which papers, compact enough for a million subscribers: two arrays (subscriber
    id, index of their content or -1 when skipped) and each distinct content once."""

    subscriber_ids: array = field(default_factory=lambda: array("q"))
    content_indexes: array = field(default_factory=lambda: array("l"))
    selections: list[list] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def contents(self) -> set[str]:
        return set(self.keys)

    @property
    def skipped(self) -> int:
        return self.content_indexes.count(-1)

    @property
    def rows(self) -> Iterator[tuple[int, str, list, str]]:
        """(subscriber id, status, selection, content key) per subscriber."""
        for subscriber_id, index in zip(self.subscriber_ids, self.content_indexes, strict=True):
            if index < 0:
                yield subscriber_id, Delivery.Status.SKIPPED, [], ""
            else:
                yield (
                    subscriber_id,
                    Delivery.Status.PENDING,
                    self.selections[index],
                    self.keys[index],
                )


def issue_plan(*, batch: DailyBatch) -> Plan:
    """Who gets which papers: one row per sendable subscriber (skipped when nothing matches)."""
    candidates = _candidates(batch)
    plan = Plan()
    selections = plan_selections(
        candidates,
        _followed_topics(),
        _already_sent(batch, [c.paper_id for c in candidates]),
        limit=settings.DIGEST_MAX_PAPERS,
        fallback_to_top=settings.DIGEST_NO_MATCH == "top",
    )
    indexes: dict[int, int] = {}  # selections are shared objects: hash each once
    by_key: dict[str, int] = {}
    for subscriber_id, selection in selections:
        plan.subscriber_ids.append(subscriber_id)
        if not selection:
            plan.content_indexes.append(-1)
            continue
        index = indexes.get(id(selection))
        if index is None:
            key = content_key(selection)
            index = by_key.get(key)
            if index is None:
                index = by_key[key] = len(plan.keys)
                plan.selections.append(selection)
                plan.keys.append(key)
            indexes[id(selection)] = index
        plan.content_indexes.append(index)
    return plan


def _deliveries_insert(issue: Issue, plan: Plan) -> None:
    """The issue's contents, once each, and one Delivery row per subscriber pointing at one."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # COPY: one round trip for any number of rows (bulk_create would be many INSERTs).
        content_table, delivery_table = IssueContent._meta.db_table, Delivery._meta.db_table
        columns = (
            "issue_id, subscriber_id, status, content_key, attempts, claim, "
            "provider_message_id, last_error, created_at"
        )
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(f"COPY {content_table} (issue_id, key, selection) FROM STDIN") as copy:
                for key, selection in zip(plan.keys, plan.selections, strict=True):
                    copy.write_row((issue.pk, key, json.dumps(selection)))
            with raw.copy(f"COPY {delivery_table} ({columns}) FROM STDIN") as copy:
                pending, skipped = Delivery.Status.PENDING, Delivery.Status.SKIPPED
                for subscriber_id, index in zip(
                    plan.subscriber_ids, plan.content_indexes, strict=True
                ):
                    if index < 0:
                        copy.write_row((issue.pk, subscriber_id, skipped, "", 0, "", "", "", now))
                    else:
                        key = plan.keys[index]
                        copy.write_row((issue.pk, subscriber_id, pending, key, 0, "", "", "", now))
        return
    IssueContent.objects.bulk_create(
        (
            IssueContent(issue=issue, key=key, selection=selection)
            for key, selection in zip(plan.keys, plan.selections, strict=True)
        ),
        batch_size=2000,
    )
    Delivery.objects.bulk_create(
        (
            Delivery(issue=issue, subscriber_id=s, status=st, content_key=k, created_at=now)
            for s, st, _, k in plan.rows
        ),
        batch_size=2000,
    )


def issue_create(*, batch: DailyBatch) -> Issue:
    """The issue of a batch with its Delivery rows; creating it again returns the same one."""
    existing = Issue.objects.filter(batch=batch).first()
    if existing is not None:
        return existing
    plan = issue_plan(batch=batch)
    with transaction.atomic():
        # Lock the batch so two concurrent creators serialize; the loser finds the issue.
        DailyBatch.objects.select_for_update().get(pk=batch.pk)
        existing = Issue.objects.filter(batch=batch).first()
        if existing is not None:
            return existing
        skipped = plan.skipped
        issue = Issue.objects.create(
            batch=batch,
            recipient_count=len(plan.subscriber_ids) - skipped,
            skipped_count=skipped,
            content_count=len(plan.keys),
        )
        _deliveries_insert(issue, plan)
    if connection.vendor == "postgresql":
        # Fresh statistics for the rows just loaded, before workers start claiming: with the
        # old ones the planner expects a few pending rows and sorts all of them (1.2-2.7 s a
        # claim at 1M) instead of walking delivery_claim_idx (50 ms). Samples, so bounded.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Delivery._meta.db_table}")
    logger.info(
        "issue planned",
        extra={
            "issue": issue.pk,
            "recipients": issue.recipient_count,
            "skipped": skipped,
            "contents": issue.content_count,
        },
    )
    return issue


# --- Starting, finishing, cancelling -----------------------------------------------------------


def _enqueue_chunks(issue_id: int, pending: int) -> None:
    from newsletter.tasks import send_issue_chunk

    for _ in range(math.ceil(pending / providers.batch_limit())):
        send_issue_chunk.delay(issue_id)


def issue_start(*, issue: Issue) -> bool:
    """Move a scheduled issue to sending and enqueue its chunks. False if it already started."""
    with transaction.atomic():
        started = Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
            status=Issue.Status.SENDING, started_at=timezone.now()
        )
        if not started:
            return False
        pending = Delivery.objects.filter(issue=issue, status=Delivery.Status.PENDING).count()
        transaction.on_commit(lambda: _enqueue_chunks(issue.pk, pending))
    if not pending:
        issue_finish_if_done(issue_id=issue.pk)
    return True


def issue_cancel(*, issue: Issue) -> bool:
    """Cancel an issue that has not started sending."""
    return bool(
        Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
            status=Issue.Status.CANCELLED
        )
    )


def issue_finish_if_done(*, issue_id: int) -> bool:
    unfinished = Delivery.objects.filter(
        issue_id=issue_id, status__in=[Delivery.Status.PENDING, Delivery.Status.SENDING]
    ).exists()
    if unfinished:
        return False
    with transaction.atomic():
        finished = Issue.objects.filter(pk=issue_id, status=Issue.Status.SENDING).update(
            status=Issue.Status.SENT, finished_at=timezone.now()
        )
        if finished:
            batch_mark_sent(batch=Issue.objects.get(pk=issue_id).batch)
    return bool(finished)


def digest_send_for_day(*, day: date) -> Issue | None:
    """Send the approved batch of `day`, once. None when there is no approved batch."""
    batch = DailyBatch.objects.filter(date=day).first()
    if batch is None or batch.status not in {DailyBatch.Status.APPROVED, DailyBatch.Status.SENT}:
        logger.info("no approved batch to send", extra={"day": day.isoformat()})
        return None
    issue = issue_create(batch=batch)
    issue_start(issue=issue)
    return issue


# --- Sending a chunk ---------------------------------------------------------------------------


def _deliveries_claim(issue: Issue, limit: int) -> str | None:
    """Claim up to `limit` pending rows (grouped by content) for this worker; None if none.

    SKIP LOCKED lets concurrent workers take different rows; the conditional UPDATE makes a
    row claimable once even where row locks do not exist (SQLite).
    """
    claim = uuid.uuid4().hex
    with transaction.atomic():
        # One statement: the rows are picked (and locked) by a subquery, not sent back and
        # forth as a list of ids.
        picked = (
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(issue=issue, status=Delivery.Status.PENDING)
            .order_by("content_key", "id")
            .values("id")[:limit]
        )
        # Stamped for its first attempt here, in the same write.
        claimed = Delivery.objects.filter(id__in=picked, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SENDING,
            claim=claim,
            claimed_at=timezone.now(),
            attempts=F("attempts") + 1,
        )
    return claim if claimed else None


def _claimed_rows(
    issue: Issue, claim: str, *, retry: bool
) -> tuple[list[Delivery], dict[str, list]]:
    """The rows of a claim still to send, and the selection of each of their contents by key.

    Rows whose subscriber may no longer be mailed (paused, unsubscribed, suppressed since the
    issue was planned, or during a retry's wait) are skipped here, just before sending. A
    retry's rows are stamped for this attempt.
    """
    mine = Delivery.objects.filter(claim=claim, status=Delivery.Status.SENDING)
    with transaction.atomic():
        # Only what sending reads: the address and link key of each subscriber, and whether
        # they may still be mailed, asked of these subscribers only ("NOT IN (every sendable
        # subscriber)" became a scan of the whole table per row at 1M subscribers).
        rows = list(
            mine.select_related("subscriber")
            .only(
                "id", "issue_id", "attempts", "content_key", "subscriber__email", "subscriber__key"
            )
            .annotate(sendable=Exists(subscribers_sendable().filter(pk=OuterRef("subscriber_id"))))
            .order_by("content_key", "id")
        )
        gone = [row.pk for row in rows if not row.sendable]
        if gone:
            Delivery.objects.filter(id__in=gone, status=Delivery.Status.SENDING).update(
                status=Delivery.Status.SKIPPED, last_error="no longer subscribed at send time"
            )
        rows = [row for row in rows if row.sendable]
        if retry:
            mine.update(claimed_at=timezone.now(), attempts=F("attempts") + 1)
            for row in rows:
                row.attempts += 1
    selections = dict(
        IssueContent.objects.filter(
            issue=issue, key__in={row.content_key for row in rows}
        ).values_list("key", "selection")
    )
    return rows, selections


def digest_message(
    renderer: IssueRenderer, deliveries: list[Delivery], *, selection: list, claim: str = ""
) -> AnymailMessage:
    """One provider batch: the deliveries' shared content (`selection`), one To per
    recipient, personal links merged in."""
    first = deliveries[0]
    rendered = renderer.render(selection, first.content_key)
    message = AnymailMessage(
        subject=rendered.subject,
        body=rendered.text,
        to=[d.subscriber.email for d in deliveries],
        headers={
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": settings.DIGEST_LIST_ID,
        },
    )
    message.attach_alternative(rendered.html, "text/html")
    message.tags = [DIGEST_TAG]
    message.metadata = {"issue": str(first.issue_id), "claim": claim}
    message.merge_data, message.merge_headers, message.merge_metadata = {}, {}, {}
    for delivery in deliveries:
        address = delivery.subscriber.email
        unsubscribe = unsubscribe_url(delivery.subscriber)
        message.merge_data[address] = {
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences_url(delivery.subscriber),
        }
        message.merge_headers[address] = {"List-Unsubscribe": f"<{unsubscribe}>"}
        message.merge_metadata[address] = {"delivery": str(delivery.pk)}
    return message


def _transient(error: AnymailAPIError) -> TransientSendError | None:
    """A TransientSendError if the provider certainly did not take the batch and may later."""
    status = getattr(error, "status_code", None)
    if status == 429 or (status is not None and status >= 500):
        response = getattr(error, "response", None)
        retry_after = response.headers.get("Retry-After") if response is not None else None
        return TransientSendError(
            f"provider answered {status}",
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if isinstance(error.__cause__, requests.ConnectionError) and not isinstance(
        error.__cause__, requests.ReadTimeout
    ):
        return TransientSendError(f"provider unreachable: {error.__cause__}")
    return None


def _record_statuses(answered: list[tuple[list[Delivery], AnymailMessage]]) -> None:
    """Store the provider's answer for each (deliveries, message) pair, in one transaction."""
    now = timezone.now()
    sent, failed = [], []
    for deliveries, message in answered:
        by_address = {d.subscriber.email.lower(): d for d in deliveries}
        answered_ids = set()
        for address, status in message.anymail_status.recipients.items():
            delivery = by_address.get(address.lower())
            if delivery is None:
                continue
            answered_ids.add(delivery.pk)
            if status.status in {"sent", "queued"}:
                delivery.status, delivery.sent_at = Delivery.Status.SENT, now
                message_id = status.message_id
                delivery.provider_message_id = "" if message_id is None else str(message_id)
                delivery.last_error = ""
                sent.append(delivery)
            else:
                delivery.status = Delivery.Status.FAILED
                delivery.last_error = f"provider {status.status} this recipient"
                failed.append(delivery)
        for delivery in deliveries:
            if delivery.pk not in answered_ids:
                delivery.status = Delivery.Status.FAILED
                delivery.last_error = "provider gave no status for this recipient"
                failed.append(delivery)
    # One UPDATE per outcome instead of one per row (a chunk is up to 500 rows): sent rows
    # differ only in their message id, failed rows only in their error. Conditional on still
    # being ours: the sweeper may have reconciled a row meanwhile.
    with transaction.atomic():
        if sent:
            _mark_sent(sent, now)
        errors: dict[str, list[int]] = defaultdict(list)
        for delivery in failed:
            errors[delivery.last_error].append(delivery.pk)
        for error, ids in errors.items():
            Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
                status=Delivery.Status.FAILED, last_error=error
            )


def _mark_sent(sent: list[Delivery], now) -> None:
    ids = [d.pk for d in sent]
    message_ids = [d.provider_message_id for d in sent]
    if connection.vendor == "postgresql":
        # Rows and their message ids as two arrays: one short statement for 500 rows (the
        # ORM's CASE WHEN spends more time compiling than PostgreSQL spends running it).
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Delivery._meta.db_table} AS d SET status = %s, sent_at = %s, "  # noqa: S608
                "last_error = '', provider_message_id = v.message_id "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, message_id) "
                "WHERE d.id = v.id AND d.status = %s",
                [Delivery.Status.SENT, now, ids, message_ids, Delivery.Status.SENDING],
            )
        return
    Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.SENT,
        sent_at=now,
        last_error="",
        provider_message_id=Case(
            *(When(pk=pk, then=Value(m)) for pk, m in zip(ids, message_ids, strict=True)),
            default=Value(""),
        ),
    )


def deliveries_release_claim(*, claim: str, error: str) -> int:
    """Give a claim's unsent rows back (the provider did not take them): to pending for
    another try, or failed once they have used up DIGEST_MAX_ATTEMPTS."""
    mine = Delivery.objects.filter(claim=claim, status=Delivery.Status.SENDING)
    mine.filter(attempts__gte=settings.DIGEST_MAX_ATTEMPTS).update(
        status=Delivery.Status.FAILED, last_error=f"gave up after retries: {error}"[:2000]
    )
    return mine.update(
        status=Delivery.Status.PENDING, claim="", claimed_at=None, last_error=error[:2000]
    )


_renderer_cache: dict[tuple, IssueRenderer] = {}


def _issue_renderer(issue: Issue) -> IssueRenderer:
    """This worker's renderer of an issue: paper blocks are rendered and inlined once per
    issue, not once per chunk. Only the latest issue's is kept."""
    key = (issue.pk, issue.batch_id, issue.started_at)  # ids alone may be reused (SQLite)
    renderer = _renderer_cache.get(key)
    if renderer is None:
        _renderer_cache.clear()
        renderer = _renderer_cache[key] = IssueRenderer(issue.batch)
    return renderer


def deliveries_send_chunk(
    *, issue_id: int, claim: str | None = None, renderer: IssueRenderer | None = None
) -> int:
    """Send one provider batch of an issue: a new claim of pending rows, or (on a retry) the
    unsent rows of `claim`.

    Returns how many deliveries the provider took. Raises TransientSendError when it should
    be retried later; the unsent rows then stay in the claim, so the retry sends exactly
    them and other workers do not pick them up meanwhile.
    """
    issue = Issue.objects.select_related("batch").get(pk=issue_id)
    if issue.status != Issue.Status.SENDING:
        return 0
    retry = claim is not None
    claim = claim or _deliveries_claim(issue, providers.batch_limit())
    rows, selections = _claimed_rows(issue, claim, retry=retry) if claim else ([], {})
    if not rows:
        issue_finish_if_done(issue_id=issue.pk)
        return 0
    renderer = renderer or _issue_renderer(issue)
    groups = [list(g) for _, g in groupby(rows, key=lambda d: d.content_key)]
    messages = [
        digest_message(renderer, group, selection=selections[group[0].content_key], claim=claim)
        for group in groups
    ]
    handed, todo = 0, list(range(len(groups)))
    backend = get_connection()
    while todo:
        # The Postmark batch backend sends the whole chunk in one call; backends that post
        # message by message stop at the first failure, and the rest goes again.
        error: AnymailError | None = None
        try:
            backend.send_messages([messages[i] for i in todo])
        except (AnymailAPIError, AnymailRecipientsRefused) as exc:
            error = exc
        answered = [i for i in todo if messages[i].anymail_status.recipients]
        if error is None:
            answered = todo  # unanswered ones are recorded as failed: no status for them
        if answered:
            _record_statuses([(groups[i], messages[i]) for i in answered])
            handed += sum(len(groups[i]) for i in answered)
        todo = [i for i in todo if i not in set(answered)]
        if error is None:
            break
        if isinstance(error, AnymailRecipientsRefused) and answered:
            continue  # all of one message's recipients refused: recorded; send the rest
        # The messages of the call that failed (all of them for the batch backend).
        covered = {id(m) for m in getattr(error, "email_messages", [error.email_message])}
        failed_call = [i for i in todo if id(messages[i]) in covered] or todo[:1]
        if isinstance(error, AnymailAPIError):
            transient = _transient(error)
            if transient is not None:
                if rows[0].attempts >= settings.DIGEST_MAX_ATTEMPTS:
                    deliveries_release_claim(claim=claim, error=str(transient))
                    return handed
                transient.claim = claim
                raise transient from error
            if isinstance(error, AnymailRequestsAPIError) and error.status_code is None:
                # Read timeout: the provider may have accepted them. The sweeper asks it later;
                # the messages not in that call are given back for another worker.
                logger.warning("send outcome unknown; left for the sweeper", extra={"claim": claim})
                Delivery.objects.filter(
                    pk__in=[d.pk for i in todo if i not in failed_call for d in groups[i]],
                    status=Delivery.Status.SENDING,
                ).update(status=Delivery.Status.PENDING, claim="", claimed_at=None)
                return handed
        Delivery.objects.filter(
            pk__in=[d.pk for i in failed_call for d in groups[i]], status=Delivery.Status.SENDING
        ).update(status=Delivery.Status.FAILED, last_error=f"provider refused: {error}"[:2000])
        todo = [i for i in todo if i not in failed_call]
    issue_finish_if_done(issue_id=issue.pk)
    return handed


# --- Recovering from dead workers --------------------------------------------------------------


def deliveries_sweep() -> int:
    """Settle rows left in "sending" past their lease, then re-enqueue unfinished issues.

    A worker that died mid-call may or may not have had its batch accepted. The provider is
    asked which messages of the claim it accepted: those are marked sent, the rest go back to
    pending. Where the provider cannot say, the rows are failed for an editor to retry,
    because resending blindly could mail people twice.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS)
    stuck_claims = (
        Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__lt=cutoff)
        .values_list("claim", flat=True)
        .distinct()
    )
    settled = 0
    for claim in list(stuck_claims):
        accepted = providers.accepted_messages(claim)
        rows = Delivery.objects.filter(claim=claim, status=Delivery.Status.SENDING)
        with transaction.atomic():
            if accepted is None:
                settled += rows.update(
                    status=Delivery.Status.FAILED,
                    last_error="worker lost mid-send and the provider cannot confirm; not "
                    "resent to avoid a duplicate",
                )
                continue
            for delivery_id, message_id in accepted.items():
                settled += rows.filter(pk=delivery_id).update(
                    status=Delivery.Status.SENT,
                    provider_message_id=message_id,
                    sent_at=timezone.now(),
                )
            settled += rows.update(status=Delivery.Status.PENDING, claim="", claimed_at=None)
    for issue_id in Issue.objects.filter(status=Issue.Status.SENDING).values_list("id", flat=True):
        count = Delivery.objects.filter(issue_id=issue_id, status=Delivery.Status.PENDING).count()
        if not count:
            issue_finish_if_done(issue_id=issue_id)
            continue
        # Re-enqueue only an issue nobody has worked on for a lease: its chunk tasks were lost
        # (broker restarted empty, retries used up). A busy issue already has tasks queued.
        progressing = Delivery.objects.filter(issue_id=issue_id, claimed_at__gte=cutoff).exists()
        if not progressing:
            transaction.on_commit(lambda i=issue_id, c=count: _enqueue_chunks(i, c))
    return settled


def deliveries_retry(*, deliveries) -> int:
    """Send failed deliveries again (editor action); their issue goes back to sending."""
    ids = list(deliveries.filter(status=Delivery.Status.FAILED).values_list("id", flat=True))
    with transaction.atomic():
        count = Delivery.objects.filter(pk__in=ids, status=Delivery.Status.FAILED).update(
            status=Delivery.Status.PENDING, attempts=0, claim="", claimed_at=None
        )
        issue_ids = set(Delivery.objects.filter(pk__in=ids).values_list("issue_id", flat=True))
        Issue.objects.filter(pk__in=issue_ids, status=Issue.Status.SENT).update(
            status=Issue.Status.SENDING
        )
        for issue_id in issue_ids:
            transaction.on_commit(lambda i=issue_id: _enqueue_chunks(i, count))
    return count


# --- Tracking webhooks -------------------------------------------------------------------------

SUPPRESSING_EVENTS = {
    "bounced": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    "rejected": "bounced",
}
DELIVERY_STATUS_FOR_EVENT = {
    "bounced": Delivery.Status.BOUNCED,
    "rejected": Delivery.Status.BOUNCED,
    "complained": Delivery.Status.COMPLAINED,
}
TIMESTAMP_FIELD_FOR_EVENT = {
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "bounced": "bounced_at",
    "rejected": "bounced_at",
    "complained": "complained_at",
}


def _event_key(event) -> str:
    """The provider's event id, or (for events without one, such as Postmark's deliveries and
    opens) a digest of what identifies the event: never the address itself."""
    if event.event_id:
        return f"{event.event_type}:{event.event_id}"[:200]
    stamp = event.timestamp.isoformat() if event.timestamp else ""
    identity = f"{event.message_id}|{event.recipient}|{stamp}".encode()
    return f"{event.event_type}:{hashlib.sha256(identity).hexdigest()}"


def tracking_event_record(*, event) -> bool:
    """Apply one Anymail tracking event once. Returns False for a replayed event."""
    metadata = event.metadata or {}
    delivery = None
    if str(metadata.get("delivery", "")).isdigit():
        delivery = Delivery.objects.filter(pk=int(metadata["delivery"])).first()
    if delivery is None and event.message_id:
        delivery = Delivery.objects.filter(provider_message_id=event.message_id).first()
    with transaction.atomic():
        _, created = TrackingEvent.objects.get_or_create(
            event_key=_event_key(event),
            defaults={
                "event_type": event.event_type,
                "provider_message_id": event.message_id or "",
                "delivery": delivery,
                "occurred_at": event.timestamp,
                "description": (event.description or "")[:2000],
            },
        )
        if not created:
            return False
        if delivery is not None:
            stamp_field = TIMESTAMP_FIELD_FOR_EVENT.get(event.event_type)
            changes = {}
            if stamp_field and getattr(delivery, stamp_field) is None:
                changes[stamp_field] = event.timestamp or timezone.now()
            if event.event_type in DELIVERY_STATUS_FOR_EVENT and (
                event.event_type != "bounced" or providers.bounce_is_permanent(event)
            ):
                changes["status"] = DELIVERY_STATUS_FOR_EVENT[event.event_type]
            if changes:
                Delivery.objects.filter(pk=delivery.pk).update(**changes)
        permanent = event.event_type != "bounced" or providers.bounce_is_permanent(event)
        if event.event_type in SUPPRESSING_EVENTS and event.recipient and permanent:
            subscriber_suppress(email=event.recipient, reason=SUPPRESSING_EVENTS[event.event_type])
    return True


# --- Previews ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestPreview:
    """Exactly the message one subscriber gets for a batch, merge fields filled in."""

    subject: str
    html: str
    text: str
    headers: dict[str, str]
    selection: list

    @property
    def size_kb(self) -> float:
        return round(len(self.html.encode()) / 1024, 1)


def digest_preview(*, batch: DailyBatch, subscriber: Subscriber) -> DigestPreview | None:
    """What `subscriber` would get for `batch` now; None when nothing matches their topics.

    Built by the same functions as a real send (selection, rendering, merge fields), so the
    previewed HTML is byte-for-byte the HTML the subscriber receives.
    """
    candidates = _candidates(batch)
    followed = frozenset(subscriber.topics.filter(is_active=True).values_list("id", flat=True))
    excluded = _already_sent(
        batch, [c.paper_id for c in candidates], subscriber_id=subscriber.pk
    ).get(subscriber.pk)
    [(_, selection)] = plan_selections(
        candidates,
        [(subscriber.pk, followed)],
        {subscriber.pk: excluded} if excluded else {},
        limit=settings.DIGEST_MAX_PAPERS,
        fallback_to_top=settings.DIGEST_NO_MATCH == "top",
    )
    if not selection:
        return None
    delivery = Delivery(subscriber=subscriber, content_key="")
    delivery.pk = 0  # never saved; only fills the merge metadata
    message = digest_message(IssueRenderer(batch), [delivery], selection=selection)
    [(_, personal)] = messages_per_recipient(message)
    return DigestPreview(
        subject=personal.subject,
        html=personal.alternatives[0][0],
        text=personal.body,
        headers=dict(personal.extra_headers),
        selection=selection,
    )


def digest_preview_send(*, preview: DigestPreview, to: str) -> None:
    """Send a preview to an editor, marked as a test so it is not mistaken for the real one.

    Without the List-Unsubscribe headers: they carry the previewed subscriber's one-click
    link, and the editor's mail client offering "Unsubscribe" would unsubscribe that person.
    """
    headers = {k: v for k, v in preview.headers.items() if not k.lower().startswith("list-unsub")}
    message = EmailMultiAlternatives(
        subject=f"[Test] {preview.subject}", body=preview.text, to=[to], headers=headers
    )
    message.attach_alternative(preview.html, "text/html")
    message.send()


# --- Reading -----------------------------------------------------------------------------------


def issue_stats(issue: Issue) -> dict[str, int | float]:
    counts = Delivery.objects.filter(issue=issue).aggregate(
        total=Count("id"),
        **{s.value: Count("id", filter=Q(status=s.value)) for s in Delivery.Status},
        delivered=Count("id", filter=Q(delivered_at__isnull=False)),
        opened=Count("id", filter=Q(opened_at__isnull=False)),
        clicked=Count("id", filter=Q(clicked_at__isnull=False)),
    )
    handed = counts["sent"] + counts["bounced"] + counts["complained"]
    for name in ("bounced", "complained", "opened", "clicked"):
        counts[f"{name}_rate"] = round(counts[name] / handed, 4) if handed else 0.0
    return counts
