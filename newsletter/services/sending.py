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
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby

import orjson
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
from django.db.models import Case, Exists, F, Min, OuterRef, Q, TextField, Value, When
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.module_loading import import_string

from newsletter import providers
from newsletter.composition import (
    FEEDBACK_URL,
    LIST_UNSUBSCRIBE,
    PREFERENCES_URL,
    SCHEDULE,
    UNSUBSCRIBE_URL,
    VIEW_TOKEN,
)
from newsletter.models import Delivery, Issue, IssueContent
from newsletter.rendering import IssueRenderer, schedule_words
from newsletter.services import concurrent_sends, pacing, provider_quota, rate
from newsletter.services.issues import issue_chunks_enqueue, issue_finish_if_done
from newsletter.services.single_sends import chunk_single
from subscriptions.addresses import email_problem
from subscriptions.links import KeyLinks
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
        if getattr(error, "quota_exhausted", False):
            # Refused whole because the provider's daily quota is used up: certainly not
            # taken. (The send code waits for the quota as soon as the answer comes:
            # _send_calls.)
            return SendOutcome(Outcome.TRANSIENT, f"provider's daily quota used up: {error}")
        status = getattr(error, "status_code", None) or _boto3_status(error)
        if status == 429 or (status is not None and status >= 500):
            response = getattr(error, "response", None)
            headers = getattr(response, "headers", None) or {}
            retry_after = headers.get("Retry-After")
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


