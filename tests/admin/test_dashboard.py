"""The editors' dashboard: round axes and legends, the day-by-day series, recent bounces and
complaints with their reasons, and clicks per link of an issue (kept without personal tokens)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
from django.utils import timezone

from newsletter.charts import line_chart, x_tick_every, y_ticks
from newsletter.models import Delivery, Issue, TrackingEvent
from newsletter.selectors import (
    dashboard_series,
    issue_link_clicks,
    tracking_problems_recent,
    tracking_reason,
)
from newsletter.services.issues import issue_create
from newsletter.services.tracking import click_url_without_tokens
from subscriptions.links import feedback_url, preferences_url, unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db
DASHBOARD = "/admin/newsletter/issue/dashboard/"
WEBHOOK = "/anymail/postmark/tracking/"
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


# --- The charts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (40, [0, 10, 20, 30, 40]),
        (41, [0, 20, 40, 60]),
        (1234, [0, 500, 1000, 1500]),
        (90_001, [0, 50_000, 100_000]),
    ],
)
def test_it_picks_round_y_ticks_in_steps_of_1_2_or_5(peak, ticks):
    assert y_ticks(peak) == ticks


def test_the_chart_labels_every_gridline_dates_back_from_today_and_has_a_legend():
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=n) for n in range(30)]
    sent = [n * 3 for n in range(30)]  # peaks at 87: ticks 0, 50, 100
    svg = str(line_chart(title="<b>x</b>", days=days, series={"Sent": sent, "A & B": [1] * 30}))
    assert "&lt;b&gt;x&lt;/b&gt;" in svg and "A &amp; B" in svg
    y_labels = re.findall(r'text-anchor="end" font-size="\d+" fill="currentColor">([\d,]+)<', svg)
    assert y_labels == ["0", "50", "100"]
    date_labels = re.findall(r'fill="currentColor">(\d+ Mar)</text>', svg)
    assert date_labels == ["2 Mar", "9 Mar", "16 Mar", "23 Mar", "30 Mar"]  # 30 Mar is the last
    assert x_tick_every(90) == 15 and x_tick_every(30) == 7
    # One line per series, each its own colour and dash pattern, and a legend with totals.
    lines = re.findall(r'<polyline fill="none" stroke="(#\w+)" stroke-width="[\d.]+"([^>]*)>', svg)
    assert len({colour for colour, _ in lines}) == 2
    assert "stroke-dasharray" not in lines[0][1] and "stroke-dasharray" in lines[1][1]
    legend = svg.split('<ul class="pb-legend">')[1]
    assert "Sent" in legend and "(1,305 in all)" in legend and "(30 in all)" in legend
    assert "style=" not in svg  # the Content-Security-Policy refuses inline styles


def test_the_chart_refuses_more_series_than_it_has_pens():
    with pytest.raises(ValueError, match="at most 5 series"):
        line_chart(title="t", days=[dt.date(2026, 3, 1)], series={str(n): [n] for n in range(6)})


# --- The series -----------------------------------------------------------------------------------


def test_the_series_count_signups_unsubscribes_and_what_happened_to_deliveries(day_batch):
    today = dt.date(2026, 3, 10)
    tz = timezone.get_current_timezone()

    def at(days_ago: int) -> dt.datetime:
        return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(12), tzinfo=tz)

    agents = day_batch.topics["agents"]
    old = SubscriberFactory(created_at=at(60), topics=[agents])
    SubscriberFactory(created_at=at(2), topics=[agents])
    SubscriberFactory(created_at=at(2), topics=[agents])
    left = SubscriberFactory(created_at=at(40), topics=[agents])
    SubscriberFactory(created_at=at(0), pending=True)  # not confirmed: not a signup yet
    issue = issue_create(batch=day_batch.batch)
    rows = list(Delivery.objects.filter(issue=issue).order_by("pk"))
    assert len(rows) == 4
    Delivery.objects.filter(pk__in=[r.pk for r in rows]).update(status="sent", sent_at=at(1))
    Delivery.objects.filter(pk=rows[0].pk).update(opened_at=at(1), clicked_at=at(0))
    Delivery.objects.filter(pk=rows[1].pk).update(opened_at=at(0))
    Delivery.objects.filter(pk=rows[2].pk).update(status="bounced", bounced_at=at(0))
    # A soft bounce stamps bounced_at but leaves the delivery sent: not a bounce for good.
    Delivery.objects.filter(pk=rows[3].pk).update(bounced_at=at(0))
    left.status, left.unsubscribed_at = "unsubscribed", at(0)
    left.save()
    complainer = SubscriberFactory(created_at=at(50))
    Delivery.objects.create(
        issue=issue, subscriber=complainer, status="complained", complained_at=at(0)
    )

    series = dashboard_series(days=30, today=today)
    assert len(series.days) == 30 and series.days[-1] == today
    last3 = {
        name: getattr(series, name)[-3:]
        for name in (
            "subscribers",
            "signups",
            "unsubscribes",
            "sends",
            "opens",
            "clicks",
            "bounces",
            "complaints",
        )
    }
    assert last3 == {
        "subscribers": [5, 5, 4],  # old, left, complainer, then two joined; left went today
        "signups": [2, 0, 0],
        "unsubscribes": [0, 0, 1],
        "sends": [0, 4, 0],
        "opens": [0, 1, 1],
        "clicks": [0, 0, 1],
        "bounces": [0, 0, 1],
        "complaints": [0, 0, 1],
    }
    assert sum(series.signups) == 2  # the older ones joined before the span
    assert old.confirmed_at < at(29)


# --- Click links kept without tokens --------------------------------------------------------------


def test_it_removes_the_token_of_every_personal_link(day_batch):
    reader = SubscriberFactory()
    paper = day_batch.papers["a1"]
    kept = {
        unsubscribe_url(reader): "https://paperboy.example.org/u/…",
        preferences_url(reader): "https://paperboy.example.org/p/…/",
        preferences_url(reader)
        + "topics?from=email#top": "https://paperboy.example.org/p/…/topics",
        feedback_url(reader, paper.pk, 1): f"https://paperboy.example.org/f/…/{paper.pk}/more",
        "https://paperboy.example.org/confirm/abc:def:123/": "https://paperboy.example.org/confirm/…/",
        # Under a path prefix too, and other links as they are.
        "https://example.org/paperboy/u/tok:en": "https://example.org/paperboy/u/…",
        "https://huggingface.co/papers/2408.00118?ref=paperboy": (
            "https://huggingface.co/papers/2408.00118?ref=paperboy"
        ),
        "https://paperboy.example.org/digests/2026-03-10/": (
            "https://paperboy.example.org/digests/2026-03-10/"
        ),
    }
    for clicked, stored in kept.items():
        assert click_url_without_tokens(clicked) == stored, clicked
    assert feedback_url(reader, paper.pk, 1).endswith(f"/{paper.pk}/more")


# --- Webhooks store what the dashboard shows ------------------------------------------------------


@pytest.fixture
def postmark_webhook(settings):
    settings.ANYMAIL_ESP = "postmark"
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "hook:s3cret"}
    auth = "Basic " + base64.b64encode(b"hook:s3cret").decode()

    def post(client, payload) -> None:
        response = client.post(
            WEBHOOK, json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=auth
        )
        assert response.status_code == 200, response.content

    return post


@pytest.fixture
def sent_to_three(day_batch):
    readers = [
        SubscriberFactory(email=f"reader{n}@example.org", topics=[day_batch.topics["agents"]])
        for n in range(3)
    ]
    issue = issue_create(batch=day_batch.batch)
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT)
    deliveries = []
    for n, reader in enumerate(readers):
        delivery = Delivery.objects.get(issue=issue, subscriber=reader)
        Delivery.objects.filter(pk=delivery.pk).update(
            status="sent", sent_at=timezone.now(), provider_message_id=f"{MESSAGE_ID[:-1]}{n}"
        )
        deliveries.append(Delivery.objects.get(pk=delivery.pk))
    return issue, readers, deliveries


def click(delivery, link: str, at: str) -> dict:
    """Postmark's Click webhook, as its documentation shows it."""
    return {
        "RecordType": "Click",
        "MessageStream": "outbound",
        "ClickLocation": "HTML",
        "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
        "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X 10"},
        "Platform": "Desktop",
        "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5)",
        "OriginalLink": link,
        "Geo": {},
        "MessageID": delivery.provider_message_id,
        "Metadata": {"issue": str(delivery.issue_id), "delivery": str(delivery.pk)},
        "ReceivedAt": at,
        "Tag": "daily-digest",
        "Recipient": delivery.subscriber.email,
    }


