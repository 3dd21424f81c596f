"""ANYMAIL_ESP=amazon_ses: Paperboy's backend (Anymail's and boto3) over HTTP, against
devtools/fakes/amazon_ses.py: a content's readers in one SendBulkEmail call, and boto3's
failures read for what they say, and the send rate: each call's turn, the pause a throttled
destination starts, the hold a daily quota used up puts on every worker. (Each copy against
its preview, template syntax, a refused or throttled destination's own row:
tests/newsletter/test_template_providers.py.)"""

from __future__ import annotations

import contextlib
import socket
import time
from datetime import timedelta

import pytest
import time_machine
from anymail.exceptions import AnymailAPIError
from django.utils import timezone

from digests.models import Paper
from newsletter.amazon_ses import SesQuotaExhausted, _quota_refusal
from newsletter.models import Delivery, Issue
from newsletter.services import provider_quota, rate
from newsletter.services.previews import digest_preview
from newsletter.services.rate import send_rate_rows
from newsletter.services.sending import (
    ClaimUnsettled,
    Outcome,
    TransientSendError,
    deliveries_send_chunk,
    deliveries_sweep,
    send_outcome,
)
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_each_reader_gets_their_own_filled_copy(ses, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 2

        by_to = {m["to"][0]: m for m in ses.state.messages}
        assert sorted(by_to) == sorted(r.email for r in readers)
        assert all(len(m["to"]) == 1 for m in ses.state.messages)
        assert ses.state.bulk_calls == 1 and ses.state.calls == 1  # both readers in one call
        for reader in readers:
            message = by_to[reader.email]
            assert message["headers"]["List-Unsubscribe"] == f"<{unsubscribe_url(reader)}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert (delivery.status, delivery.provider_message_id) == ("sent", message["_id"])
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert message["html"].strip() == preview.html.strip()
            assert message["text"].strip() == preview.text.strip()
            assert unsubscribe_url(reader) in message["html"]


def test_a_rejected_message_fails_alone(ses, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["robotics"]])
    ses.state.rejected.add("gone@example.org")
    issue = sending()

    # Both answered in one SendBulkEmail call, one of them refused.
    assert deliveries_send_chunk(issue_id=issue.pk) == 2
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "MESSAGE_REJECTED" in gone.last_error
    assert ses.state.recipients() == ["kept@example.org"]
    assert Delivery.objects.get(subscriber__email="kept@example.org").status == "sent"


@pytest.mark.parametrize("answer", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(ses, day_batch, sending, answer):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    ses.state.fail_next(answer)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    # boto3 did not retry on its own: the failed call (both readers) once.
    assert (ses.state.calls, ses.state.messages) == (1, [])
    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2
    assert sorted(ses.state.recipients()) == sorted(r.email for r in readers)
    assert ses.state.calls == 2


def test_a_call_without_credentials_is_refused_and_the_message_kept_unsent(
    ses, day_batch, sending, monkeypatch
):
    SubscriberFactory(email="reader@example.org", topics=[day_batch.topics["robotics"]])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000")
    issue = sending()

    deliveries_send_chunk(issue_id=issue.pk)
    delivery = Delivery.objects.get(subscriber__email="reader@example.org")
    assert delivery.status == Delivery.Status.FAILED
    assert "UnrecognizedClientException" in delivery.last_error
    assert ses.state.messages == []


def _endpoint(settings, url: str) -> None:
    params = settings.ANYMAIL["AMAZON_SES_CLIENT_PARAMS"]
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "AMAZON_SES_CLIENT_PARAMS": {**params, "endpoint_url": url},
    }


def test_an_unreachable_endpoint_is_transient_and_the_rows_kept_for_the_retry(
    ses, day_batch, sending, settings
):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        _endpoint(settings, f"http://127.0.0.1:{closed.getsockname()[1]}/")

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    rows = Delivery.objects.filter(issue=issue)
    assert {d.status for d in rows} == {Delivery.Status.SENDING}  # not failed: retried
    assert {d.claim for d in rows} == {raised.value.claim}

    _endpoint(settings, ses.url)
    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2
    assert sorted(ses.state.recipients()) == sorted(r.email for r in readers)


def test_a_call_timed_out_after_it_went_out_is_unknown_never_resent(
    ses, day_batch, sending, settings
):
    SubscriberFactory(email="first@example.org", topics=[day_batch.topics["agents"]])
    issue = sending()
    settings.ANYMAIL_TIMEOUT_SECONDS = 1
    ses.counters.answer_delay = 3  # SES takes the message and answers after the client gave up

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    assert Delivery.objects.get(issue=issue).status == Delivery.Status.SENDING
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()

    delivery = Delivery.objects.get(issue=issue)
    assert delivery.status == Delivery.Status.UNKNOWN  # SES cannot be asked: an operator's
    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert ses.state.recipients() == ["first@example.org"]  # exactly once