def _boto3_status(error: AnymailAPIError) -> int | None:
    """The HTTP status of an Amazon SES answer: Anymail passes boto3's parsed error response
    (a dict) rather than a requests response, so its status_code stays None."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


# --- Claiming rows ------------------------------------------------------------------------------


class ClaimUnsettled(Exception):
    """A claim's rows may be with the provider and it cannot say yet: ask again later."""

    def __init__(self, message: str, *, claim: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.claim = claim
        self.retry_after = retry_after  # seconds until the provider's answer is conclusive


def settle_after() -> timedelta:
    """How old a call must be before "the provider's search does not have it" means it was
    not taken: our client's timeout plus the time the provider may still take after it.

    Rows are stamped handed when they are claimed; under a per-second send rate the call
    itself may leave up to rate.MAX_SLEEP_SECONDS later (waiting for its turn), so that is
    added."""
    seconds = settings.ANYMAIL_TIMEOUT_SECONDS + settings.DIGEST_LEASE_MARGIN_SECONDS
    if settings.SEND_RATE_PER_SECOND:
        seconds += rate.MAX_SLEEP_SECONDS
    return timedelta(seconds=seconds)


def _deliveries_claim(issue: Issue, limit: int, *, claim: str, stamp) -> int:
    """Claim up to `limit` pending rows (grouped by content) as `claim`; how many it got.

    SKIP LOCKED lets concurrent workers take different rows; the conditional UPDATE makes a
    row claimable once even where row locks do not exist (SQLite).
    """
    with transaction.atomic():
        # One statement: the rows are picked (and locked) by a subquery, not sent back and
        # forth as a list of ids.
        picked = (
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(issue=issue, status=Delivery.Status.PENDING)
            .order_by("content_key", "id")
            .values("id")[:limit]
        )
        # Stamped for its first attempt (and as handed to the provider) in the same write.
        return Delivery.objects.filter(id__in=picked, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SENDING,
            claim=claim,
            claimed_at=stamp,
            handed_at=stamp,
            attempts=F("attempts") + 1,
        )


def _claim_ask(claim: str, *, statuses: list[str]):
    """Ask the provider which messages of `claim` it accepted and mark those rows sent.

    Returns when it was asked (a row handed more than settle_after() before that and not
    found was certainly not taken), or None when the provider cannot say.
    """
    asked_at = timezone.now()
    accepted = providers.accepted_messages(claim)
    if accepted is None:
        return None
    found = [(int(d), m) for d, m in accepted.items() if str(d).isdigit()]
    if found:
        _mark_sent(claim, found, asked_at, statuses=statuses)
    return asked_at


def _claim_resume(claim: str, *, stamp) -> int:
    """Take up again the rows a task left in `claim` (a retry, or a redelivery after the
    worker died); how many are stamped for this attempt.

    Rows handed to the provider in a call whose answer was never recorded are settled first,
    as the sweeper does: those it accepted are marked sent, and the rest are sent again only
    once its answer is conclusive. Raises ClaimUnsettled until then.
    """
    mine = Delivery.objects.filter(claim=claim, status=Delivery.Status.SENDING)
    if not mine.exists():
        return 0
    not_taken = Q(handed_at__isnull=True)
    in_flight = mine.filter(handed_at__isnull=False)
    if in_flight.exists():
        asked_at = _claim_ask(claim, statuses=[Delivery.Status.SENDING])
        if asked_at is None:
            raise ClaimUnsettled("the provider cannot say what it accepted", claim=claim)
        conclusive_before = asked_at - settle_after()
        unsure = in_flight.filter(handed_at__gte=conclusive_before).aggregate(Min("handed_at"))
        if unsure["handed_at__min"] is not None:
            wait = unsure["handed_at__min"] - conclusive_before
            raise ClaimUnsettled(
                "the provider may still accept a call",
                claim=claim,
                retry_after=wait.total_seconds(),
            )
        not_taken |= Q(handed_at__lt=conclusive_before)
    # Conditional on what was just checked: the sweeper may have taken rows back meanwhile.
    return mine.filter(not_taken).update(
        claimed_at=stamp, handed_at=stamp, attempts=F("attempts") + 1
    )


def _claimed_rows(issue: Issue, claim: str, *, stamp) -> tuple[list[Delivery], dict[str, list]]:
    """The rows of a claim stamped for this attempt, and the selection of each of their
    contents by key.

    Rows whose subscriber may no longer be mailed (paused, unsubscribed, suppressed since the
    issue was planned, or during a retry's wait) are skipped here, just before sending.
    """
    mine = Delivery.objects.filter(claim=claim, status=Delivery.Status.SENDING, handed_at=stamp)
    with transaction.atomic():
        # Only what sending reads: the address and link key of each subscriber.
        rows = list(
            mine.select_related("subscriber")
            .only(
                "id",
                "issue_id",
                "attempts",
                "content_key",
                "subscriber__email",
                "subscriber__key",
                # The footer states the reader's own schedule.
                "subscriber__time_zone",
                "subscriber__delivery_hour",
                "subscriber__frequency",
                "subscriber__weekday",
            )
            .order_by("content_key", "id")
        )
        # Whether they may still be mailed, asked of these subscribers only, by their ids in
        # a query of its own: "NOT IN (every sendable subscriber)" became a scan of the whole
        # table per row at 1M subscribers, and an EXISTS per row in the same SELECT was
        # planned as one hashed scan of every subscriber per chunk (63 ms of PostgreSQL's
        # time per 500 emails at 100k, 2 ms this way).
        sendable = set(
            subscribers_sendable()
            .filter(pk__in={row.subscriber_id for row in rows})
            .values_list("pk", flat=True)
        )
        for row in rows:
            row.sendable = row.subscriber_id in sendable
        gone = [row.pk for row in rows if not row.sendable]
        if gone:
            Delivery.objects.filter(id__in=gone, status=Delivery.Status.SENDING).update(
                status=Delivery.Status.SKIPPED,
                handed_at=None,
                last_error="no longer subscribed at send time",
            )
        rows = [row for row in rows if row.sendable]
        # An address stored before the address rules applied would fail the whole chunk in
        # Anymail's parser (or worse, be split at a comma by the provider): refused alone.
        unsendable = {row.pk: email_problem(row.subscriber.email) for row in rows}
        for pk, problem in unsendable.items():
            if problem:
                Delivery.objects.filter(pk=pk, claim=claim, status=Delivery.Status.SENDING).update(
                    status=Delivery.Status.FAILED,
                    handed_at=None,
                    last_error=f"address not supported: {problem}",
                )
        rows = [row for row in rows if not unsendable[row.pk]]
    # Read as text and parsed by orjson: Django's JSONField parses each with json.loads, a
    # tenth of the time a chunk spent outside the provider call with every content distinct.
    texts = (
        IssueContent.objects.filter(issue=issue, key__in={row.content_key for row in rows})
        .annotate(text=Cast("selection", TextField()))
        .values_list("key", "text")
    )
    return rows, {key: orjson.loads(text) for key, text in texts}


# --- The message --------------------------------------------------------------------------------


def digest_message(
    renderer: IssueRenderer,
    deliveries: list[Delivery],
    *,
    selection: list,
    claim: str = "",
    key_links: KeyLinks | None = None,
) -> AnymailMessage:
    """One provider batch: the deliveries' shared content (`selection`), one To per
    recipient, personal links merged in (`key_links`: the chunk's, made once for all its
    messages)."""
    key_links = key_links or KeyLinks()
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
    links = renderer.feedback_links
    for delivery in deliveries:
        address = delivery.subscriber.email
        unsubscribe = key_links.unsubscribe(delivery.subscriber)
        message.merge_data[address] = {
            UNSUBSCRIBE_URL: unsubscribe,
            PREFERENCES_URL: key_links.preferences(delivery.subscriber),
            # One signed token for all of the recipient's 👍/👎 links (subscriptions.links).
            FEEDBACK_URL: links.base(delivery.subscriber.key),
            VIEW_TOKEN: key_links.view_token(delivery.subscriber),
            SCHEDULE: _schedule_words(delivery.subscriber),
        }
        message.merge_headers[address] = {LIST_UNSUBSCRIBE: f"<{unsubscribe}>"}
        message.merge_metadata[address] = {"delivery": str(delivery.pk)}
    return message


def _schedule_words(subscriber) -> str:
    return schedule_words(
        subscriber.time_zone, subscriber.delivery_hour, subscriber.frequency, subscriber.weekday
    )


# --- Recording answers --------------------------------------------------------------------------


def _record_statuses(
    claim: str, answered: list[tuple[list[Delivery], AnymailMessage]]
) -> list[int]:
    """Store the provider's answer for each (deliveries, message) pair, in one transaction.

    Returns the rows the provider answered it did not take for now (SES's throttled
    destinations): left in the claim, not handed, for the claim's retry to send."""
    now = timezone.now()
    sent, failed, unknown, deferred = [], [], [], []
    for deliveries, message in answered:
        by_address = {d.subscriber.email.lower(): d for d in deliveries}
        answered_ids = set()
        for address, status in message.anymail_status.recipients.items():
            delivery = by_address.get(address.lower())
            if delivery is None:
                continue
            answered_ids.add(delivery.pk)
            if status.status in {"sent", "queued"}:
                message_id = status.message_id
                sent.append((delivery.pk, "" if message_id is None else str(message_id)))
            elif getattr(status, "transient", False):
                deferred.append(delivery.pk)
            elif status.status == "unknown":
                # Taken or not, the answer does not say (SparkPost's mixed totals): possibly
                # sent, so never failed (which "Retry failed" would send again).
                unknown.append(delivery.pk)
            else:
                # A provider that says why (Resend's batch errors) has it kept with the row.
                reason = getattr(status, "reason", "")
                error = f"provider {status.status} this recipient"
                failed.append((delivery.pk, f"{error}: {reason}"[:2000] if reason else error))
        for delivery in deliveries:
            if delivery.pk not in answered_ids:
                failed.append((delivery.pk, "provider gave no status for this recipient"))
    # One UPDATE per outcome instead of one per row (a chunk is a provider batch of rows): sent
    # rows differ only in their message id, failed rows only in their error. Conditional on
    # still being ours: the sweeper may have settled a row meanwhile, and another claim may
    # hold it now.
    with transaction.atomic():
        if sent:
            _mark_sent(claim, sent, now)
        errors: dict[str, list[int]] = defaultdict(list)
        for pk, error in failed:
            errors[error].append(pk)
        for error, ids in errors.items():
            _mark_failed(claim, ids, error)
        if unknown:
            Delivery.objects.filter(
                pk__in=unknown, claim=claim, status=Delivery.Status.SENDING
            ).update(
                status=Delivery.Status.UNKNOWN,
                last_error="the provider's answer does not say whether it took this recipient",
            )
        if deferred:
            _not_taken(claim, deferred)
    return deferred


def _mark_sent(
    claim: str,
    sent: list[tuple[int, str]],
    now,
    *,
    statuses: list[str] = [Delivery.Status.SENDING],  # noqa: B006 - never mutated
) -> int:
    """Mark (row id, provider message id) pairs sent, those still in `claim` and `statuses`."""
    ids = [pk for pk, _ in sent]
    message_ids = [m for _, m in sent]
    if connection.vendor == "postgresql":
        # Rows and their message ids as two arrays: one short statement for a whole batch (the
        # ORM's CASE WHEN spends more time compiling than PostgreSQL spends running it).
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Delivery._meta.db_table} AS d SET status = %s, sent_at = %s, "  # noqa: S608
                "last_error = '', provider_message_id = v.message_id "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, message_id) "
                "WHERE d.id = v.id AND d.claim = %s AND d.status = ANY(%s::text[])",
                [Delivery.Status.SENT, now, ids, message_ids, claim, list(statuses)],
            )
            return cursor.rowcount
    return Delivery.objects.filter(pk__in=ids, claim=claim, status__in=statuses).update(
        status=Delivery.Status.SENT,
        sent_at=now,
        last_error="",
        provider_message_id=Case(
            *(When(pk=pk, then=Value(m)) for pk, m in sent),
            default=Value(""),
        ),
    )


