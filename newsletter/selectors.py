"""Reads of the newsletter: the public archive, issue statistics, the editors' dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from digests.models import BatchEntry, DailyBatch
from newsletter.models import Delivery, Issue, TrackingEvent
from subscriptions.models import Subscriber


def issues_published(*, kind: str = DailyBatch.Kind.DAILY) -> QuerySet[Issue]:
    """Issues that went out, newest first: the daily ones are what the public archive and its
    feeds list (a weekly issue repeats their papers; it has a page of its own)."""
    return (
        Issue.objects.filter(status__in=[Issue.Status.SENDING, Issue.Status.SENT], batch__kind=kind)
        .select_related("batch")
        .order_by("-batch__date")
    )


def issue_published_for_day(day: date, *, kind: str = DailyBatch.Kind.DAILY) -> Issue | None:
    return issues_published(kind=kind).filter(batch__date=day).first()


def issue_papers(issue: Issue) -> list[BatchEntry]:
    """The day's visible papers in digest order: pinned first, then upstream rank."""
    return list(
        BatchEntry.objects.filter(batch=issue.batch, hidden=False)
        .select_related("paper")
        .prefetch_related("paper__topics")
        .order_by("-pinned", "rank")
    )


def topic_days_published(topic, *, days: int) -> list[tuple[Issue, list[BatchEntry]]]:
    """The latest `days` published issues that had visible papers of `topic`, newest first,
    each with those papers in digest order: a topic's archive page and feed."""
    entries = (
        BatchEntry.objects.filter(
            batch__issue__status__in=[Issue.Status.SENDING, Issue.Status.SENT],
            batch__kind=DailyBatch.Kind.DAILY,
            hidden=False,
            paper__topics=topic,
        )
        .select_related("paper", "batch__issue")
        .order_by("-batch__date", "-pinned", "rank")
    )
    dates = list(
        entries.values_list("batch__date", flat=True).distinct().order_by("-batch__date")[:days]
    )
    by_issue: dict[int, tuple[Issue, list[BatchEntry]]] = {}
    for entry in entries.filter(batch__date__in=dates):
        issue = entry.batch.issue
        by_issue.setdefault(issue.pk, (issue, []))[1].append(entry)
    return list(by_issue.values())


# --- Editors' statistics ------------------------------------------------------------------------

# Statuses first ("unknown": possibly sent, the provider could not say), then what happened.
STATUS_COUNTS = ("sent", "unknown", "failed", "bounced", "complained")
STAT_COUNTS = (*STATUS_COUNTS, "opened", "clicked")


def issue_stats(issue: Issue) -> dict[str, int | float]:
    """One issue's deliveries by status and by what happened to them, with rates over the
    deliveries handed to the provider."""
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


def issues_with_counts() -> QuerySet[Issue]:
    """Issues annotated with the counts issue_stats() gives for one issue (c_sent, c_failed,
    ...), in one query for a whole admin page instead of one per issue."""
    statuses = {name: Q(deliveries__status=name) for name in STATUS_COUNTS}
    stamps = {
        "opened": Q(deliveries__opened_at__isnull=False),
        "clicked": Q(deliveries__clicked_at__isnull=False),
    }
    return Issue.objects.select_related("batch").annotate(
        **{f"c_{name}": Count("deliveries", filter=q) for name, q in {**statuses, **stamps}.items()}
    )


def issue_rate(issue: Issue, name: str) -> float:
    """A rate as issue_stats() computes it: over the deliveries handed to the provider."""
    handed = issue.c_sent + issue.c_bounced + issue.c_complained
    return round(getattr(issue, f"c_{name}") / handed, 4) if handed else 0.0


@dataclass(frozen=True)
class DashboardSeries:
    days: list[date]
    subscribers: list[int]  # subscribed (confirmed, not unsubscribed) at the end of each day
    signups: list[int]  # subscriptions confirmed that day
    unsubscribes: list[int]  # subscribers who left that day
    sends: list[int]  # deliveries handed to the provider that day
    opens: list[int]  # deliveries first opened that day
    clicks: list[int]  # deliveries whose first click was that day
    bounces: list[int]  # deliveries that bounced for good that day (a soft bounce is not one)
    complaints: list[int]  # deliveries reported as spam that day


