"""When a reader's digest is due: their slots in UTC, from their time zone, hour and frequency.

A slot is a local date and hour. The period key of a slot is its local date: one email per
reader and local day at most, whatever the frequency. Times that do not exist on a DST change
(spring forward) resolve to the first instant after the gap; times that occur twice (fall back)
to the first occurrence, so each slot is one instant and is sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WEEKDAYS = "weekdays"  # Monday to Friday
EVERY_DAY = "every_day"
WEEKLY = "weekly"
FREQUENCIES = (WEEKDAYS, EVERY_DAY, WEEKLY)
PAPERS_CHOICES = (3, 5, 10, 20)
DEFAULT_HOUR = 7
DEFAULT_ZONE = "UTC"
LOOKAHEAD_DAYS = 8  # any frequency has a slot within a week and a day


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """The IANA names a reader may choose, sorted (the system's tz database)."""
    return tuple(sorted(available_timezones() - {"localtime", "Factory"}))


def time_zone_valid(name: str) -> bool:
    if name not in time_zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def rhythm_problems(*, zone: str, hour: int, frequency: str, weekday: int, papers: int) -> dict:
    """{field: message} for each value out of range (empty: all fine)."""
    problems = {}
    if not time_zone_valid(zone):
        problems["time_zone"] = f"“{zone}” is not a time zone we know; pick one from the list."
    if not (isinstance(hour, int) and 0 <= hour <= 23):
        problems["delivery_hour"] = "Choose an hour from 0 to 23."
    if frequency not in FREQUENCIES:
        problems["frequency"] = "Choose every weekday, every day or once a week."
    if not (isinstance(weekday, int) and 0 <= weekday <= 6):
        problems["weekday"] = "Choose a day of the week."
    if papers not in PAPERS_CHOICES:
        choices = ", ".join(str(n) for n in PAPERS_CHOICES)
        problems["papers_per_email"] = f"Choose {choices} papers."
    return problems


@dataclass(frozen=True)
class Rhythm:
    """What a reader chose: the plain data the slot arithmetic needs."""

    zone: str = DEFAULT_ZONE
    hour: int = DEFAULT_HOUR
    frequency: str = WEEKDAYS
    weekday: int = 0  # Monday = 0; used when weekly
    paused_until: date | None = None  # no slot before this local date

    def delivers_on(self, day: date) -> bool:
        if self.paused_until is not None and day < self.paused_until:
            return False
        if self.frequency == WEEKLY:
            return day.weekday() == self.weekday
        if self.frequency == WEEKDAYS:
            return day.weekday() < 5
        return True


def slot_instant(rhythm: Rhythm, day: date) -> datetime:
    """The UTC instant of the reader's slot on local `day` (DST gaps and folds resolved)."""
    # fold=0: a repeated wall time is its first occurrence; a skipped one is read with the
    # offset before the change, which lands just after the gap (02:30 -> 03:30 in New York).
    local = datetime.combine(day, time(rhythm.hour), tzinfo=ZoneInfo(rhythm.zone))
    return local.astimezone(UTC)


def next_slot(rhythm: Rhythm, after: datetime) -> datetime:
    """The first slot strictly after `after` (an aware instant), in UTC."""
    zone = ZoneInfo(rhythm.zone)
    start = after.astimezone(zone).date() - timedelta(days=1)  # a gap can move a slot back
    start = max(start, rhythm.paused_until or start)
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = start + timedelta(days=offset)
        if rhythm.delivers_on(day):
            instant = slot_instant(rhythm, day)
            if instant > after:
                return instant
    raise ValueError(f"no slot within {LOOKAHEAD_DAYS} days for {rhythm}")  # unreachable


def current_slot(rhythm: Rhythm, now: datetime) -> datetime | None:
    """The latest slot at or before `now` within the look-ahead window (None: none)."""
    zone = ZoneInfo(rhythm.zone)
    today = now.astimezone(zone).date() + timedelta(days=1)
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = today - timedelta(days=offset)
        if rhythm.delivers_on(day):
            instant = slot_instant(rhythm, day)
            if instant <= now:
                return instant
    return None


def period_key(rhythm: Rhythm, slot: datetime) -> str:
    """The period a slot serves: its local date (unique per reader with the delivery row)."""
    return slot.astimezone(ZoneInfo(rhythm.zone)).date().isoformat()


def describe(rhythm: Rhythm) -> str:
    """The schedule in words, for pages and emails: "weekdays at 07:00 (Asia/Tokyo)"."""
    names = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
    when = {WEEKDAYS: "weekdays", EVERY_DAY: "every day with new papers"}.get(
        rhythm.frequency, f"weekly on {names[rhythm.weekday]}"
    )
    return f"{when} at {rhythm.hour:02d}:00 ({rhythm.zone})"