def _mark_failed(claim: str, ids: list[int], error: str) -> None:
    Delivery.objects.filter(pk__in=ids, claim=claim, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.FAILED, last_error=error
    )


def _give_back(claim: str, ids: list[int]) -> None:
    """Rows of a claim not tried: back to pending for another worker."""
    Delivery.objects.filter(pk__in=ids, claim=claim, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.PENDING, claim="", claimed_at=None, handed_at=None
    )


def _not_taken(claim: str, ids: list[int]) -> None:
    """The provider answered that it took none of these rows (429, 5xx): a retry of the claim
    may send them without asking first."""
    Delivery.objects.filter(pk__in=ids, claim=claim, status=Delivery.Status.SENDING).update(
        handed_at=None
    )


def deliveries_release_claim(*, claim: str, error: str) -> int:
    """Give a claim's unsent rows back (the provider did not take them): to pending for
    another try, or failed once they have used up DIGEST_MAX_ATTEMPTS. Rows that may be with
    the provider stay for the sweeper to settle."""
    mine = Delivery.objects.filter(
        claim=claim, status=Delivery.Status.SENDING, handed_at__isnull=True
    )
    mine.filter(attempts__gte=settings.DIGEST_MAX_ATTEMPTS).update(
        status=Delivery.Status.FAILED, last_error=f"gave up after retries: {error}"[:2000]
    )
    return mine.update(
        status=Delivery.Status.PENDING, claim="", claimed_at=None, last_error=error[:2000]
    )