def bounce(delivery, *, record="Bounce", kind="HardBounce", inactive=True, **extra) -> dict:
    return {
        "RecordType": record,
        "ID": delivery.pk * 1000 + len(kind),
        "Type": kind,
        "TypeCode": 1,
        "Tag": "daily-digest",
        "MessageID": delivery.provider_message_id,
        "Metadata": {"delivery": str(delivery.pk)},
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": delivery.subscriber.email,
        "From": "digest@paperboy.example.org",
        "BouncedAt": "2026-03-10T13:05:54Z",
        "Inactive": inactive,
        "CanActivate": True,
        "Subject": "Tue 10 Mar",
        **extra,
    }


def test_clicks_are_counted_per_link_without_any_reader_s_token(
    client, postmark_webhook, sent_to_three, day_batch
):
    issue, readers, deliveries = sent_to_three
    paper = "https://huggingface.co/papers/2408.00118"
    postmark_webhook(client, click(deliveries[0], paper, "2026-03-10T13:10:00Z"))
    postmark_webhook(client, click(deliveries[0], paper, "2026-03-10T13:11:00Z"))
    postmark_webhook(client, click(deliveries[1], paper, "2026-03-10T13:12:00Z"))
    for n in range(3):
        link = preferences_url(readers[n])
        postmark_webhook(client, click(deliveries[n], link, f"2026-03-10T14:0{n}:00Z"))
    # A replay of the same click is one click.
    postmark_webhook(client, click(deliveries[1], paper, "2026-03-10T13:12:00Z"))

    assert [(row.url, row.clicks, row.readers) for row in issue_link_clicks(issue)] == [
        ("https://paperboy.example.org/p/…/", 3, 3),
        (paper, 3, 2),
    ]
    stored = " ".join(TrackingEvent.objects.values_list("click_url", flat=True))
    for reader in readers:
        token = preferences_url(reader).rstrip("/").rsplit("/", 1)[1]
        assert token not in stored
    assert Delivery.objects.get(pk=deliveries[0].pk).clicked_at is not None


