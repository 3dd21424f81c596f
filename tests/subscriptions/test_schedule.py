"""A reader's slots: local hour in their zone, DST gaps and folds sent once, weekly, pause."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError

from subscriptions import schedule
from subscriptions.forms import ScheduleForm
from subscriptions.schedule import Rhythm
from subscriptions.services import subscriber_update_schedule
from tests.factories import SubscriberFactory


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_it_defaults_to_weekdays_at_seven_utc():
    # Friday 08:00 UTC: the next weekday slot is Monday 07:00.
    assert schedule.next_slot(Rhythm(), utc(2026, 12, 4, 8)) == utc(2026, 12, 7, 7)
    assert schedule.next_slot(Rhythm(), utc(2026, 12, 4, 6, 59)) == utc(2026, 12, 4, 7)


def test_it_puts_tokyo_weekly_monday_eight_on_sunday_23_utc():
    tokyo = Rhythm(zone="Asia/Tokyo", hour=8, frequency=schedule.WEEKLY, weekday=0)
    slot = schedule.next_slot(tokyo, utc(2026, 12, 2, 12))  # a Wednesday
    assert slot == utc(2026, 12, 6, 23)  # Monday 7 Dec 08:00 JST
    assert schedule.period_key(tokyo, slot) == "2026-12-07"
    assert schedule.next_slot(tokyo, slot) == utc(2026, 12, 13, 23)


def test_it_follows_new_york_across_the_november_change():
    ny = Rhythm(zone="America/New_York", frequency=schedule.EVERY_DAY)
    before = schedule.next_slot(ny, utc(2026, 10, 31, 12))
    after = schedule.next_slot(ny, before)
    assert schedule.next_slot(ny, utc(2026, 10, 30, 12)) == utc(2026, 10, 31, 11)  # 07:00 EDT
    assert before == utc(2026, 11, 1, 12)  # Sunday 1 Nov 07:00 EST, five hours after the change
    assert after == utc(2026, 11, 2, 12)


def test_it_sends_a_repeated_hour_once_in_the_fall():
    # 01:00 happens twice in New York on 1 Nov 2026: one slot, the first occurrence.
    ny = Rhythm(zone="America/New_York", hour=1, frequency=schedule.EVERY_DAY)
    first = schedule.next_slot(ny, utc(2026, 10, 31, 12))
    assert first == utc(2026, 11, 1, 5)  # 01:00 EDT
    second = schedule.next_slot(ny, first)
    assert second == utc(2026, 11, 2, 6)  # the next day, not 01:00 EST an hour later
    assert schedule.period_key(ny, first) != schedule.period_key(ny, second)


def test_it_sends_a_skipped_hour_once_in_the_spring():
    # 02:00 does not exist in New York on 8 Mar 2026: the slot is just after the gap.
    ny = Rhythm(zone="America/New_York", hour=2, frequency=schedule.EVERY_DAY)
    slot = schedule.next_slot(ny, utc(2026, 3, 7, 12))
    assert slot == utc(2026, 3, 8, 7)  # 03:00 EDT
    assert schedule.period_key(ny, slot) == "2026-03-08"
    assert schedule.next_slot(ny, slot) == utc(2026, 3, 9, 6)


def test_it_knows_the_current_slot_for_catching_up():
    assert schedule.current_slot(Rhythm(), utc(2026, 12, 5, 12)) == utc(2026, 12, 4, 7)
    assert schedule.current_slot(Rhythm(), utc(2026, 12, 4, 7)) == utc(2026, 12, 4, 7)


def test_it_skips_slots_while_paused():
    paused = Rhythm(paused_until=date(2026, 12, 10))
    assert schedule.next_slot(paused, utc(2026, 12, 2, 12)) == utc(2026, 12, 10, 7)


def test_it_describes_the_schedule_in_words():
    weekly = Rhythm(zone="Asia/Tokyo", hour=8, frequency=schedule.WEEKLY, weekday=0)
    assert schedule.describe(weekly) == "weekly on Mondays at 08:00 (Asia/Tokyo)"
    assert schedule.describe(Rhythm()) == "weekdays at 07:00 (UTC)"


@pytest.mark.django_db
def test_it_updates_the_schedule_and_the_next_slot(time_machine):
    time_machine.move_to(utc(2026, 12, 2, 12), tick=False)
    reader = SubscriberFactory()
    subscriber_update_schedule(
        subscriber=reader,
        time_zone="Asia/Tokyo",
        delivery_hour=8,
        frequency=schedule.WEEKLY,
        weekday=0,
        papers_per_email=5,
    )
    reader.refresh_from_db()
    assert (reader.time_zone, reader.papers_per_email) == ("Asia/Tokyo", 5)
    assert reader.next_due_at == utc(2026, 12, 6, 23)


@pytest.mark.django_db
def test_it_refuses_a_bad_zone_and_changes_nothing():
    reader = SubscriberFactory()
    due = reader.next_due_at
    with pytest.raises(ValidationError) as error:
        subscriber_update_schedule(subscriber=reader, time_zone="Mars/Olympus", delivery_hour=25)
    assert set(error.value.message_dict) == {"time_zone", "delivery_hour"}
    reader.refresh_from_db()
    assert (reader.time_zone, reader.delivery_hour, reader.next_due_at) == ("UTC", 7, due)


def test_it_gives_clear_form_errors(time_machine):
    time_machine.move_to(utc(2026, 12, 2, 12), tick=False)
    form = ScheduleForm(
        data={
            "time_zone": "Europe/Atlantis",
            "delivery_hour": "24",
            "frequency": "weekly",
            "weekday": "0",
            "papers_per_email": "7",
            "paused_until": "2026-12-01",
        }
    )
    assert not form.is_valid()
    assert form.errors["time_zone"] == ["“Europe/Atlantis” is not a time zone we know."]
    assert form.errors["delivery_hour"] == ["Choose an hour from 00:00 to 23:00."]
    assert form.errors["papers_per_email"] == ["Choose 3, 5, 10 or 20 papers."]
    assert form.errors["paused_until"] == ["Choose a date after today, or leave it empty."]


def test_it_accepts_a_good_schedule(time_machine):
    time_machine.move_to(utc(2026, 12, 2, 12), tick=False)
    form = ScheduleForm(
        data={
            "time_zone": "Asia/Tokyo",
            "delivery_hour": "8",
            "frequency": "weekly",
            "weekday": "0",
            "papers_per_email": "5",
            "paused_until": "2026-12-24",
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["delivery_hour"] == 8
    assert form.cleaned_data["paused_until"] == date(2026, 12, 24)


@pytest.mark.django_db
def test_it_saves_the_schedule_from_the_preference_center(client, time_machine):
    from subscriptions.links import preferences_url
    from tests.subscriptions.helpers import path_of

    time_machine.move_to(utc(2026, 12, 2, 12), tick=False)
    reader = SubscriberFactory()
    prefs = path_of(preferences_url(reader))
    page = client.get(prefs).content.decode()
    assert "When and how much" in page and "weekdays at 07:00 (UTC)" in page
    response = client.post(
        prefs + "schedule",
        {
            "time_zone": "Asia/Tokyo",
            "delivery_hour": "8",
            "frequency": "weekly",
            "weekday": "0",
            "papers_per_email": "5",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == prefs + "#schedule"
    reader.refresh_from_db()
    assert (reader.frequency, reader.weekday, reader.delivery_hour) == ("weekly", 0, 8)
    assert reader.next_due_at == utc(2026, 12, 6, 23)
    saved = client.get(prefs).content.decode()
    assert "weekly on Mondays at 08:00 (Asia/Tokyo)" in saved


@pytest.mark.django_db
def test_it_shows_schedule_errors_and_keeps_the_old_schedule(client):
    from subscriptions.links import preferences_url
    from tests.subscriptions.helpers import path_of

    reader = SubscriberFactory()
    prefs = path_of(preferences_url(reader))
    response = client.post(
        prefs + "schedule",
        {
            "time_zone": "Nowhere/Town",
            "delivery_hour": "7",
            "frequency": "weekdays",
            "weekday": "0",
            "papers_per_email": "10",
        },
    )
    assert response.status_code == 400
    assert "“Nowhere/Town” is not a time zone we know." in response.content.decode()
    reader.refresh_from_db()
    assert reader.time_zone == "UTC"


@pytest.mark.django_db
def test_it_gives_a_confirmed_reader_their_first_slot(time_machine):
    from subscriptions.models import Subscriber
    from subscriptions.services import subscriber_confirm

    time_machine.move_to(utc(2026, 12, 2, 12), tick=False)
    reader = SubscriberFactory(status=Subscriber.Status.PENDING)
    consent = reader.consents.first()
    if consent is None:
        consent = reader.consents.create(
            requested_at=utc(2026, 12, 2, 11), form_version="test", topics=[]
        )
    subscriber_confirm(subscriber=reader, consent_id=consent.pk)
    reader.refresh_from_db()
    assert reader.next_due_at == utc(2026, 12, 3, 7)


@pytest.mark.django_db
def test_it_takes_the_time_zone_from_the_signup_form(client, topics):
    from subscriptions.consent import CONSENT_VERSION
    from subscriptions.models import Subscriber

    form = {"email": "tokyo@example.org", "topics": [topics[0].pk]}
    form |= {"consent_version": CONSENT_VERSION, "time_zone": "Asia/Tokyo"}
    assert client.post("/", form).status_code == 200
    assert Subscriber.objects.get(email="tokyo@example.org").time_zone == "Asia/Tokyo"
    refused = client.post("/", form | {"email": "x@example.org", "time_zone": "Moon/Base"})
    assert refused.status_code == 400
    assert "“Moon/Base” is not a time zone we know." in refused.content.decode()
    assert not Subscriber.objects.filter(email="x@example.org").exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_proposes_the_browsers_time_zone_at_signup(live_server, browser_page):
    from playwright.sync_api import expect

    from subscriptions.models import Subscriber
    from tests.factories import TopicFactory
    from tests.subscriptions.conftest import without_seeded_topics

    without_seeded_topics()
    TopicFactory(name="Language models", slug="llm", position=1)
    page = browser_page
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    page.goto(live_server.url + "/")
    expect(page.get_by_label("Your time zone")).to_have_value("Asia/Tokyo")
    page.get_by_label("Email address").fill("tokyo@example.org")
    page.get_by_label("Language models").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    assert Subscriber.objects.get().time_zone == "Asia/Tokyo"


@pytest.mark.django_db
def test_it_exports_the_schedule():
    from subscriptions.services import subscriber_export

    reader = SubscriberFactory(time_zone="Europe/Berlin", paused_until=date(2027, 1, 4))
    exported = subscriber_export(subscriber=reader)["schedule"]
    assert exported["time_zone"] == "Europe/Berlin"
    assert exported["paused_until"] == "2027-01-04"
    assert exported["frequency"] == "weekdays" and exported["papers_per_email"] == 10


@pytest.mark.django_db
def test_it_finds_the_due_readers_through_the_index():
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from subscriptions.models import Subscriber
    from subscriptions.selectors import subscribers_due

    now = timezone.now()
    later, earlier = now + timedelta(hours=5), now - timedelta(minutes=3)
    Subscriber.objects.bulk_create(
        Subscriber(
            email=f"r{n}@example.org",
            email_hash=f"{n:064d}",
            status="active",
            created_at=now,
            confirmed_at=now,
            next_due_at=earlier if n < 3 else later,
        )
        for n in range(5000)
    )
    gone = Subscriber.objects.create(
        email="gone@example.org",
        email_hash="g" * 64,
        status="unsubscribed",
        created_at=now,
        next_due_at=earlier,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE subscriptions_subscriber")
    due = subscribers_due(now=now)
    assert sorted(s.email for s in due) == ["r0@example.org", "r1@example.org", "r2@example.org"]
    assert gone not in due
    if connection.vendor == "postgresql":
        plan = due.explain()
        assert "subscriber_due_idx" in plan, plan