# --- Sending a chunk ----------------------------------------------------------------------------

# A due tick's slot sends two issues at once (the day's and the week's), their chunks
# interleaved on every worker: keeping only the latest renderer rebuilt it at nearly every
# chunk of the smaller one.
RENDERERS_KEPT = 2
_renderer_cache: OrderedDict[tuple, IssueRenderer] = OrderedDict()


def _issue_renderer(issue: Issue) -> IssueRenderer:
    """This worker's renderer of an issue: paper blocks are rendered and inlined once per
    issue, not once per chunk, and kept while the issue sends again and again (each due-tick
    slot reopens it). A sent batch's entries no longer change; its intro still may, so an
    edited intro makes a new renderer. The latest RENDERERS_KEPT are kept."""
    # Ids alone may be reused (SQLite): the issue's creation tells two issues apart.
    key = (issue.pk, issue.batch_id, issue.created_at, issue.batch.intro)
    renderer = _renderer_cache.get(key)
    if renderer is None:
        renderer = _renderer_cache[key] = IssueRenderer(issue.batch)
        while len(_renderer_cache) > RENDERERS_KEPT:
            _renderer_cache.popitem(last=False)
    else:
        _renderer_cache.move_to_end(key)
    return renderer


def _send(backend, messages: list[AnymailMessage]) -> AnymailError | None:
    """Hand the messages to the backend; the error it raised, if it is one a send may raise.

    The Postmark batch backend sends them all in one call; backends that post message by
    message stop at the first failure. Either way, the messages answered before the error
    carry their ``anymail_status``.
    """
    try:
        # Opened here, not by send_messages: a backend that opens its own connection closes it
        # after the call, and under a send rate each message is a call of its own (an SMTP
        # handshake per message). Opening is a no-op when open; _chunk_send closes it.
        backend.open()
        backend.send_messages(messages)
    except (AnymailAPIError, AnymailRecipientsRefused) as error:
        return error
    return None


def _send_paced(backend, messages: list[AnymailMessage], gate) -> AnymailError | None:
    """``_send``, with each provider call taking its turn of the shared send rate right
    before it goes out (newsletter/services/pacing.py).

    Raises rate.RateWait (nothing of the call sent) when the turn, or a provider's pause, is
    further off than a worker sleeps; the messages sent before it carry their status.
    """
    concurrency = settings.SEND_CONCURRENCY
    if not providers.provider().one_call_per_chunk and concurrency > 1 and len(messages) > 1:
        return concurrent_sends.send_concurrently(
            messages,
            first_backend=backend,
            open_backend=get_connection,
            send_one=lambda one_backend, message: _send_calls(one_backend, [message], gate),
            caution=_caution,
            concurrency=concurrency,
        )
    return _send_calls(backend, messages, gate)


