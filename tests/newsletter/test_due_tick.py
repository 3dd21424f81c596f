"""The due tick over days of frozen time: each reader's email at their own local hour, once a
period, across a DST change, a late approval and missed ticks."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail

from digests.models import DailyBatch
from newsletter.models import Delivery, Issue
from newsletter.services.ticks import due_tick
from subscriptions import schedule
from subscriptions.models import Suppression
from subscriptions.services import subscriber_update_schedule
from tests.factories import (
    BatchEntryFactory,
    DailyBatchFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
)
from tests.newsletter.conftest import tag

pytestmark = pytest.mark.django_db
STEP = timedelta(minutes=5)


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.SITE_URL = "https://paperboy.example.org"


@pytest.fixture
def topic():
    return TopicFactory(name="Robotics", slug="robotics")


def reader(topic, *, zone="UTC", hour=7, frequency=schedule.EVERY_DAY, weekday=0, start, **kw):
    rhythm = schedule.Rhythm(zone=zone, hour=hour, frequency=frequency, weekday=weekday)
    return SubscriberFactory(
        topics=[topic],
        time_zone=zone,
        delivery_hour=hour,
        frequency=frequency,
        weekday=weekday,
        next_due_at=schedule.next_slot(rhythm, start),
        **kw,
    )


def batch_of(day: date, topic, *, status=DailyBatch.Status.APPROVED, papers=3, upvotes=None):
    batch = DailyBatchFactory(date=day, status=status)
    for rank in range(1, papers + 1):
        paper = PaperFactory(
            title=f"{day} paper {rank}", upvotes=(upvotes or [10] * papers)[rank - 1]
        )
        tag(paper, topic)
        BatchEntryFactory(batch=batch, paper=paper, rank=rank)
    return batch


def tick_at(moment: datetime, capture) -> list:
    """One tick at `moment` with what it enqueued run (eager tasks); the emails it sent."""
    before = len(mail.outbox)
    with time_machine.travel(moment, tick=False), capture(execute=True):
        due_tick()
    return mail.outbox[before:]


def run_ticks(start: datetime, end: datetime, capture, *, before_tick=None, skip=()):
    """Ticks every STEP from start to end; {tick time: emails sent then}."""
    sent = {}
    moment = start
    while moment <= end:
        if before_tick is not None:
            before_tick(moment)
        if not any(a <= moment < b for a, b in skip):
            emails = tick_at(moment, capture)
            if emails:
                sent[moment] = emails
        moment += STEP
    return sent


def test_it_sends_a_new_york_daily_reader_one_email_a_day_at_seven_across_the_dst_change(
    topic, django_capture_on_commit_callbacks
):
    # New York leaves daylight saving time on Sunday 1 November 2026: 07:00 is 11:00 UTC
    # before and 12:00 UTC after.
    start = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)
    end = datetime(2026, 11, 4, 23, 55, tzinfo=UTC)
    new_york = ZoneInfo("America/New_York")
    ny = reader(topic, zone="America/New_York", start=start)
    elsewhere = reader(topic, zone="Asia/Kolkata", hour=9, start=start)
    weekly = reader(
        topic, zone="Asia/Tokyo", hour=8, frequency=schedule.WEEKLY, weekday=0, start=start
    )

    def approve_each_day(moment):  # each day's batch is ready at 03:00 UTC
        if moment.hour == 3 and moment.minute == 0:
            batch_of(moment.date(), topic)

    sent = run_ticks(start, end, django_capture_on_commit_callbacks, before_tick=approve_each_day)

    ny_sends = [(m, e) for m, emails in sent.items() for e in emails if e.to == [ny.email]]
    local = [m.astimezone(new_york) for m, _ in ny_sends]
    assert [(t.date().isoformat(), t.hour, t.minute) for t in local] == [
        (f"2026-{d}", 7, 0) for d in ("10-29", "10-30", "10-31", "11-01", "11-02", "11-03", "11-04")
    ]
    assert [m.hour for m, _ in ny_sends] == [11, 11, 11, 12, 12, 12, 12]
    # Each day's email is that day's batch, and each batch is one issue with both readers.
    periods = Delivery.objects.filter(subscriber=ny).order_by("period")
    assert [d.issue.batch.date for d in periods] == [
        date(2026, 10, 29) + timedelta(days=n) for n in range(7)
    ]
    assert Issue.objects.filter(batch__kind=DailyBatch.Kind.DAILY).count() == 7
    other = [m for m, emails in sent.items() for e in emails if e.to == [elsewhere.email]]
    assert {(m.astimezone(ZoneInfo("Asia/Kolkata")).hour) for m in other} == {9}
    assert len(other) == 7
    # Weekly on Mondays at 08:00 in Tokyo: one email in the week, Monday 2 November 08:00 JST.
    tokyo = [m for m, emails in sent.items() for e in emails if weekly.email in e.to]
    assert [m.astimezone(ZoneInfo("Asia/Tokyo")).isoformat() for m in tokyo] == [
        "2026-11-02T08:00:00+09:00"
    ]
    assert {i.recipient_count for i in Issue.objects.filter(batch__kind="daily")} == {2}
    # The weekly email is an issue of its own: the week to the latest batch, 1 November.
    (week,) = Issue.objects.filter(batch__kind=DailyBatch.Kind.WEEKLY)
    assert (week.batch.date, week.recipient_count) == (date(2026, 11, 1), 1)


def test_a_tokyo_reader_weekly_on_mondays_gets_the_weeks_best_papers_none_already_had(
    topic, django_capture_on_commit_callbacks
):
    """Frozen time over a whole week, New York leaving DST on its Sunday: a reader in Tokyo
    who read daily until Tuesday, then chose weekly on Mondays at 08:00, gets one email on
    Monday 08:00 JST with the week's best robotics papers across the week's batches, none
    of the ones their daily emails already had, nothing off their topics."""
    start = datetime(2026, 10, 25, 12, 0, tzinfo=UTC)  # Sunday
    end = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # Monday, after 08:00 in Tokyo
    vision = TopicFactory(name="Vision", slug="vision")
    tokyo = reader(topic, zone="Asia/Tokyo", hour=8, start=start, papers_per_email=5)
    new_york = reader(topic, zone="America/New_York", start=start)
    # Robotics upvotes per weekday batch; each batch also has a much upvoted vision paper.
    robotics = {
        date(2026, 10, 26): [100, 95, 50],
        date(2026, 10, 27): [99, 94, 49],
        date(2026, 10, 28): [90, 20, 5],
        date(2026, 10, 29): [80, 15, 4],
        date(2026, 10, 30): [70, 60, 3],
    }

    def each_weekday(moment):  # each weekday's batch is approved at 03:00 UTC
        day = moment.date()
        if (moment.hour, moment.minute) == (3, 0) and day in robotics:
            batch = batch_of(day, topic, upvotes=robotics[day])
            paper = PaperFactory(title=f"{day} vision", upvotes=500)
            tag(paper, vision)
            BatchEntryFactory(batch=batch, paper=paper, rank=4)
        if moment == datetime(2026, 10, 27, 12, 0, tzinfo=UTC):  # Tuesday evening in Tokyo
            with time_machine.travel(moment, tick=False):
                subscriber_update_schedule(subscriber=tokyo, frequency=schedule.WEEKLY, weekday=0)

    sent = run_ticks(start, end, django_capture_on_commit_callbacks, before_tick=each_weekday)

    to_tokyo = [(m, e) for m, emails in sent.items() for e in emails if tokyo.email in e.to]
    at = [m.astimezone(ZoneInfo("Asia/Tokyo")) for m, _ in to_tokyo]
    # Two daily emails (Monday's and Tuesday's batches, at the first tick after each was
    # approved: 12:00 JST), then the weekly one on Monday 2 November at 08:00 JST.
    assert [t.isoformat() for t in at] == [
        "2026-10-26T12:00:00+09:00",
        "2026-10-27T12:00:00+09:00",
        "2026-11-02T08:00:00+09:00",
    ]
    weekly_email = to_tokyo[-1][1]
    had = {title for _, e in to_tokyo[:2] for title in _titles(e)}
    assert had == {f"{day} paper {r}" for day in list(robotics)[:2] for r in (1, 2, 3)}
    # The week's five most upvoted robotics papers they did not have, from three batches.
    assert _titles(weekly_email) == [
        "2026-10-28 paper 1",
        "2026-10-29 paper 1",
        "2026-10-30 paper 1",
        "2026-10-30 paper 2",
        "2026-10-28 paper 2",
    ]
    assert weekly_email.subject.startswith("Week to Fri 30 Oct: 2026-10-28 paper 1")
    row = Delivery.objects.get(subscriber=tokyo, period="2026-11-02")
    assert (row.issue.batch.kind, row.issue.batch.date) == ("weekly", date(2026, 10, 30))
    # New York's daily reader got each weekday's batch once, across their DST change, and
    # never the weekly issue.
    ny_rows = Delivery.objects.filter(subscriber=new_york).order_by("period")
    assert [d.issue.batch.date for d in ny_rows] == list(robotics)
    assert {e.to[0] for _, emails in sent.items() for e in emails} == {tokyo.email, new_york.email}


def _titles(email) -> list[str]:
    """The papers of a digest email, in its order (their titles are '<date> paper <n>')."""
    return re.findall(r"^(\d{4}-\d{2}-\d{2} (?:paper \d|vision))$", email.body, re.MULTILINE)


def test_it_sends_a_late_approval_as_soon_as_it_is_approved_not_a_day_late(
    topic, django_capture_on_commit_callbacks
):
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # a Tuesday
    someone = reader(topic, frequency=schedule.WEEKDAYS, start=start)
    batch_of(date(2026, 12, 1), topic)
    wednesday = batch_of(date(2026, 12, 2), topic, status=DailyBatch.Status.DRAFT)

    def approve_late(moment):  # Wednesday's batch is approved at 10:02 UTC, after 07:00
        if moment == datetime(2026, 12, 2, 10, 5, tzinfo=UTC):
            DailyBatch.objects.filter(pk=wednesday.pk).update(status=DailyBatch.Status.APPROVED)

    sent = run_ticks(
        start,
        datetime(2026, 12, 3, 6, 0, tzinfo=UTC),
        django_capture_on_commit_callbacks,
        before_tick=approve_late,
    )

    assert list(sent) == [
        datetime(2026, 12, 1, 7, 0, tzinfo=UTC),  # Tuesday at 07:00
        datetime(2026, 12, 2, 10, 5, tzinfo=UTC),  # Wednesday, at the first tick it could
    ]
    assert [len(emails) for emails in sent.values()] == [1, 1]
    rows = Delivery.objects.filter(subscriber=someone).order_by("period")
    assert [(d.period, d.issue.batch.date) for d in rows] == [
        ("2026-12-01", date(2026, 12, 1)),
        ("2026-12-02", date(2026, 12, 2)),
    ]
    someone.refresh_from_db()
    assert someone.next_due_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def test_it_catches_up_after_missed_ticks_and_never_sends_twice(
    topic, django_capture_on_commit_callbacks
):
    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    readers = [reader(topic, hour=h, start=start) for h in (6, 7, 8)]
    batch_of(date(2026, 12, 2), topic)

    # Beat was down from 05:30 to 09:10: the first tick after sends everyone due, once.
    down = (datetime(2026, 12, 2, 5, 30, tzinfo=UTC), datetime(2026, 12, 2, 9, 10, tzinfo=UTC))
    sent = run_ticks(
        start,
        datetime(2026, 12, 2, 23, 55, tzinfo=UTC),
        django_capture_on_commit_callbacks,
        skip=[down],
    )

    assert list(sent) == [datetime(2026, 12, 2, 9, 10, tzinfo=UTC)]
    assert sorted(a for e in sent[down[1]] for a in e.to) == sorted(r.email for r in readers)
    # The same tick run again, or a second one at the same moment, sends nothing more.
    assert tick_at(down[1], django_capture_on_commit_callbacks) == []
    assert Delivery.objects.count() == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_it_sends_nothing_on_a_day_with_nothing_for_them_unless_they_asked_for_the_top(
    topic, django_capture_on_commit_callbacks
):
    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    other_topic = TopicFactory(name="Vision", slug="vision")
    plain = reader(other_topic, start=start)
    wants_top = reader(other_topic, start=start, top_when_empty=True)
    batch_of(date(2026, 12, 2), topic, upvotes=[5, 50, 20])

    sent = tick_at(datetime(2026, 12, 2, 7, 0, tzinfo=UTC), django_capture_on_commit_callbacks)

    assert [e.to for e in sent] == [[wants_top.email]]
    assert Delivery.objects.get(subscriber=plain).status == Delivery.Status.SKIPPED
    top = Delivery.objects.get(subscriber=wants_top)
    assert (top.status, top.last_error) == (Delivery.Status.SENT, "")
    assert "2026-12-02 paper 2" in sent[0].body  # the most upvoted first
    plain.refresh_from_db()
    assert plain.next_due_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)  # once per period


def test_a_tick_reads_only_due_readers(topic, django_capture_on_commit_callbacks):
    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    due = [reader(topic, hour=7, start=start) for _ in range(3)]
    for _ in range(5):
        reader(topic, hour=20, start=start)
    batch_of(date(2026, 12, 2), topic)

    seven = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    with time_machine.travel(seven, tick=False), django_capture_on_commit_callbacks(execute=True):
        report = due_tick()

    assert (report.due, report.joined, report.waiting) == (3, 3, 0)
    assert set(Delivery.objects.values_list("subscriber_id", flat=True)) == {r.pk for r in due}


def test_a_due_reader_suppressed_or_unconfirmed_is_not_sent_and_moves_on(
    topic, django_capture_on_commit_callbacks
):
    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    kept = reader(topic, start=start)
    bounced = reader(topic, start=start)
    unconfirmed = reader(topic, start=start, confirmed_at=None)
    Suppression.objects.create(
        email_hash=bounced.email_hash, reason=Suppression.Reason.BOUNCED, created_at=start
    )
    batch_of(date(2026, 12, 2), topic)

    seven = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    with time_machine.travel(seven, tick=False), django_capture_on_commit_callbacks(execute=True):
        report = due_tick()

    assert [e.to for e in mail.outbox] == [[kept.email]]
    assert (report.due, report.joined, report.moved_on) == (3, 1, 2)
    assert list(Delivery.objects.values_list("subscriber_id", flat=True)) == [kept.pk]
    for gone in (bounced, unconfirmed):
        gone.refresh_from_db()
        # Moved on to their next slot: the next ticks do not read them again and again.
        assert gone.next_due_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def test_an_editors_send_now_joins_everyone_the_tick_has_not_served_yet(
    topic, django_capture_on_commit_callbacks
):
    from newsletter.services.issues import digest_send_for_day

    start = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    early = reader(topic, zone="Asia/Tokyo", start=start)  # 07:00 JST is 22:00 UTC the day before
    late = reader(topic, zone="America/Los_Angeles", start=start)
    batch_of(date(2026, 12, 2), topic)
    first = tick_at(datetime(2026, 12, 1, 22, 0, tzinfo=UTC), django_capture_on_commit_callbacks)
    assert [e.to for e in first] == [[early.email]]

    editor_at = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
    with (
        time_machine.travel(editor_at, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        issue = digest_send_for_day(day=date(2026, 12, 2))

    assert [a for e in mail.outbox for a in e.to] == [early.email, late.email]
    assert issue.recipient_count == 2 and Issue.objects.count() == 1
    # Los Angeles' slot comes later: they already have this batch, so nothing more is sent.
    assert (
        tick_at(datetime(2026, 12, 2, 15, 0, tzinfo=UTC), django_capture_on_commit_callbacks) == []
    )


def test_installing_schedules_replaces_the_single_daily_send_with_the_tick():
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from config.schedules import schedules_install

    crontab = CrontabSchedule.objects.create(minute="0", hour="13", day_of_week="1-5")
    PeriodicTask.objects.create(
        name="Send the daily digest", task="newsletter.tasks.send_daily_digest", crontab=crontab
    )
    assert "Send due digests" in schedules_install()
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert "newsletter.tasks.send_due_digests" in tasks
    assert "newsletter.tasks.send_daily_digest" not in tasks
    tick = PeriodicTask.objects.get(name="Send due digests").crontab
    assert (tick.minute, tick.hour) == ("*/5", "*")


def test_after_a_quiet_week_a_weekly_reader_still_gets_the_week_a_daily_one_waits(
    topic, django_capture_on_commit_callbacks
):
    start = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    weekly = reader(topic, frequency=schedule.WEEKLY, weekday=0, start=start)
    daily = reader(topic, start=start)
    batch_of(date(2026, 12, 1), topic)
    batch_of(date(2026, 12, 2), topic)  # then nothing: upstream's quiet days

    sent = tick_at(datetime(2026, 12, 7, 7, 0, tzinfo=UTC), django_capture_on_commit_callbacks)

    (email,) = sent
    assert email.to == [weekly.email]
    assert {"2026-12-01 paper 1", "2026-12-02 paper 1"} <= set(_titles(email))
    assert not Delivery.objects.filter(subscriber=daily).exists()  # five days old: not today's


def test_a_worker_renders_each_issue_once_through_a_day_of_slots(
    topic, django_capture_on_commit_callbacks, monkeypatch
):
    """Each slot reopens the day's and the week's issue, and their chunks interleave on a
    worker: each issue's paper blocks are still rendered once for the whole day."""
    from newsletter.services import sending

    built = []

    class CountedRenderer(sending.IssueRenderer):
        def __init__(self, batch):
            built.append(batch.kind)
            super().__init__(batch)

    monkeypatch.setattr(sending, "IssueRenderer", CountedRenderer)
    monkeypatch.setattr(sending, "_renderer_cache", type(sending._renderer_cache)())
    start = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # a Monday
    readers = [
        reader(topic, hour=hour, frequency=frequency, start=start)
        for hour in (7, 8)
        for frequency in (schedule.EVERY_DAY, schedule.WEEKLY)
    ]
    batch_of(date(2026, 12, 7), topic)

    sent = run_ticks(
        start, datetime(2026, 12, 7, 9, 0, tzinfo=UTC), django_capture_on_commit_callbacks
    )

    # Two slots, each sending both issues: four emails, one per reader.
    assert [len(emails) for emails in sent.values()] == [2, 2]
    assert sorted(a for emails in sent.values() for e in emails for a in e.to) == sorted(
        r.email for r in readers
    )
    assert sorted(built) == [DailyBatch.Kind.DAILY, DailyBatch.Kind.WEEKLY]


def test_an_intro_edited_between_slots_is_in_the_next_slots_email(
    topic, django_capture_on_commit_callbacks
):
    start = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    early = reader(topic, hour=7, start=start)
    late = reader(topic, hour=8, start=start)
    batch = batch_of(date(2026, 12, 7), topic)

    def edit_after_the_first_slot(moment):
        if moment == datetime(2026, 12, 7, 7, 30, tzinfo=UTC):
            batch.intro = "A correction from the editors."
            batch.save(update_fields=["intro"])

    sent = run_ticks(
        start,
        datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
        django_capture_on_commit_callbacks,
        before_tick=edit_after_the_first_slot,
    )

    (first,), (second,) = sent.values()
    assert (first.to, second.to) == ([early.email], [late.email])
    assert "A correction from the editors." not in first.body
    assert "A correction from the editors." in second.body
