"""Sending a day's digest, asserted on Anymail's test backend."""

from __future__ import annotations

import datetime as dt
from html import escape

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from digests.models import DailyBatch
from newsletter.models import Delivery, Issue
from newsletter.services import planning
from newsletter.services.issues import digest_send_for_day, issue_create, issue_start
from newsletter.services.planning import papers_already_sent
from subscriptions.links import (
    SALT_VIEW,
    feedback_reader_token_read,
    key_token_read,
    preferences_url,
    unsubscribe_url,
)
from subscriptions.models import Subscriber
from subscriptions.services import subscriber_suppress, subscriber_unsubscribe
from tests.external import require_postgres
from tests.factories import BatchEntryFactory, DailyBatchFactory, SubscriberFactory
from tests.newsletter.conftest import DAY, papers_of, tag

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.SITE_URL = "https://paperboy.example.org"
    mail.outbox = []


@pytest.fixture(autouse=True)
def _committed(django_capture_on_commit_callbacks):
    """Run what a call enqueues on commit (tasks run in-process here) as the call returns."""
    global committed

    def committed(function, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(**kwargs)


def send_day(day):
    return committed(digest_send_for_day, day=day)


def start(issue):
    return committed(issue_start, issue=issue)


def sent_to() -> list[str]:
    return [address for message in mail.outbox for address in message.to]


def test_it_sends_each_eligible_subscriber_their_papers_exactly_once(day_batch):
    t = day_batch.topics
    robot = SubscriberFactory(email="robot@example.org", topics=[t["robotics"]])
    agent = SubscriberFactory(email="agent@example.org", topics=[t["agents"]])
    SubscriberFactory(email="paused@example.org", status=Subscriber.Status.PAUSED)
    SubscriberFactory(email="pending@example.org", pending=True)
    gone = SubscriberFactory(email="gone@example.org", topics=[t["robotics"]])
    subscriber_unsubscribe(subscriber=gone)
    SubscriberFactory(email="bounced@example.org", topics=[t["robotics"]])
    subscriber_suppress(email="bounced@example.org", reason="bounced")

    issue = send_day(DAY)

    assert sorted(sent_to()) == ["agent@example.org", "robot@example.org"]
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    assert DailyBatch.objects.get(pk=day_batch.batch.pk).status == DailyBatch.Status.SENT
    rows = {d.subscriber.email: d for d in Delivery.objects.filter(issue=issue)}
    assert set(rows) == {"robot@example.org", "agent@example.org"}
    assert all(d.status == Delivery.Status.SENT and d.sent_at for d in rows.values())
    assert all(d.provider_message_id != "" for d in rows.values())
    papers = day_batch.papers
    assert papers_of(rows["robot@example.org"]) == [papers[n].pk for n in ("r1", "r2", "ra", "r3")]

    # Again: nothing new is sent, by the day's job or by hand.
    assert send_day(DAY).pk == issue.pk
    assert start(issue) is False
    assert len(sent_to()) == 2
    assert robot.deliveries.count() == agent.deliveries.count() == 1


def test_it_personalizes_through_merge_data_and_headers_so_nobody_sees_another(day_batch):
    t = day_batch.topics
    subscribers = [SubscriberFactory(topics=[t["robotics"]]) for _ in range(3)]

    send_day(DAY)

    [message] = mail.outbox  # same papers: one rendering, one provider batch
    params = message.anymail_test_params
    assert params["is_batch_send"] is True  # each recipient gets their own copy
    assert sorted(message.to) == sorted(s.email for s in subscribers)
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Id"].startswith("Paperboy daily digest <daily.")
    robotics = [day_batch.papers[n].pk for n in ("r1", "r2", "ra", "r3")]
    for s in subscribers:
        data = dict(params["merge_data"][s.email])
        assert data.pop("unsubscribe_url") == unsubscribe_url(s)
        assert data.pop("preferences_url") == preferences_url(s)
        # The rest: the start of this reader's own signed More/Less like this links.
        feedback = data.pop("feedback_url")
        # "View in browser": the reader's own view token; the footer: their own schedule.
        assert key_token_read(data.pop("view_token"), salt=SALT_VIEW) == str(s.key)
        assert data.pop("schedule") == "weekdays at 07:00 (UTC)"
        assert data == {}
        token = feedback.removeprefix("https://paperboy.example.org/f/").removesuffix("/")
        assert feedback_reader_token_read(token) == str(s.key)
        assert params["merge_headers"][s.email] == {"List-Unsubscribe": f"<{unsubscribe_url(s)}>"}
        assert unsubscribe_url(s).startswith("https://paperboy.example.org/")
        delivery = Delivery.objects.get(subscriber=s)
        assert params["merge_metadata"][s.email] == {"delivery": str(delivery.pk)}
    assert params["tags"] == ["daily-digest"]
    html = message.alternatives[0][0]
    assert "{{unsubscribe_url}}" in html and "{{preferences_url}}" in html
    assert "{{unsubscribe_url}}" in message.body
    for pid in robotics:  # each paper's two links: the reader's start, the paper and the vote
        for way in ("more", "less"):
            assert html.count(f'href="{{{{feedback_url}}}}{pid}/{way}"') == 1
            assert f"{{{{feedback_url}}}}{pid}/{way}\n" in message.body
    assert "https://paperboy.example.org/digests/2026-03-10/" in html  # the public archive
    view = 'href="https://paperboy.example.org/digests/2026-03-10/yours/{{view_token}}/"'
    assert html.count(view) == 2  # at the top and in the footer
    assert "You get this digest {{schedule}} because" in html
    assert message.subject == "Tue 10 Mar: Paper r1 + 3 more"
    because = f"You follow {t['robotics'].name}"
    assert escape(because) in html and f"[{because}]" in message.body


def test_it_groups_identical_contents_and_cuts_batches_to_the_provider_limit(day_batch, settings):
    settings.DIGEST_BATCH_SIZE = 500
    robotics = day_batch.topics["robotics"]
    subscribers = Subscriber.objects.bulk_create(
        SubscriberFactory.build(email=f"r{i}@example.org") for i in range(2501)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber=s, topic=robotics) for s in subscribers
    )
    agents_fan = SubscriberFactory(topics=[day_batch.topics["agents"]])

    issue = send_day(DAY)

    sizes = [len(m.to) for m in mail.outbox]
    assert max(sizes) == 500 and sum(sizes) == 2502
    assert len(sizes) <= 7  # six claims of at most 500, split once where the content changes
    assert len(set(sent_to())) == 2502 and agents_fan.email in sent_to()
    issue.refresh_from_db()
    assert (issue.recipient_count, issue.content_count) == (2502, 2)
    assert not Delivery.objects.exclude(status=Delivery.Status.SENT).exists()