# How cautious the send code must be with a copy that failed so (0: it may have been taken).
_CAUTION = {
    Outcome.UNKNOWN: 0,
    Outcome.TRANSIENT: 1,
    Outcome.PERMANENT: 2,
    Outcome.REFUSED: 3,
    Outcome.ACCEPTED: 4,
}


def _caution(error: AnymailError) -> int:
    # A single copy refused has its rejected status: it counts as answered.
    return _CAUTION[send_outcome(error, answered=True).outcome]


def _send_calls(backend, messages: list[AnymailMessage], gate) -> AnymailError | None:
    """The messages through one backend, call by call, each call taking its turn.

    Raises provider_quota.QuotaExhausted right after a call the provider answered that its
    daily quota is used up, or before one while such an answer (any worker's) holds: the
    calls after it are not made (the messages answered carry their status)."""
    quota = provider_quota.provider_quota()
    pacer = pacing.paced_backend(backend, gate, quota) if gate is not None else None
    calls = [messages] if providers.provider().one_call_per_chunk else [[m] for m in messages]
    for call in calls:
        if gate is not None:
            count = sum(len(m.to) for m in call)
            if pacer is None:
                pacing.call_admitted(gate, count)
                if quota is not None:
                    quota.check()
            else:
                # The adapter takes the turn once the request is built, then looks at the
                # quota's hold.
                pacer.count = count
        elif quota is not None:
            quota.check()
        error = _send(backend, call)
        if _quota_exhausted(call, error):
            # The provider counts the account: every worker holds off it from now on.
            raise provider_quota.exhausted()
        if gate is not None and _deferred_some(call):
            # The provider counts the account, not this worker: the pause begins with the
            # answer, so every worker's next call waits for it, this chunk's next one included.
            # (The deferred rows wait for the claim's retry: _deferred_retry.)
            gate.pause(rate.DEFAULT_PAUSE_SECONDS)
        if error is not None:
            return error
    return None


def _quota_exhausted(messages: list[AnymailMessage], error: AnymailError | None) -> bool:
    """Whether the provider answered this call, or a recipient of it, that its daily quota is
    used up (SES's ACCOUNT_DAILY_QUOTA_EXCEEDED)."""
    if getattr(error, "quota_exhausted", False):
        return True
    return any(
        getattr(status, "quota_exhausted", False)
        for message in messages
        for status in message.anymail_status.recipients.values()
    )


def _deferred_some(messages: list[AnymailMessage]) -> bool:
    """Whether the provider answered a recipient of these "not now" (SES's throttled
    destinations)."""
    return any(
        getattr(status, "transient", False)
        for message in messages
        for status in message.anymail_status.recipients.values()
    )


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


def _chunk_send(chunk: _Chunk, gate=None) -> tuple[int, bool]:
    """Send the chunk's messages, acting on what ``send_outcome`` makes of each answer.

    Returns (deliveries the provider took, whether every message was settled). Raises
    TransientSendError when the claim should be retried later, ClaimUnsettled when the
    provider may have taken a call it did not answer.
    """
    backend = get_connection()
    try:
        return _chunk_send_through(chunk, backend, gate)
    finally:
        backend.close()  # the paced session, kept open across the chunk's calls