def test_the_send_rate_paces_each_call(ses, day_batch, sending, settings, redis_url):
    settings.SEND_RATE_PER_SECOND = 2
    for _ in range(5):
        SubscriberFactory(topics=[day_batch.topics["robotics"]])
    issue = sending()

    # A chunk is never larger than the second's limit: three chunks of 2, 2 and 1, each one
    # SendBulkEmail call of its readers.
    assert sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(3)) == 5
    assert sorted(count for _, count in ses.state.arrivals) == [1, 2, 2]
    arrivals = sorted(when for when, count in ses.state.arrivals for _ in range(count))
    assert len(arrivals) == 5
    gate = rate.limiter()
    admitted = sorted(
        score for _, score in gate.client.zrange(gate.keys[0], 0, -1, withscores=True)
    )
    # Five emails at two a second: the last call is admitted two seconds of turns after the
    # first, and reaches the provider no earlier.
    assert admitted[-1] - admitted[0] >= 1.9, admitted
    assert arrivals[-1] >= admitted[-1] - 0.05, (arrivals, admitted)
    for start in admitted:
        assert sum(1 for when in admitted if start <= when < start + 1.0) <= 2, admitted
    # The turn is taken in boto3's before-send event, once the call is built and signed: the
    # provider never sees more than the limit in any second either.
    for start in arrivals:
        assert sum(1 for when in arrivals if start <= when < start + 1.0) <= 2, arrivals