def test_the_issue_page_lists_its_clicks_per_link(
    editor_client, client, postmark_webhook, sent_to_three
):
    issue, _, deliveries = sent_to_three
    detail = editor_client.get(f"/admin/newsletter/issue/{issue.pk}/change/").content.decode()
    assert "No clicks on this issue&#x27;s links yet." in detail
    postmark_webhook(
        client, click(deliveries[2], "https://arxiv.org/abs/2408.00118", "2026-03-10T13:10:00Z")
    )
    detail = editor_client.get(f"/admin/newsletter/issue/{issue.pk}/change/").content.decode()
    table = detail.split('class="pb-link-clicks"')[1].split("</table>")[0]
    assert re.search(r"https://arxiv.org/abs/2408.00118</td><td>1</td><td>1</td>", table)


def test_bounces_and_complaints_are_listed_with_their_reasons(
    editor_client, client, postmark_webhook, sent_to_three
):
    issue, readers, deliveries = sent_to_three
    postmark_webhook(client, bounce(deliveries[0]))
    postmark_webhook(
        client,
        bounce(
            deliveries[1],
            kind="SoftBounce",
            inactive=False,
            Description="The server could not temporarily deliver your message.",
            BouncedAt="2026-03-10T14:00:00Z",
        ),
    )
    postmark_webhook(
        client,
        bounce(
            deliveries[2],
            record="SpamComplaint",
            kind="SpamComplaint",
            Description="The subscriber explicitly marked this message as spam.",
            BouncedAt="2026-03-10T15:00:00Z",
        ),
    )
    postmark_webhook(client, click(deliveries[0], "https://a.example/", "2026-03-10T16:00:00Z"))

    events = tracking_problems_recent()
    assert [(e.event_type, e.delivery_id) for e in events] == [
        ("complained", deliveries[2].pk),
        ("bounced", deliveries[1].pk),
        ("bounced", deliveries[0].pk),
    ]
    assert [e.reject_reason for e in events] == ["spam", "bounced", "bounced"]
    assert tracking_reason(events[0]) == (
        "reported or refused as spam — The subscriber explicitly marked this message as spam."
    )

    page = editor_client.get(DASHBOARD)
    problems = page.content.decode().split('id="dashboard-problems"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", problems, re.S)[1:]
    assert len(rows) == 3
    assert "Complained" in rows[0] and readers[2].email in rows[0] and "Complained</td>" in rows[0]
    assert "temporarily" in rows[1] and "Sent</td>" in rows[1]  # soft: still subscribed
    assert "unknown user" in rows[2] and "Bounced</td>" in rows[2]
    assert f"/admin/newsletter/issue/{issue.pk}/change/" in rows[2]

    readers[0].delete()  # erased: the event stays, the address goes
    page = editor_client.get(DASHBOARD).content.decode()
    assert "(erased)" in page and readers[0].email not in page


def test_the_dashboard_page_shows_the_figures_of_both_spans(editor_client, sent_to_three):
    issue, _readers, deliveries = sent_to_three
    now = timezone.now()
    Delivery.objects.filter(pk=deliveries[0].pk).update(opened_at=now, clicked_at=now)
    Delivery.objects.filter(pk=deliveries[1].pk).update(status="bounced", bounced_at=now)

    page = editor_client.get(DASHBOARD, {"days": "90"})
    content = page.content.decode()
    assert page.context["days"] == 90 and len(page.context["rows"]) == 90
    assert (
        'href="?days=30"' in content and '<strong aria-current="page">90 days</strong>' in content
    )
    for label in ("Deliveries per day", "Signups and unsubscribes per day", "Subscribers"):
        assert f'aria-label="{label}, last 90 days"' in content
    numbers = content.split('id="dashboard-numbers"')[1].split("</table>")[0]
    today = timezone.localdate().isoformat()
    # Newest day first: 3 subscribers, 3 signups, 0 left, 3 sent, 1 opened, 1 clicked, 1 bounced.
    assert re.search(
        rf"<tr><td>{today}</td><td>3</td><td>3</td><td>0</td><td>3</td><td>1</td><td>1</td>"
        r"<td>1</td><td>0</td></tr>",
        numbers,
    )
    legend = content.split('<ul class="pb-legend">')[1].split("</ul>")[0]
    for name, total in [("Sent", 3), ("Opened", 1), ("Clicked", 1), ("Bounced", 1)]:
        assert re.search(rf"{name} <span class=\"pb-legend-total\">\({total} in all\)", legend)
    # The subscribers' line is a level, not a count per day: its legend says where it stands.
    legends = re.findall(r'<ul class="pb-legend">(.*?)</ul>', content)
    assert len(legends) == 3 and "Subscribers" in legends[2] and "(3 now)" in legends[2]
    assert f"issue of {issue.batch.date}" in content
    assert "<script" not in content.split('id="content-main"')[1]
    # Anything but the two spans falls back to 30 days.
    for days in ("7", "x"):
        assert editor_client.get(DASHBOARD, {"days": days}).context["days"] == 30