def _chunk_send_through(chunk: _Chunk, backend, gate) -> tuple[int, bool]:
    handed, todo, deferred = 0, list(range(len(chunk.messages))), []
    while todo:
        try:
            error = _send_paced(backend, [chunk.messages[i] for i in todo], gate)
        except rate.RateWait as wait:
            # What was sent before the wait is recorded; the rest of the claim waits for the
            # task's retry (certainly not handed over), its quota given back meanwhile.
            done = [i for i in todo if chunk.messages[i].anymail_status.recipients]
            if done:
                now_deferred = _record_statuses(
                    chunk.claim, [(chunk.groups[i], chunk.messages[i]) for i in done]
                )
                deferred += now_deferred
                handed += len(chunk.row_ids(done)) - len(now_deferred)
            todo = _without(todo, done)
            _not_taken(chunk.claim, chunk.row_ids(todo))
            if gate is not None:
                gate.refund_quota(len(chunk.row_ids(todo)) + len(deferred))
            if isinstance(wait, provider_quota.QuotaExhausted):
                _quota_wait(chunk, wait)
                return handed, False
            wait.claim = chunk.claim
            raise
        answered = chunk.answered(error, todo)
        if answered:
            now_deferred = _record_statuses(
                chunk.claim, [(chunk.groups[i], chunk.messages[i]) for i in answered]
            )
            deferred += now_deferred
            handed += len(chunk.row_ids(answered)) - len(now_deferred)
            todo = _without(todo, answered)
        verdict = send_outcome(error, answered=bool(answered))
        if verdict.outcome is Outcome.ACCEPTED:
            break
        if verdict.outcome is Outcome.REFUSED:
            continue
        failed_call = chunk.failed_call(error, todo)
        if verdict.outcome is Outcome.TRANSIENT:
            # Certainly not taken: neither the failed call nor the messages after it.
            _not_taken(chunk.claim, chunk.row_ids(todo))
            if gate is not None:
                gate.refund_quota(len(chunk.row_ids(todo)))
                if getattr(error, "status_code", None) == 429:
                    # Every worker waits, not only this one: the provider counts the account.
                    gate.pause(verdict.retry_after or rate.DEFAULT_PAUSE_SECONDS)
            if chunk.attempts >= settings.DIGEST_MAX_ATTEMPTS:
                deliveries_release_claim(claim=chunk.claim, error=verdict.reason)
                return handed, False
            raise TransientSendError(
                verdict.reason, retry_after=verdict.retry_after, claim=chunk.claim
            ) from error
        if verdict.outcome is Outcome.UNKNOWN:
            # The provider may have accepted the call: this claim asks it once its answer is
            # conclusive. The messages not in that call are given back for another worker.
            logger.warning("send outcome unknown; asking later", extra={"claim": chunk.claim})
            _give_back(chunk.claim, chunk.row_ids(_without(todo, failed_call)))
            raise ClaimUnsettled(
                verdict.reason,
                claim=chunk.claim,
                retry_after=settle_after().total_seconds(),
            ) from error
        _mark_failed(chunk.claim, chunk.row_ids(failed_call), verdict.reason)
        todo = _without(todo, failed_call)
    if deferred:
        return _deferred_retry(chunk, deferred, handed, gate)
    return handed, True


def _quota_wait(chunk: _Chunk, wait: provider_quota.QuotaExhausted) -> None:
    """The provider's daily quota is used up: as when our own day's budget is (_rate_wait),
    the claim's rows it did not take go back to pending, in order, and the attempt they were
    stamped with does not count (waiting is not failing); the issue waits until the hold ends,
    and the sweeper enqueues its rows again then."""
    Delivery.objects.filter(
        claim=chunk.claim, status=Delivery.Status.SENDING, handed_at__isnull=True
    ).update(
        status=Delivery.Status.PENDING,
        claim="",
        claimed_at=None,
        attempts=F("attempts") - 1,
        last_error=f"waiting: {wait.reason}",
    )
    until = timezone.now() + timedelta(seconds=wait.seconds)
    issue_id = chunk.groups[0][0].issue_id
    Issue.objects.filter(pk=issue_id).update(send_waiting_until=until)
    logger.info(
        "the provider's daily quota is used up; the issue waits",
        extra={"issue": issue_id, "until": until.isoformat()},
    )


def _deferred_retry(chunk: _Chunk, deferred: list[int], handed: int, gate) -> tuple[int, bool]:
    """Rows the provider answered it did not take for now (throttled): retried with the claim,
    as a 429 is, the rest of the claim recorded. (The send rate paused when the answer came:
    _send_calls.)"""
    reason = f"provider deferred {len(deferred)} recipients"
    if gate is not None:
        gate.refund_quota(len(deferred))
    if chunk.attempts >= settings.DIGEST_MAX_ATTEMPTS:
        deliveries_release_claim(claim=chunk.claim, error=reason)
        return handed, False
    raise TransientSendError(reason, claim=chunk.claim)