def test_a_throttled_destination_pauses_the_rest_of_its_claim_too(
    ses, day_batch, sending, settings, redis_url, monkeypatch
):
    settings.SEND_RATE_PER_SECOND = 10
    settings.SEND_CONCURRENCY = 1  # the claim's calls one after the other, not both in flight
    # The pause a throttled destination takes, shortened: only its start matters here.
    monkeypatch.setattr(rate, "DEFAULT_PAUSE_SECONDS", 1.5)
    SubscriberFactory(email="robotics@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="agents@example.org", topics=[day_batch.topics["agents"]])
    issue = sending()
    # Two contents, so one claim of two SendBulkEmail calls, in the order rows are claimed:
    # the first call's destination is throttled.
    first, second = Delivery.objects.order_by("content_key", "id")
    ses.state.throttled.add(first.subscriber.email)

    with pytest.raises(TransientSendError):
        deliveries_send_chunk(issue_id=issue.pk)

    # The pause began with the answer, not once the claim's other calls were made: the
    # second call, this worker's own, waited for it as every other worker's would.
    [throttled_at] = ses.state.throttled_at
    assert ses.state.recipients() == [second.subscriber.email]
    [after] = [when for when, _ in ses.state.arrivals if when > throttled_at]
    assert after - throttled_at >= 1.5, (throttled_at, after)
    first.refresh_from_db()
    assert (first.status, first.handed_at) == (Delivery.Status.SENDING, None)


# --- The account's daily quota used up ---------------------------------------------------------


def _held() -> provider_quota.Hold | None:
    return provider_quota.provider_quota().hold()


def test_a_daily_quota_answer_keeps_the_rows_pending_until_it_can_have_renewed(
    ses, day_batch, sending, settings, redis_url, django_capture_on_commit_callbacks
):
    settings.SEND_CONCURRENCY = 1  # the claim's calls one after the other
    # The hold, shortened from its hour (only its end matters here), still parks the issue as
    # the hour does; and the sweeper looks for lost rows a second after the last claim.
    settings.SEND_PROVIDER_QUOTA_RETRY_SECONDS = 3
    settings.SEND_RATE_PARK_AFTER_SECONDS = 1
    settings.DIGEST_REQUEUE_SECONDS = 1
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    readers += [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    ses.state.daily_quota = 1  # SES takes one email, then answers its quota is used up
    first, *others = Delivery.objects.order_by("content_key", "id")

    # One claim of two SendBulkEmail calls (a content's two readers each): the first call's
    # second destination is answered ACCOUNT_DAILY_QUOTA_EXCEEDED, and the second call is
    # never made.
    assert deliveries_send_chunk(issue_id=issue.pk) == 1
    assert ses.state.calls == 1 and len(ses.state.quota_exceeded_at) == 1
    assert ses.state.recipients() == [first.subscriber.email]
    waiting = Delivery.objects.filter(pk__in=[d.pk for d in others])
    # Pending, in no claim, with no attempt counted: waiting is not failing.
    assert {(d.status, d.claim, d.attempts) for d in waiting} == {(Delivery.Status.PENDING, "", 0)}
    assert all("daily quota" in d.last_error for d in waiting)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENDING
    hold = _held()
    assert hold is not None and 2.0 < hold.seconds <= 3.0
    assert issue.send_waiting_until > timezone.now()

    # Every worker holds off SES until then: a new chunk (another worker's claim) sends
    # nothing, and the sweeper does not take the rows for lost.
    with contextlib.suppress(rate.RateWait):  # (a retry, should the hold have under 1 s left)
        assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert ses.state.calls == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        deliveries_sweep()
    assert callbacks == []
    assert waiting.filter(status=Delivery.Status.PENDING).count() == 3

    # The rolling window makes room; once the hold is over, the sweeper enqueues the rows
    # again and each reader gets exactly one email.
    ses.state.daily_quota = None
    time.sleep(_held().seconds + 0.05)
    assert _held() is None
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deliveries_sweep()  # its chunk task runs here (eager)
    assert len(callbacks) == 1
    assert sorted(ses.state.recipients()) == sorted(r.email for r in readers)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
    assert {d.attempts for d in waiting.all()} == {1}  # one attempt each: the one that sent
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_a_destination_over_quota_holds_every_worker_for_an_hour_and_the_admin_says_so(
    ses, day_batch, sending, settings, redis_url
):
    settings.SEND_QUOTA_PER_DAY = 100  # our own budget too: what SES did not take is given back
    kept = SubscriberFactory(email="a-kept@example.org", topics=[day_batch.topics["robotics"]])
    later = SubscriberFactory(email="b-later@example.org", topics=[day_batch.topics["robotics"]])
    issue = sending()
    ses.state.over_quota.add(later.email)

    assert deliveries_send_chunk(issue_id=issue.pk) == 1  # both in one call, one taken
    assert ses.state.recipients() == [kept.email]
    row = Delivery.objects.get(subscriber=later)
    assert (row.status, row.attempts, row.claim) == (Delivery.Status.PENDING, 0, "")
    hold = _held()
    assert 3590 < hold.seconds <= 3600  # an hour: SES's quota is a rolling 24-hour window
    issue.refresh_from_db()
    expected = timezone.now() + timedelta(seconds=hold.seconds)
    assert abs((issue.send_waiting_until - expected).total_seconds()) < 5
    assert rate.limiter().status()["day_used"] == 1  # the refused one's email given back

    # Another chunk (any worker's) claims nothing and calls nothing while the hold lasts,
    # however the throttle would have let it.
    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert ses.state.calls == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Delivery.Status.PENDING, 0)

    rows = dict(send_rate_rows(issue))
    assert rows["provider's daily quota"] == (
        f"used up: amazon_ses said so at {hold.reported_at:%Y-%m-%d %H:%M:%S} UTC; "
        f"sending resumes at {hold.until:%Y-%m-%d %H:%M:%S} UTC"
    )
    assert rows["waiting"] == "1 pending"
    assert "waiting until" in rows


def test_a_filled_copy_refused_for_the_daily_quota_waits_and_the_next_is_not_sent(
    ses, day_batch, sending, settings, redis_url
):
    settings.SEND_CONCURRENCY = 1  # the copies one after the other
    # "\{{" makes the content one Handlebars cannot write: a SendEmail of raw MIME per reader.
    paper = day_batch.papers["r1"]
    Paper.objects.filter(pk=paper.pk).update(title=r"Sets \{{x}} of braces", ai_summary="")
    for _ in range(3):
        SubscriberFactory(topics=[day_batch.topics["robotics"]])
    issue = sending()
    ses.state.daily_quota = 1
    first, *others = Delivery.objects.order_by("content_key", "id")

    # The second copy's SendEmail is refused whole (400 ThrottlingException, "Daily message
    # quota exceeded."): not a failure of its row, and the third copy is never sent.
    assert deliveries_send_chunk(issue_id=issue.pk) == 1
    assert ses.state.bulk_calls == 0 and ses.state.calls == 2
    assert ses.state.recipients() == [first.subscriber.email]
    assert {
        (d.status, d.attempts) for d in Delivery.objects.filter(pk__in=[o.pk for o in others])
    } == {(Delivery.Status.PENDING, 0)}
    assert _held() is not None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("LimitExceededException", 400),
        ("TooManyRequestsException", 429),
    ],
)
def test_a_call_refused_for_the_daily_quota_is_read_by_its_message_whatever_its_name(code, status):
    def answer(message: str) -> AnymailAPIError:
        return AnymailAPIError(
            f"An error occurred ({code}) when calling the SendEmail operation: {message}",
            response={
                "Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
        )

    assert _quota_refusal(answer("Daily message quota exceeded."))
    assert not _quota_refusal(answer("Maximum sending rate exceeded."))  # a throttle: as before
    refused = SesQuotaExhausted("Daily message quota exceeded.", response={})
    verdict = send_outcome(refused, answered=False)
    assert verdict.outcome is Outcome.TRANSIENT and "daily quota" in verdict.reason