def test_it_writes_delivery_rows_in_bulk_with_copy(day_batch, monkeypatch):
    require_postgres()
    monkeypatch.setattr(planning, "PLAN_CHUNK", 300)
    robotics = day_batch.topics["robotics"]
    subscribers = Subscriber.objects.bulk_create(
        SubscriberFactory.build(email=f"bulk{i}@example.org") for i in range(1000)
    )
    Subscriber.topics.through.objects.bulk_create(
        Subscriber.topics.through(subscriber=s, topic=robotics) for s in subscribers
    )
    # A process builds the topic model once (reading or keeping its vectors): built here
    # first, whichever test ran before, so what is counted is the plan's own statements.
    planning.batch_day(day_batch.batch)
    with CaptureQueriesContext(connection) as queries:
        issue = issue_create(batch=day_batch.batch)
    assert issue.deliveries.count() == 1000
    # The rows went in through COPY (which bypasses the ORM), not row-by-row INSERTs.
    assert not [q for q in queries if 'INSERT INTO "newsletter_delivery"' in q["sql"]]
    # Four chunks of readers, three statements each to move their contents in (the one
    # content they share is stored once); the rest does not grow with the readers.
    inserts = [q for q in queries if q["sql"].startswith("INSERT INTO newsletter_issuecontent")]
    assert len(inserts) == 4
    assert len(queries) - 3 * len(inserts) < 16, [q["sql"][:80] for q in queries]
    assert issue.contents.count() == issue.content_count == 1


def test_it_skips_subscribers_who_leave_while_the_issue_is_going_out(day_batch):
    t = day_batch.topics
    staying = SubscriberFactory(topics=[t["robotics"]])
    leaving = SubscriberFactory(topics=[t["robotics"]])
    pausing = SubscriberFactory(topics=[t["agents"]])
    issue = issue_create(batch=day_batch.batch)
    assert issue.deliveries.filter(status=Delivery.Status.PENDING).count() == 3

    subscriber_unsubscribe(subscriber=leaving)
    Subscriber.objects.filter(pk=pausing.pk).update(status=Subscriber.Status.PAUSED)
    start(issue)

    assert sent_to() == [staying.email]
    assert Delivery.objects.get(subscriber=leaving).status == Delivery.Status.SKIPPED


def test_it_skips_or_sends_the_top_papers_when_nothing_matches(day_batch, settings):
    lonely = SubscriberFactory(topics=[])
    issue = issue_create(batch=day_batch.batch)
    assert Delivery.objects.get(issue=issue, subscriber=lonely).status == Delivery.Status.SKIPPED

    settings.DIGEST_NO_MATCH = "top"
    batch = DailyBatchFactory(status=DailyBatch.Status.APPROVED)
    BatchEntryFactory(batch=batch, paper=day_batch.papers["v1"], rank=1)
    start(issue_create(batch=batch))
    assert sent_to() == [lonely.email]
    assert "Trending today" in mail.outbox[0].alternatives[0][0]