def _per_day(queryset: QuerySet, stamp: str, first: date) -> tuple[int, dict[date, int]]:
    """(count before `first`, {day: count}) of rows by the day of their `stamp` field."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(first, time.min, tzinfo=tz)
    before = queryset.filter(**{f"{stamp}__lt": start}).count()
    rows = (
        queryset.filter(**{f"{stamp}__gte": start})
        .annotate(day=TruncDate(stamp, tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return before, dict(rows)


# What each delivery series counts: the deliveries whose stamp falls on the day. Bounces and
# complaints count by status too, as issue_stats() does, so the two pages agree.
DELIVERY_SERIES = {
    "sends": ("sent_at", Q()),
    "opens": ("opened_at", Q()),
    "clicks": ("clicked_at", Q()),
    "bounces": ("bounced_at", Q(status=Delivery.Status.BOUNCED)),
    "complaints": ("complained_at", Q(status=Delivery.Status.COMPLAINED)),
}


def dashboard_series(*, days: int, today: date | None = None) -> DashboardSeries:
    """The last `days` days of subscribers and deliveries, for the admin dashboard.

    Subscriber history is rebuilt from the current rows (confirmations minus unsubscribes), so
    erased people leave no trace in it, as they should.
    """
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    span = [first + timedelta(days=n) for n in range(days)]
    confirmed = Subscriber.objects.filter(confirmed_at__isnull=False)
    joined_before, joined = _per_day(confirmed, "confirmed_at", first)
    left_before, left = _per_day(
        confirmed.filter(status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at__isnull=False),
        "unsubscribed_at",
        first,
    )
    subscribers, running = [], joined_before - left_before
    for day in span:
        running += joined.get(day, 0) - left.get(day, 0)
        subscribers.append(running)
    deliveries = {}
    for name, (stamp, condition) in DELIVERY_SERIES.items():
        rows = Delivery.objects.filter(condition, **{f"{stamp}__isnull": False})
        _, counts = _per_day(rows, stamp, first)
        deliveries[name] = [counts.get(day, 0) for day in span]
    return DashboardSeries(
        days=span,
        subscribers=subscribers,
        signups=[joined.get(day, 0) for day in span],
        unsubscribes=[left.get(day, 0) for day in span],
        **deliveries,
    )


# Anymail's normalized reasons, as an editor reads them.
REJECT_REASONS = {
    "invalid": "address does not exist",
    "bounced": "bounced",
    "timed_out": "gave up retrying",
    "blocked": "blocked by the receiving server",
    "spam": "reported or refused as spam",
    "unsubscribed": "unsubscribed at the provider",
    "other": "other",
}
PROBLEM_EVENTS = ("bounced", "rejected", "complained")


def tracking_problems_recent(*, limit: int = 20) -> list[TrackingEvent]:
    """The latest bounces and complaints the provider reported, newest first, with the issue
    and the subscriber they are about (an erased subscriber leaves the event, not the address).
    Soft bounces are here too: the delivery's status says whether it was for good."""
    return list(
        TrackingEvent.objects.filter(event_type__in=PROBLEM_EVENTS)
        .select_related("delivery__issue__batch", "delivery__subscriber")
        .order_by(F("occurred_at").desc(nulls_last=True), "-received_at")[:limit]
    )


def tracking_reason(event: TrackingEvent) -> str:
    """An event's reason in words: Anymail's normalized one, then the provider's description."""
    reason = REJECT_REASONS.get(event.reject_reason, event.reject_reason)
    return " — ".join(part for part in (reason, event.description) if part)


@dataclass(frozen=True)
class LinkClicks:
    url: str  # personal tokens already replaced (newsletter.services.tracking)
    clicks: int  # every click the provider reported
    readers: int  # distinct deliveries that clicked it


def issue_link_clicks(issue: Issue) -> list[LinkClicks]:
    """Clicks per link of one issue, most clicked first (then by most readers): one row per
    link as stored, so every reader's preferences link (its token removed) is the same link."""
    rows = (
        TrackingEvent.objects.filter(event_type="clicked", delivery__issue=issue)
        .exclude(click_url="")
        .values("click_url")
        .annotate(clicks=Count("id"), readers=Count("delivery", distinct=True))
        .order_by("-clicks", "-readers", "click_url")
    )
    return [LinkClicks(r["click_url"], r["clicks"], r["readers"]) for r in rows]


# --- The admin's front page -----------------------------------------------------------------------

SEND_SCHEDULE = "Send due digests"  # the due tick's name in config.schedules


@dataclass(frozen=True)
class EditorToday:
    """What the admin's index opens with: today's batch, what needs doing, the last figures."""

    today: date
    batch: object | None  # today's DailyBatch, if fetched
    issue: Issue | None  # today's issue, if the batch was sent or scheduled
    next_send_at: datetime | None  # the next reader's slot, if the due tick is enabled
    last_issue: Issue | None  # the latest issue before today's, with c_* counts
    todo: list[str]


def _next_send_at(now: datetime) -> datetime | None:
    """The next reader's slot after now (one read of subscriber_due_idx), while the due tick
    runs."""
    from django_celery_beat.models import PeriodicTask

    from subscriptions.models import Subscriber

    if not PeriodicTask.objects.filter(name=SEND_SCHEDULE, enabled=True).exists():
        return None
    return (
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, next_due_at__gt=now)
        .order_by("next_due_at")
        .values_list("next_due_at", flat=True)
        .first()
    )


def editor_today(*, now: datetime | None = None) -> EditorToday:
    now = now or timezone.now()
    today = timezone.localdate(now)
    batch = DailyBatch.objects.daily().filter(date=today).first()
    issue = Issue.objects.filter(batch=batch).first() if batch else None
    next_send_at = _next_send_at(now)
    last_issue = (
        issues_with_counts()
        .filter(batch__date__lt=today, batch__kind=DailyBatch.Kind.DAILY)
        .order_by("-batch__date")
        .first()
    )
    todo = []
    if batch is None:
        todo.append("Today's papers are not fetched yet: re-fetch from the batch list.")
    elif batch.status == DailyBatch.Status.DRAFT:
        todo.append("Today's batch is a draft: review it and approve it, or it is not sent.")
    elif batch.status == DailyBatch.Status.APPROVED and issue is None:
        when = f" at {timezone.localtime(next_send_at):%H:%M %Z}" if next_send_at else ""
        todo.append(f"Approved: the digest goes out{when}, or send it now.")
    elif batch.status == DailyBatch.Status.EMPTY:
        todo.append("Upstream had no papers for today (yet).")
    elif batch.status == DailyBatch.Status.FAILED:
        todo.append("Fetching today's papers failed: see the batch's last run, then re-fetch.")
    return EditorToday(today, batch, issue, next_send_at, last_issue, todo)
