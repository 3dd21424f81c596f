from __future__ import annotations

from datetime import date

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.views.decorators.cache import never_cache

from digests.editorial import editorial_html
from digests.models import DailyBatch, Topic
from newsletter.composition import (
    FEEDBACK_URL,
    PREFERENCES_URL,
    SCHEDULE,
    UNSUBSCRIBE_URL,
    VIEW_TOKEN,
    merge_fields_apply,
)
from newsletter.models import Delivery, IssueContent
from newsletter.rendering import IssueRenderer, archive_path, schedule_words
from newsletter.selectors import (
    issue_papers,
    issue_published_for_day,
    issues_published,
    topic_days_published,
)
from subscriptions.links import SALT_VIEW, FeedbackLinks, TokenInvalid, key_token_read
from subscriptions.models import Subscriber

ARCHIVE_PAGE_SIZE = 60
TOPIC_PAGE_DAYS = 30  # days shown on a topic's archive page
FEED_ENTRIES = 30
FEED_PAPERS = 10  # papers summarized in one entry of the whole-site feed


def archive_index(request: HttpRequest) -> HttpResponse:
    issues = issues_published()[:ARCHIVE_PAGE_SIZE]
    topics = Topic.objects.filter(is_active=True).order_by("position", "name")
    return render(request, "newsletter/archive_index.html", {"issues": issues, "topics": topics})


def archive_day(request: HttpRequest, day: str, kind: str = DailyBatch.Kind.DAILY) -> HttpResponse:
    """A published issue's papers for everyone: the day's, or the week's to that day."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise Http404("Not a date") from None
    issue = issue_published_for_day(parsed, kind=kind)
    if issue is None:
        raise Http404("No digest was published that day")
    context = {
        "issue": issue,
        "day": parsed,
        "weekly": issue.batch.is_weekly,
        "intro": editorial_html(issue.batch.intro),
        "entries": issue_papers(issue),
    }
    return render(request, "newsletter/archive_day.html", context)


@never_cache
def archive_yours(
    request: HttpRequest, day: str, token: str, kind: str = DailyBatch.Kind.DAILY
) -> HttpResponse:
    """ "View in browser": the reader's own email of that day (or week), as it was sent.

    The link carries a view token (its own salt), so it shows this reader's digests and lets
    nothing change: the preference and unsubscribe links of the page lead to "Email me my
    link", which mails the preference link to the subscriber's own address. A forwarded or
    leaked link thus shows papers, never a way to edit or end the subscription. Its 👍/👎
    links are the reader's own (they record only after a confirming POST, as in the email).
    """
    try:
        parsed = date.fromisoformat(day)
        key = key_token_read(token, salt=SALT_VIEW)
    except (ValueError, TokenInvalid):
        return _not_yours(request, day, kind, status=400)
    subscriber = Subscriber.objects.filter(key=key).first()
    issue = issue_published_for_day(parsed, kind=kind)
    delivery = (
        Delivery.objects.filter(issue=issue, subscriber=subscriber)
        .exclude(content_key="")
        .exclude(status=Delivery.Status.SKIPPED)
        .first()
        if issue is not None and subscriber is not None
        else None
    )
    content = (
        IssueContent.objects.filter(issue=issue, key=delivery.content_key).first()
        if delivery is not None
        else None
    )
    if content is None:
        return _not_yours(request, day, kind, status=404)
    try:
        rendered = IssueRenderer(issue.batch).render(content.selection)
    except ValueError:  # every paper of it hidden since
        return _not_yours(request, day, kind, status=404)
    my_link = settings.SITE_URL + reverse("subscriptions:link-request")
    personal = {
        UNSUBSCRIBE_URL: my_link,
        PREFERENCES_URL: my_link,
        FEEDBACK_URL: FeedbackLinks().base(subscriber.key),
        VIEW_TOKEN: token,
        SCHEDULE: schedule_words(
            subscriber.time_zone, subscriber.delivery_hour, subscriber.frequency, subscriber.weekday
        ),
    }
    response = HttpResponse(merge_fields_apply(rendered.html, personal, html_escape=True))
    response["X-Robots-Tag"] = "noindex"
    # Where a click on the email's links goes must not learn the page's token.
    response["Referrer-Policy"] = "no-referrer"
    return response


def _not_yours(request: HttpRequest, day: str, kind: str, *, status: int) -> HttpResponse:
    try:
        issue = issue_published_for_day(date.fromisoformat(day), kind=kind)
    except ValueError:
        issue = None
    context = {"public_url": archive_path(issue.batch) if issue is not None else None}
    return render(request, "newsletter/not_yours.html", context, status=status)


def archive_topic(request: HttpRequest, slug: str) -> HttpResponse:
    """One topic's papers, day by day, as they were published (public, like the archive)."""
    topic = get_object_or_404(Topic, slug=slug, is_active=True)
    context = {"topic": topic, "days": topic_days_published(topic, days=TOPIC_PAGE_DAYS)}
    return render(request, "newsletter/archive_topic.html", context)


def _entries_summary(entries) -> str:
    """An entry's summary: each paper with its authors and what it is about (HTML)."""
    return render_to_string("newsletter/feed_entry.html", {"entries": entries})


class DigestFeed(Feed):
    """Every published digest, one Atom entry a day, each paper of it summarized (RFC 4287)."""

    feed_type = Atom1Feed
    title = "Paperboy: trending papers, daily"
    subtitle = "The day's trending research papers, as sent in the Paperboy digest."
    author_name = "Paperboy"

    def link(self) -> str:
        return reverse("newsletter:archive")

    def feed_url(self) -> str:
        return reverse("newsletter:feed")

    def items(self):
        # (issue, its papers, the topic of a topic feed's entry or None)
        return [(issue, issue_papers(issue)[:FEED_PAPERS], None) for issue in self._issues()]

    def _issues(self):
        return issues_published()[:FEED_ENTRIES]

    def item_title(self, item) -> str:
        issue, entries, _ = item
        count = f"{len(entries)} paper{'s' if len(entries) != 1 else ''}"
        return f"Trending papers · {issue.batch.date:%a %-d %b %Y} · {count}"

    def item_description(self, item) -> str:
        return _entries_summary(item[1])

    def item_link(self, item) -> str:
        issue, _, topic = item
        day = issue.batch.date.isoformat()
        if topic is not None:
            # The day on the topic's page: also the entry's id, distinct from the whole-site
            # feed's entry of that day.
            return reverse("newsletter:archive-topic", args=[topic.slug]) + f"#day-{day}"
        return reverse("newsletter:archive-day", args=[day])

    def item_pubdate(self, item):
        issue = item[0]
        return issue.started_at or issue.created_at

    def item_updateddate(self, item):
        issue = item[0]
        return issue.finished_at or issue.started_at or issue.created_at


class TopicFeed(DigestFeed):
    """One topic's papers: an entry per published day that had any."""

    def get_object(self, request: HttpRequest, slug: str) -> Topic:
        return get_object_or_404(Topic, slug=slug, is_active=True)

    def title(self, topic: Topic) -> str:
        return f"Paperboy: {topic.name}"

    def subtitle(self, topic: Topic) -> str:
        return f"The day's trending research papers about {topic.name}, as Paperboy sent them."

    def link(self, topic: Topic) -> str:
        return reverse("newsletter:archive-topic", args=[topic.slug])

    def feed_url(self, topic: Topic) -> str:
        return reverse("newsletter:topic-feed", args=[topic.slug])

    def items(self, topic: Topic):
        return [
            (issue, entries, topic)
            for issue, entries in topic_days_published(topic, days=FEED_ENTRIES)
        ]