def test_it_never_repeats_a_paper_sent_in_an_earlier_digest(day_batch):
    robotics = day_batch.topics["robotics"]
    reader = SubscriberFactory(topics=[robotics])
    send_day(DAY)
    papers = day_batch.papers

    next_day = DailyBatchFactory(status=DailyBatch.Status.APPROVED)
    BatchEntryFactory(batch=next_day, paper=papers["r1"], rank=1)  # still trending
    fresh = BatchEntryFactory(batch=next_day, rank=2).paper
    tag(fresh, robotics)
    start(issue_create(batch=next_day))

    second = Delivery.objects.get(issue__batch=next_day, subscriber=reader)
    assert papers_of(second) == [fresh.pk]


def test_it_remembers_papers_sent_over_several_days_compactly(day_batch):
    robotics, vision = day_batch.topics["robotics"], day_batch.topics["vision"]
    both = [SubscriberFactory(topics=[robotics, vision]) for _ in range(2)]
    robotics_only = SubscriberFactory(topics=[robotics])
    send_day(DAY)  # r1 to all three, v1 to the first two
    r1, v1 = day_batch.papers["r1"], day_batch.papers["v1"]
    # Dates of their own: the factory's date sequence reaches DAY after enough batches in one
    # run, and get_or_create would then hand back the fixture's batch.
    yesterday = DailyBatchFactory(
        date=DAY + dt.timedelta(days=1), status=DailyBatch.Status.APPROVED
    )
    new = BatchEntryFactory(batch=yesterday, rank=1).paper
    tag(new, robotics)
    start(issue_create(batch=yesterday))  # the new paper to all three
    today = DailyBatchFactory(date=DAY + dt.timedelta(days=2), status=DailyBatch.Status.APPROVED)
    for rank, paper in enumerate([r1, v1, new], 1):
        BatchEntryFactory(batch=today, paper=paper, rank=rank)
    today_ids = [r1.pk, v1.pk, new.pk]

    sent = papers_already_sent(today, today_ids)

    assert sent == {
        both[0].pk: {r1.pk, v1.pk, new.pk},
        both[1].pk: {r1.pk, v1.pk, new.pk},
        robotics_only.pk: {r1.pk, new.pk},
    }
    assert sent[both[0].pk] is sent[both[1].pk]  # one set for everyone with the same papers
    only_one = papers_already_sent(today, today_ids, subscriber_id=robotics_only.pk)
    assert only_one == {robotics_only.pk: {r1.pk, new.pk}}


def test_it_does_not_send_a_batch_that_is_not_approved(day_batch):
    DailyBatch.objects.filter(pk=day_batch.batch.pk).update(status=DailyBatch.Status.DRAFT)
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    assert send_day(DAY) is None
    assert mail.outbox == [] and not Issue.objects.exists()


def test_it_leaves_hidden_papers_out_and_pinned_papers_first(day_batch):
    from digests.models import BatchEntry

    batch = day_batch.batch
    BatchEntry.objects.filter(batch=batch, paper=day_batch.papers["r1"]).update(hidden=True)
    BatchEntry.objects.filter(batch=batch, paper=day_batch.papers["r3"]).update(pinned=True)
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    send_day(DAY)
    delivery = Delivery.objects.get(subscriber=reader)
    names = {p.pk: n for n, p in day_batch.papers.items()}
    assert [names[pid] for pid in papers_of(delivery)] == ["r3", "r2", "ra"]


def test_it_previews_byte_for_byte_what_the_subscriber_receives(day_batch, settings):
    from newsletter.services.previews import digest_preview

    settings.EMAIL_BACKEND = "config.outbox.OutboxEmailBackend"
    reader = SubscriberFactory(topics=[day_batch.topics["agents"]])
    # Frozen: feedback links carry the second they were signed in, preview and send alike.
    with time_machine.travel(timezone.now(), tick=False):
        preview = digest_preview(batch=day_batch.batch, subscriber=reader)
        send_day(DAY)

    import email
    from email.policy import default as policy

    [path] = settings.EMAIL_OUTBOX_DIR.glob("*.eml")
    received = email.message_from_bytes(path.read_bytes(), policy=policy)

    # .eml files use CRLF line ends (MIME); the content is otherwise the same bytes.
    def lf(text):
        return text.replace("\r\n", "\n")

    assert lf(received.get_body(("html",)).get_content()) == preview.html
    assert lf(received.get_body(("plain",)).get_content()) == preview.text
    assert received["Subject"] == preview.subject
    assert received["List-Unsubscribe"].strip() == preview.headers["List-Unsubscribe"]
    assert unsubscribe_url(reader) in preview.html


def test_its_plan_keys_contents_as_the_ranking_does():
    import json

    from newsletter.ranking import content_key
    from newsletter.services.planning import content_key_of_text

    for selection in ([[1, []]], [[7, ["topic", 3]], [2, ["liked", 9, "Caf\u00e9 \u201cx\u201d"]]]):
        assert content_key_of_text(json.dumps(selection)) == content_key(selection)
