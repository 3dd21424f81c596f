"""Sending an issue in provider-sized chunks, exactly once per delivery.

Each ``deliveries_send_chunk`` claims up to one provider batch of pending rows, builds one
message per distinct content, sends them and records the provider's per-recipient answer;
what an error means is decided by ``send_outcome`` alone. ``deliveries_sweep`` recovers rows
a dead worker left behind, ``deliveries_retry`` sends failed ones again. Every state change is
a conditional UPDATE, so no row is sent twice.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby

import requests
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailRecipientsRefused,
    AnymailRequestsAPIError,
)
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone

from newsletter import providers
from newsletter.composition import (
    LESS,
    MORE,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    feedback_field,
)
from newsletter.models import Delivery, Issue, IssueContent
from newsletter.rendering import IssueRenderer
from newsletter.services.issues import issue_chunks_enqueue, issue_finish_if_done
from subscriptions.addresses import email_problem
from subscriptions.links import preferences_url, unsubscribe_url
from subscriptions.selectors import subscribers_sendable

logger = logging.getLogger(__name__)

DIGEST_TAG = "daily-digest"


class TransientSendError(Exception):
    """The provider could not take the batch right now (429, 5xx, connection refused)."""

    def __init__(
        self, message: str, retry_after: float | None = None, claim: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.claim = claim  # the rows waiting for the retry


# --- What the provider's answer means -----------------------------------------------------------


class Outcome(enum.Enum):
    ACCEPTED = "accepted"  # every message answered, recipient by recipient
    REFUSED = "refused"  # one message's recipients refused (recorded); send the rest
    TRANSIENT = "transient"  # certainly not taken, may be later: retry the claim
    UNKNOWN = "unknown"  # may have been taken (read timeout): leave it to the sweeper
    PERMANENT = "permanent"  # refused the whole call: fail its rows


@dataclass(frozen=True)
class SendOutcome:
    outcome: Outcome
    reason: str = ""  # for the rows' last_error
    retry_after: float | None = None  # seconds, from a transient answer's Retry-After


def send_outcome(error: AnymailError | None, *, answered: bool) -> SendOutcome:
    """What a send call's error (None: none) means. `answered`: some message got statuses.

    Only a certain "not taken" is retried; a call that may have reached the provider is never
    sent blindly again (Anymail warns that this duplicates mail).
    """
    if error is None:
        return SendOutcome(Outcome.ACCEPTED)
    if isinstance(error, AnymailRecipientsRefused) and answered:
        return SendOutcome(Outcome.REFUSED)
    if isinstance(error, AnymailAPIError):
        status = getattr(error, "status_code", None)
        if status == 429 or (status is not None and status >= 500):
            response = getattr(error, "response", None)
            retry_after = response.headers.get("Retry-After") if response is not None else None
            return SendOutcome(
                Outcome.TRANSIENT,
                f"provider answered {status}",
                float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        cause = error.__cause__
        if isinstance(cause, requests.ConnectionError) and not isinstance(
            cause, requests.ReadTimeout
        ):
            return SendOutcome(Outcome.TRANSIENT, f"provider unreachable: {cause}")
        if isinstance(error, AnymailRequestsAPIError) and status is None:
            return SendOutcome(Outcome.UNKNOWN, "send outcome unknown")
    return SendOutcome(Outcome.PERMANENT, f"provider refused: {error}"[:2000])


# --- Claiming rows ------------------------------------------------------------------------------


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
        # An address stored before the address rules applied would fail the whole chunk in
        # Anymail's parser (or worse, be split at a comma by the provider): refused alone.
        unsendable = {row.pk: email_problem(row.subscriber.email) for row in rows}
        for pk, problem in unsendable.items():
            if problem:
                Delivery.objects.filter(pk=pk, status=Delivery.Status.SENDING).update(
                    status=Delivery.Status.FAILED, last_error=f"address not supported: {problem}"
                )
        rows = [row for row in rows if not unsendable[row.pk]]
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


# --- The message --------------------------------------------------------------------------------


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
    papers = [paper_id for paper_id, _ in selection]
    links = renderer.feedback_links
    for delivery in deliveries:
        address = delivery.subscriber.email
        unsubscribe = unsubscribe_url(delivery.subscriber)
        data = {
            UNSUBSCRIBE_URL: unsubscribe,
            PREFERENCES_URL: preferences_url(delivery.subscriber),
        }
        key = delivery.subscriber.key
        for paper_id in papers:
            data[feedback_field(paper_id, MORE)] = links.url(key, paper_id, MORE)
            data[feedback_field(paper_id, LESS)] = links.url(key, paper_id, LESS)
        message.merge_data[address] = data
        message.merge_headers[address] = {"List-Unsubscribe": f"<{unsubscribe}>"}
        message.merge_metadata[address] = {"delivery": str(delivery.pk)}
    return message


# --- Recording answers --------------------------------------------------------------------------


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
    # One UPDATE per outcome instead of one per row (a chunk is a provider batch of rows): sent
    # rows differ only in their message id, failed rows only in their error. Conditional on
    # still being ours: the sweeper may have reconciled a row meanwhile.
    with transaction.atomic():
        if sent:
            _mark_sent(sent, now)
        errors: dict[str, list[int]] = defaultdict(list)
        for delivery in failed:
            errors[delivery.last_error].append(delivery.pk)
        for error, ids in errors.items():
            _mark_failed(ids, error)


def _mark_sent(sent: list[Delivery], now) -> None:
    ids = [d.pk for d in sent]
    message_ids = [d.provider_message_id for d in sent]
    if connection.vendor == "postgresql":
        # Rows and their message ids as two arrays: one short statement for a whole batch (the
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


def _mark_failed(ids: list[int], error: str) -> None:
    Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.FAILED, last_error=error
    )


def _give_back(ids: list[int]) -> None:
    """Rows of a claim not tried: back to pending for another worker."""
    Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.PENDING, claim="", claimed_at=None
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


# --- Sending a chunk ----------------------------------------------------------------------------

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


def _send(backend, messages: list[AnymailMessage]) -> AnymailError | None:
    """Hand the messages to the backend; the error it raised, if it is one a send may raise.

    The Postmark batch backend sends them all in one call; backends that post message by
    message stop at the first failure. Either way, the messages answered before the error
    carry their ``anymail_status``.
    """
    try:
        backend.send_messages(messages)
    except (AnymailAPIError, AnymailRecipientsRefused) as error:
        return error
    return None


@dataclass
class _Chunk:
    """One claim's messages, one per distinct content, and the rows each one carries."""

    claim: str
    groups: list[list[Delivery]]
    messages: list[AnymailMessage]
    attempts: int  # of the claim's rows, this one included

    def row_ids(self, indexes: list[int]) -> list[int]:
        return [d.pk for i in indexes for d in self.groups[i]]

    def answered(self, error: AnymailError | None, todo: list[int]) -> list[int]:
        """The messages of `todo` the provider gave statuses for. Without an error all of
        them: recipients with no status are then recorded as failed."""
        if error is None:
            return todo
        return [i for i in todo if self.messages[i].anymail_status.recipients]

    def failed_call(self, error: AnymailError, todo: list[int]) -> list[int]:
        """The messages (of `todo`) of the call that failed: all of them for the batch
        backend, the first unanswered one for backends that post message by message."""
        covered = {id(m) for m in getattr(error, "email_messages", [error.email_message])}
        return [i for i in todo if id(self.messages[i]) in covered] or todo[:1]