def deliveries_send_chunk(*, issue_id: int, claim: str | None = None) -> int:
    """Send one provider batch of an issue as `claim` (a new one if not given).

    A claim that already holds rows (a retry, or the same task delivered again after its
    worker died) first settles them with the provider and sends what it certainly did not
    take; a claim that holds none takes new pending rows. Returns how many deliveries the
    provider took. Raises TransientSendError when it should be retried later (the unsent rows
    then stay in the claim, so the retry sends exactly them and other workers do not pick them
    up meanwhile), ClaimUnsettled when the provider cannot say yet what it took.
    """
    issue = Issue.objects.select_related("batch").get(pk=issue_id)
    if issue.status != Issue.Status.SENDING:
        return 0
    held = provider_quota.held_for()
    if held:
        # The provider answered (this worker or another) that its daily quota is used up.
        return _rate_wait(issue, claim, rate.Room("provider's daily quota", held, 0))
    gate = rate.limiter()
    wanted = providers.batch_limit()
    if gate is not None:
        room = gate.room(wanted)
        if not room.now:
            return _rate_wait(issue, claim, room)
        wanted = room.count
    stamp = timezone.now()
    if claim is None:
        claim = uuid.uuid4().hex
        taken = 0
    else:
        taken = _claim_resume(claim, stamp=stamp)
    if not taken:
        taken = _deliveries_claim(issue, wanted, claim=claim, stamp=stamp)
    rows, selections = _claimed_rows(issue, claim, stamp=stamp) if taken else ([], {})
    if not rows:
        issue_finish_if_done(issue_id=issue.pk)
        return 0
    if gate is not None:
        quota = gate.take_quota(len(rows))
        if not quota.now:
            # Another worker took the hour's or day's last emails since the look above.
            _give_back_unattempted(claim, [row.pk for row in rows])
            return _rate_wait(issue, None, quota)
    renderer = _issue_renderer(issue)
    groups = [list(g) for _, g in groupby(rows, key=lambda d: d.content_key)]
    call_limit = providers.provider().call_limit
    if call_limit:
        # A claim larger than one call may carry (Mailjet's 50 messages): a content's readers
        # go in calls of at most that many, each with the same rendered body.
        groups = [g[i : i + call_limit] for g in groups for i in range(0, len(g), call_limit)]
    key_links = KeyLinks()
    messages = [
        digest_message(
            renderer,
            group,
            selection=selections[group[0].content_key],
            claim=claim,
            key_links=key_links,
        )
        for group in groups
    ]
    current = providers.provider()
    if not current.merges:
        groups, messages = chunk_single(groups, messages)
    elif current.carries:
        # What the merging call cannot carry exactly goes as filled copies.
        groups, messages = chunk_single(groups, messages, keep=import_string(current.carries))
    handed, settled = _chunk_send(
        _Chunk(claim=claim, groups=groups, messages=messages, attempts=rows[0].attempts), gate
    )
    if settled:
        issue_finish_if_done(issue_id=issue.pk)
    return handed


def _give_back_unattempted(claim: str, ids: list[int]) -> None:
    """Rows claimed but not sent because the send rate has no room: back to pending, and the
    attempt they were stamped with does not count (waiting is not failing)."""
    Delivery.objects.filter(pk__in=ids, claim=claim, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.PENDING,
        claim="",
        claimed_at=None,
        handed_at=None,
        attempts=F("attempts") - 1,
    )


def _rate_wait(issue: Issue, claim: str | None, room: rate.Room) -> int:
    """The send rate has no room now. A short wait is the task's to retry (RateWait); a long
    one (the hour's or day's budget is used up) parks the issue until then, its rows pending
    and in order, and the sweeper enqueues them again once the time has come."""
    if room.wait <= settings.SEND_RATE_PARK_AFTER_SECONDS:
        raise rate.RateWait(f"send rate: {room.verdict}", room.wait, claim=claim)
    until = timezone.now() + timedelta(seconds=room.wait)
    if claim:
        # Rows a retry was to send (the provider had not taken them) wait with the others.
        Delivery.objects.filter(
            claim=claim, status=Delivery.Status.SENDING, handed_at__isnull=True
        ).update(status=Delivery.Status.PENDING, claim="", claimed_at=None)
    Issue.objects.filter(pk=issue.pk).update(send_waiting_until=until)
    logger.info(
        "send budget used up; the issue waits",
        extra={"issue": issue.pk, "reason": room.verdict, "until": until.isoformat()},
    )
    return 0


# --- Recovering from dead workers and lost tasks, and retries -----------------------------------


