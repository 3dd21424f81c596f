"""The shared send rate (newsletter/services/rate.py) on a real Redis, and what sending does
when the day's budget runs out: the rest waits, pending and in order, and is not lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.core import mail

from newsletter.models import Delivery, Issue
from newsletter.services import rate
from newsletter.services.issues import issue_create, issue_start
from newsletter.services.sending import deliveries_send_chunk, deliveries_sweep
from subscriptions.models import Subscriber
from tests.external import require_postgres
from tests.factories import SubscriberFactory


def limiter(url: str, **limits) -> rate.RateLimiter:
    return rate.RateLimiter(redis.Redis.from_url(url), "postmark", rate.Limits(**limits))


def admissions(gate: rate.RateLimiter) -> list[tuple[float, int]]:
    """(admission time, emails) of every reserved call, from Redis itself."""
    entries = gate.client.zrange(gate.keys[0], 0, -1, withscores=True)
    return sorted((score, int(member.split(b":")[0])) for member, score in entries)


def peak_in_any_second(calls: list[tuple[float, int]]) -> int:
    peak = 0
    for start, _ in calls:
        peak = max(peak, sum(n for when, n in calls if start <= when < start + 1.0))
    return peak


def test_it_never_admits_more_than_the_limit_in_any_second(redis_url):
    gate = limiter(redis_url, per_second=50)
    sizes = [50, 20, 30, 10, 50, 45, 5, 50, 1, 49]
    for size in sizes:
        assert gate.slot(size, max_wait=60).now
    calls = admissions(gate)
    assert sorted(n for _, n in calls) == sorted(sizes)  # none merged or lost
    assert peak_in_any_second(calls) == 50
    # And not slower than the limit: 310 emails at 50/s fit in about 6 windows.
    span = calls[-1][0] - calls[0][0]
    assert 5 * 1.0 <= span <= 6 * (1.0 + rate.WINDOW_GUARD_SECONDS) + 0.5


def test_it_refuses_a_slot_further_off_than_the_worker_waits(redis_url):
    gate = limiter(redis_url, per_second=10)
    assert gate.slot(10).now
    later = gate.slot(10, max_wait=0.5)
    assert later.verdict == "wait" and later.wait > 0.9
    assert len(admissions(gate)) == 1  # nothing reserved for the refused one


def test_a_pause_holds_every_caller_until_it_ends(redis_url):
    gate = limiter(redis_url, per_second=50)
    other = limiter(redis_url, per_second=50)  # another worker, same provider
    assert gate.pause(3) == pytest.approx(3, abs=0.1)
    assert gate.pause(1) == pytest.approx(3, abs=0.1)  # a shorter one does not cut it short
    slot = other.slot(10, max_wait=10)
    assert slot.now and slot.wait == pytest.approx(3, abs=0.1)
    assert other.status()["paused_for"] == pytest.approx(3, abs=0.2)


def test_the_days_cap_is_the_warmup_schedules_and_what_is_left_is_counted(redis_url):
    today = datetime.now(UTC).date()
    gate = limiter(redis_url, per_day=1000, warmup_start=today, warmup_caps=(70, 200))
    assert gate.room(50).count == 50
    assert gate.take_quota(50).now
    room = gate.room(50)
    assert room.now and room.count == 20  # only what fits today
    assert gate.take_quota(50).verdict == "short"  # all or nothing
    assert gate.take_quota(20).now
    full = gate.room(50)
    assert full.verdict == "day" and full.count == 0
    seconds_to_midnight = (
        datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC) - datetime.now(UTC)
    ).total_seconds()
    assert full.wait == pytest.approx(seconds_to_midnight, abs=5)
    gate.refund_quota(30)  # 30 were not sent after all
    assert gate.room(50).count == 30
    assert gate.status()["day_used"] == 40 and gate.status()["day_cap"] == 70
    # The second day of the schedule allows 200; after the schedule, only the quota.
    second = limiter(redis_url, warmup_start=today - timedelta(days=1), warmup_caps=(70, 200))
    assert second.room(500).count == 200 - 40
    done = limiter(
        redis_url, per_day=1000, warmup_start=today - timedelta(days=5), warmup_caps=(70,)
    )
    assert done.room(5000).count == 1000 - 40


def test_the_hours_quota_holds_too(redis_url):
    gate = limiter(redis_url, per_hour=30)
    assert gate.take_quota(30).now
    assert gate.room(1).verdict == "hour"
    assert 0 < gate.room(1).wait <= 3600


def test_a_call_that_leaves_late_is_counted_from_then_and_pushes_the_next(redis_url):
    gate = limiter(redis_url, per_second=50)
    first = gate.slot(50)
    second = gate.slot(50)  # another worker's call, reserved a window after the first
    assert first.wait == 0 and second.wait == pytest.approx(rate.WINDOW_SECONDS, abs=0.05)
    time.sleep(0.3)  # the first worker woke late, or built its payload slowly

    assert gate.depart(first).now
    left = admissions(gate)[0][0]  # the first call's entry moved to its real departure
    time.sleep(second.wait - 0.3)
    turn = gate.depart(second)

    # Going at its reserved time would put it 0.725 s after the first: it waits the rest.
    assert turn.verdict == "wait"
    assert turn.wait == pytest.approx(0.3, abs=0.1)  # less what the sleep overran
    assert admissions(gate)[1][0] == pytest.approx(left + rate.WINDOW_SECONDS, abs=0.001)
    time.sleep(turn.wait)
    assert gate.depart(second).now
    assert peak_in_any_second(admissions(gate)) == 50


def test_a_departure_inside_a_pause_waits_or_gives_its_reservation_up(redis_url):
    gate = limiter(redis_url, per_second=50)
    slot = gate.slot(10)
    gate.pause(2)  # another worker met a 429 while this one slept
    turn = gate.depart(slot)
    assert turn.verdict == "wait" and turn.wait == pytest.approx(2, abs=0.1)
    assert gate.depart(slot, max_wait=1).verdict == "wait"
    assert admissions(gate) == []  # past what the worker waits: nothing stays reserved


def test_a_turn_pushed_past_what_a_worker_waits_raises_and_keeps_nothing_reserved(redis_url):
    from newsletter.services.pacing import call_admitted

    gate = limiter(redis_url, per_second=50)
    call_admitted(gate, 50)  # goes at once
    assert len(admissions(gate)) == 1
    gate.pause(rate.MAX_SLEEP_SECONDS + 10)  # a 429 asked for longer than a worker sleeps
    with pytest.raises(rate.RateWait) as waited:
        call_admitted(gate, 50)
    assert waited.value.seconds > rate.MAX_SLEEP_SECONDS
    assert len(admissions(gate)) == 1  # only the call that went


def test_a_call_waiting_for_its_turn_is_not_taken_for_unanswered_too_early(settings):
    from newsletter.services.sending import settle_after

    settings.ANYMAIL_TIMEOUT_SECONDS, settings.DIGEST_LEASE_MARGIN_SECONDS = 30, 30
    settings.SEND_RATE_PER_SECOND = 0
    assert settle_after().total_seconds() == 60
    # Rows are stamped handed when claimed; the call may leave up to a worker's longest sleep
    # later, so a crashed call is settled that much later too.
    settings.SEND_RATE_PER_SECOND = 50
    assert settle_after().total_seconds() == 60 + rate.MAX_SLEEP_SECONDS


@pytest.mark.django_db(transaction=True)
def test_each_call_is_admitted_when_it_goes_out_not_before_its_payload_is_built(
    day_batch, settings, redis_url
):
    """Through the real Postmark batch backend and the fake Postmark over HTTP: every call
    reaches the provider right after its admission, so the provider counts what the limiter
    counted, however long the call took to build. Building is made slow here as on a loaded
    machine (200 ms in Anymail's pre_send signal, which runs before the payload is built); a
    turn taken before building would arrive at least that long after it.
    The bound below is half the build time, not the window's guard: the guard is sized for a
    quiet machine, and a loaded CI machine adds tens of milliseconds between admission and
    arrival that say nothing about the order of turn and build."""
    require_postgres()
    from anymail.signals import pre_send

    from devtools.fakes.postmark import TOKEN, FakePostmark

    build_seconds = 0.2

    def slow_build(sender, message, esp_name, **kwargs):
        time.sleep(build_seconds)

    pre_send.connect(slow_build, dispatch_uid="test-slow-build")

    robotics = day_batch.topics["robotics"]
    Subscriber.objects.bulk_create(
        SubscriberFactory.build(email=f"reader{i:03}@example.org") for i in range(150)
    )
    for subscriber in Subscriber.objects.all():
        subscriber.topics.add(robotics)
    with FakePostmark() as fake:
        settings.ANYMAIL_ESP = "postmark"
        settings.EMAIL_BACKEND = "newsletter.backends.PostmarkBatchEmailBackend"
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "POSTMARK_SERVER_TOKEN": TOKEN,
            "POSTMARK_API_URL": fake.url,
        }
        settings.SITE_URL = "https://paperboy.example.org"
        settings.SEND_RATE_PER_SECOND = 50
        issue = issue_create(batch=day_batch.batch)
        Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENDING)
        try:
            sent = sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(3))
        finally:
            pre_send.disconnect(dispatch_uid="test-slow-build")
        arrivals = sorted(fake.state.arrivals)

    assert sent == 150 and [n for _, n in arrivals] == [50, 50, 50]
    gate = rate.limiter()
    admitted = admissions(gate)
    assert [n for _, n in admitted] == [50, 50, 50]
    for (when, _), (arrived, _) in zip(admitted, arrivals, strict=True):
        assert 0 <= arrived - when < build_seconds / 2, (admitted, arrivals)
    assert fake.state.peak_per_second() == 50


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 120 ", 120.0), ("", None), (None, None), ("soon", None), ("-3", None)],
)
def test_it_reads_retry_after_as_seconds(header, seconds):
    assert rate.retry_after_seconds(header) == seconds


def test_it_reads_retry_after_as_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert rate.retry_after_seconds(header) == pytest.approx(30, abs=1.5)


# --- What sending does with it ------------------------------------------------------------------


@pytest.fixture
def warming_up(settings, redis_url):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.SITE_URL = "https://paperboy.example.org"
    settings.SEND_WARMUP_START = datetime.now(UTC).date()
    settings.SEND_WARMUP_DAILY_CAPS = [25]
    settings.DIGEST_BATCH_SIZE = 10
    mail.outbox = []


@pytest.mark.django_db
def test_what_does_not_fit_today_waits_pending_in_order_and_is_not_lost(
    day_batch, warming_up, django_capture_on_commit_callbacks, settings
):
    require_postgres()
    # The day's budget renews at midnight UTC (Redis's clock): run within the default park
    # threshold (300 s) of it, a wait would be short enough for the task to retry instead of
    # parking the issue, which is what this test is about.
    settings.SEND_RATE_PARK_AFTER_SECONDS = 1
    robotics = day_batch.topics["robotics"]
    readers = [
        SubscriberFactory(email=f"reader{i:02}@example.org", topics=[robotics]) for i in range(40)
    ]
    issue = issue_create(batch=day_batch.batch)
    with django_capture_on_commit_callbacks(execute=False):
        assert issue_start(issue=issue)  # its chunk tasks are run by hand below
    sent = sum(deliveries_send_chunk(issue_id=issue.pk) for _ in range(6))
    assert sent == 25  # the day's cap, across chunks (10 + 10 + 5)
    assert len({a for m in mail.outbox for a in m.to}) == 25
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENDING  # not finished: 15 are still to go
    assert issue.send_waiting_until > datetime.now(UTC) + timedelta(seconds=1)
    waiting = Delivery.objects.filter(issue=issue, status=Delivery.Status.PENDING)
    assert waiting.count() == 15
    # In order: those left are the last of the claim order, untouched by the waits.
    order = list(
        Delivery.objects.filter(issue=issue)
        .order_by("content_key", "id")
        .values_list("pk", "status")
    )
    assert [s for _, s in order[-15:]] == [Delivery.Status.PENDING] * 15
    assert set(waiting.values_list("attempts", flat=True)) == {0}
    assert set(waiting.values_list("claim", flat=True)) == {""}
    # The sweeper does not take them for lost while the issue waits: nothing is enqueued.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        deliveries_sweep()
    assert callbacks == []
    # Past the wait, it enqueues them again (the next day's budget).
    Issue.objects.filter(pk=issue.pk).update(
        send_waiting_until=datetime.now(UTC) - timedelta(seconds=1)
    )
    Delivery.objects.filter(issue=issue).update(claimed_at=datetime.now(UTC) - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        deliveries_sweep()
    assert len(callbacks) == 1
    assert (
        not Subscriber.objects.exclude(pk__in=[r.pk for r in readers])
        .filter(email__in=[a for m in mail.outbox for a in m.to])
        .exists()
    )


@pytest.mark.django_db
def test_the_admin_shows_the_rate_and_what_is_waiting(client, day_batch, settings, redis_url):
    from tests.admin.conftest import editors_group
    from tests.factories import UserFactory

    settings.SEND_RATE_PER_SECOND = 14
    settings.SEND_QUOTA_PER_DAY = 100
    robotics = day_batch.topics["robotics"]
    for i in range(3):
        SubscriberFactory(email=f"r{i}@example.org", topics=[robotics])
    issue = issue_create(batch=day_batch.batch)
    Issue.objects.filter(pk=issue.pk).update(
        status=Issue.Status.SENDING, send_waiting_until=datetime.now(UTC) + timedelta(hours=2)
    )
    gate = rate.limiter()
    assert gate.take_quota(40).now and gate.slot(14).now
    user = UserFactory(username="ed")
    user.groups.add(editors_group())
    client.force_login(user)
    page = client.get(f"/admin/newsletter/issue/{issue.pk}/change/").content.decode()
    table = page[
        page.index('id="send-rate"') : page.index("</table>", page.index('id="send-rate"'))
    ]
    assert "14 emails/s" in table
    assert "40 of 100" in table  # today's count against the day's cap
    assert "0.2 emails/s" in table  # 14 in the last minute
    assert "3 pending" in table and "the budget renews" in table