def _without(todo: list[int], done: list[int]) -> list[int]:
    drop = set(done)
    return [i for i in todo if i not in drop]


def _chunk_send(chunk: _Chunk) -> tuple[int, bool]:
    """Send the chunk's messages, acting on what ``send_outcome`` makes of each answer.

    Returns (deliveries the provider took, whether every message was settled). Raises
    TransientSendError when the claim should be retried later.
    """
    handed, todo = 0, list(range(len(chunk.messages)))
    backend = get_connection()
    while todo:
        error = _send(backend, [chunk.messages[i] for i in todo])
        answered = chunk.answered(error, todo)
        if answered:
            _record_statuses([(chunk.groups[i], chunk.messages[i]) for i in answered])
            handed += len(chunk.row_ids(answered))
            todo = _without(todo, answered)
        verdict = send_outcome(error, answered=bool(answered))
        if verdict.outcome is Outcome.ACCEPTED:
            break
        if verdict.outcome is Outcome.REFUSED:
            continue
        failed_call = chunk.failed_call(error, todo)
        if verdict.outcome is Outcome.TRANSIENT:
            if chunk.attempts >= settings.DIGEST_MAX_ATTEMPTS:
                deliveries_release_claim(claim=chunk.claim, error=verdict.reason)
                return handed, False
            raise TransientSendError(
                verdict.reason, retry_after=verdict.retry_after, claim=chunk.claim
            ) from error
        if verdict.outcome is Outcome.UNKNOWN:
            # The provider may have accepted them: the sweeper asks it later. The messages not
            # in that call are given back for another worker.
            logger.warning(
                "send outcome unknown; left for the sweeper", extra={"claim": chunk.claim}
            )
            _give_back(chunk.row_ids(_without(todo, failed_call)))
            return handed, False
        _mark_failed(chunk.row_ids(failed_call), verdict.reason)
        todo = _without(todo, failed_call)
    return handed, True


def deliveries_send_chunk(*, issue_id: int, claim: str | None = None) -> int:
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
    renderer = _issue_renderer(issue)
    groups = [list(g) for _, g in groupby(rows, key=lambda d: d.content_key)]
    messages = [
        digest_message(renderer, group, selection=selections[group[0].content_key], claim=claim)
        for group in groups
    ]
    handed, settled = _chunk_send(
        _Chunk(claim=claim, groups=groups, messages=messages, attempts=rows[0].attempts)
    )
    if settled:
        issue_finish_if_done(issue_id=issue.pk)
    return handed


# --- Recovering from dead workers, and retries --------------------------------------------------


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
            transaction.on_commit(
                lambda i=issue_id, c=count: issue_chunks_enqueue(issue_id=i, pending=c)
            )
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
            transaction.on_commit(
                lambda i=issue_id: issue_chunks_enqueue(issue_id=i, pending=count)
            )
    return count