def _claim_sweep(claim: str, *, lease_cutoff) -> int:
    """Settle a claim whose lease ran out (its task is dead or lost), or whose rows' outcome
    is unknown. How many rows changed state."""
    rows = Delivery.objects.filter(
        claim=claim, status__in=[Delivery.Status.SENDING, Delivery.Status.UNKNOWN]
    )
    issue_ids = set(rows.values_list("issue_id", flat=True).distinct())
    # Rows waiting for a retry that never came: the provider answered that it took none.
    settled = rows.filter(
        status=Delivery.Status.SENDING, handed_at__isnull=True, claimed_at__lt=lease_cutoff
    ).update(status=Delivery.Status.PENDING, claim="", claimed_at=None)
    in_flight = rows.filter(handed_at__isnull=False).filter(
        Q(status=Delivery.Status.UNKNOWN) | Q(claimed_at__lt=lease_cutoff)
    )
    if in_flight.exists():
        asked_at = _claim_ask(claim, statuses=[Delivery.Status.SENDING, Delivery.Status.UNKNOWN])
        if asked_at is None:
            # Possibly sent: kept apart, never resent blindly, asked again at the next sweep.
            settled += in_flight.filter(status=Delivery.Status.SENDING).update(
                status=Delivery.Status.UNKNOWN,
                last_error="worker lost mid-send and the provider cannot say whether it took "
                "it yet; not resent to avoid a duplicate",
            )
        else:
            # What the provider has not got and can no longer accept goes back to pending.
            settled += in_flight.filter(handed_at__lt=asked_at - settle_after()).update(
                status=Delivery.Status.PENDING, claim="", claimed_at=None, handed_at=None
            )
    # A row once unknown may belong to an issue already marked sent: it is sending again.
    Issue.objects.filter(pk__in=issue_ids, status=Issue.Status.SENT).filter(
        Exists(Delivery.objects.filter(issue=OuterRef("pk"), status=Delivery.Status.PENDING))
    ).update(status=Issue.Status.SENDING)
    return settled


def deliveries_sweep() -> int:
    """Settle rows left in "sending" past their lease or left "unknown", then re-enqueue the
    pending rows no task is working on.

    A worker that died mid-call may or may not have had its batch accepted. The provider is
    asked which messages of the claim it accepted: those are marked sent, and the rest go back
    to pending once the call is too old to be accepted still. Where the provider cannot say
    (its message search is down, or it has none), the rows become "unknown": possibly sent,
    asked again at every sweep, because resending blindly could mail people twice.
    """
    now = timezone.now()
    lease_cutoff = now - timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS)
    unsettled = Delivery.objects.filter(
        Q(status=Delivery.Status.SENDING, claimed_at__lt=lease_cutoff)
        | Q(status=Delivery.Status.UNKNOWN)
    )
    settled = 0
    for claim in list(unsettled.values_list("claim", flat=True).distinct()):
        settled += _claim_sweep(claim, lease_cutoff=lease_cutoff)
    requeue_cutoff = now - timedelta(seconds=settings.DIGEST_REQUEUE_SECONDS)
    # A sent issue holding pending rows (rows that joined it as it was being marked sent, or
    # an operator's edit) would never be looked at again: it is sending once more.
    stranded = Issue.objects.filter(
        status=Issue.Status.SENT, deliveries__status=Delivery.Status.PENDING
    ).values_list("id", flat=True)
    reopened = Issue.objects.filter(pk__in=list(stranded), status=Issue.Status.SENT).update(
        status=Issue.Status.SENDING, finished_at=None
    )
    if reopened:
        logger.warning("sent issues with pending rows sending again", extra={"issues": reopened})
    for issue_id in Issue.objects.filter(status=Issue.Status.SENDING).values_list("id", flat=True):
        count = Delivery.objects.filter(issue_id=issue_id, status=Delivery.Status.PENDING).count()
        if not count:
            issue_finish_if_done(issue_id=issue_id)
            continue
        # Re-enqueue pending rows only when nobody has claimed or retried anything of the issue
        # for a while: their chunk tasks were lost (broker restarted empty, retries used up).
        # A busy issue has tasks queued; an issue waiting for the send budget (the day's is
        # used up) is not lost either, until its time. Extra tasks only ever claim pending
        # rows, so a row held by a live task never gets a second sender.
        progressing = (
            Delivery.objects.filter(issue_id=issue_id, claimed_at__gte=requeue_cutoff).exists()
            or Issue.objects.filter(pk=issue_id, send_waiting_until__gt=now).exists()
        )
        if not progressing:
            transaction.on_commit(
                lambda i=issue_id, c=count: issue_chunks_enqueue(issue_id=i, pending=c)
            )
    return settled


def deliveries_retry(*, deliveries) -> int:
    """Send failed deliveries again (editor action); their issue goes back to sending.

    Only failed ones: an "unknown" delivery may have been sent, and is settled by the sweeper.
    """
    ids = list(deliveries.filter(status=Delivery.Status.FAILED).values_list("id", flat=True))
    with transaction.atomic():
        count = Delivery.objects.filter(pk__in=ids, status=Delivery.Status.FAILED).update(
            status=Delivery.Status.PENDING, attempts=0, claim="", claimed_at=None, handed_at=None
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
