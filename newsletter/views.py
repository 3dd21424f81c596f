from __future__ import annotations

from datetime import date

from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from digests.editorial import editorial_html
from newsletter.selectors import issue_papers, issue_published_for_day, issues_published

ARCHIVE_PAGE_SIZE = 60


def archive_index(request: HttpRequest) -> HttpResponse:
    issues = issues_published()[:ARCHIVE_PAGE_SIZE]
    return render(request, "newsletter/archive_index.html", {"issues": issues})


def archive_day(request: HttpRequest, day: str) -> HttpResponse:
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise Http404("Not a date") from None
    issue = issue_published_for_day(parsed)
    if issue is None:
        raise Http404("No digest was published that day")
    context = {
        "issue": issue,
        "day": parsed,
        "intro": editorial_html(issue.batch.intro),
        "entries": issue_papers(issue),
    }
    return render(request, "newsletter/archive_day.html", context)


class DigestFeed(Feed):
    feed_type = Atom1Feed
    title = "Paperboy: trending papers, daily"
    subtitle = "The day's trending research papers, as sent in the Paperboy digest."

    def link(self) -> str:
        return reverse("newsletter:archive")

    def items(self):
        return issues_published()[:30]

    def item_title(self, issue) -> str:
        return f"Trending papers · {issue.batch.date:%a %-d %b %Y}"

    def item_description(self, issue) -> str:
        titles = [entry.paper.title for entry in issue_papers(issue)[:10]]
        return "; ".join(titles)

    def item_link(self, issue) -> str:
        return reverse("newsletter:archive-day", args=[issue.batch.date.isoformat()])

    def item_pubdate(self, issue):
        return issue.started_at or issue.created_at

    def item_updateddate(self, issue):
        return issue.finished_at or issue.started_at or issue.created_at
