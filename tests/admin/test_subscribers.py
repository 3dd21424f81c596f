"""Subscribers as an editor: search, filters, CSV import and export, resend, unsubscribe, erase."""

from __future__ import annotations

import csv
import io

import pytest
from bs4 import BeautifulSoup
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from digests.models import Topic
from subscriptions.models import ConsentRecord, Subscriber, Suppression
from subscriptions.services import subscriber_erase, subscriber_suppress, subscriber_unsubscribe
from tests.admin.conftest import logged
from tests.factories import SubscriberFactory, TopicFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/subscriptions/subscriber/"
IMPORT = "/admin/subscriptions/subscriber/import/"


@pytest.fixture
def topics(db):
    return {slug: TopicFactory(name=f"Topic {slug}", slug=slug) for slug in ("llm", "cv")}


def upload(client, text: str, **fields):
    data = {"file": SimpleUploadedFile("people.csv", text.encode(), "text/csv"), **fields}
    return client.post(IMPORT, data)


def test_it_searches_and_filters(editor_client, topics):
    SubscriberFactory(email="ada@example.org", topics=[topics["llm"]])
    SubscriberFactory(email="alan@example.org", topics=[topics["cv"]], pending=True)

    def emails(**params):
        page = editor_client.get(LIST, params)
        assert page.status_code == 200
        return sorted(s.email for s in page.context["cl"].result_list)

    assert emails(q="ada") == ["ada@example.org"]
    assert emails(status__exact="pending") == ["alan@example.org"]
    assert emails(topics__id__exact=topics["llm"].pk) == ["ada@example.org"]
    assert emails(created_at__gte="2000-01-01 00:00:00+00:00") == [
        "ada@example.org",
        "alan@example.org",
    ]
    assert emails(created_at__lt="2000-01-01 00:00:00+00:00") == []


def test_its_import_with_confirmation_mails_each_new_address(
    editor_client, editor, topics, on_commit
):
    SubscriberFactory(email="known@example.org", topics=[topics["cv"]])
    text = (
        "email,topics\n"
        "new@example.org,llm\n"
        "other@EXAMPLE.org,\n"
        "known@example.org,llm\n"
        "not-an-address,\n"
    )
    with on_commit():
        page = upload(editor_client, text, topics=[topics["cv"].pk], mode="confirm")

    assert page.status_code == 200
    assert page.context["report"].summary() == (
        "2 added, 1 already subscribed (left as they were), 0 suppressed (not added), 1 invalid"
    )
    new = Subscriber.objects.get(email="new@example.org")
    other = Subscriber.objects.get(email="other@example.org")
    assert (new.status, other.status) == ("pending", "pending")
    assert list(new.topics.all()) == [topics["llm"]] and list(other.topics.all()) == [topics["cv"]]
    assert sorted(m.to[0] for m in mail.outbox) == ["new@example.org", "other@example.org"]
    assert all("/confirm/" in m.body for m in mail.outbox)
    consent = new.consents.get()
    assert (consent.source, consent.confirmed_at) == (ConsentRecord.Source.IMPORT, None)
    known = Subscriber.objects.get(email="known@example.org")
    assert list(known.topics.all()) == [topics["cv"]]  # left alone
    assert logged(editor, new) == ["Imported from CSV: confirmation email sent"]


def test_its_import_with_recorded_consent_activates_and_keeps_the_source(
    editor_client, topics, on_commit
):
    with on_commit():
        refused = upload(
            editor_client, "email\nx@example.org\n", topics=[topics["llm"].pk], mode="consented"
        )
    assert "consent_note" in refused.context["form"].errors
    assert not Subscriber.objects.exists()

    with on_commit():
        upload(
            editor_client,
            "email\nx@example.org\n",
            topics=[topics["llm"].pk],
            mode="consented",
            consent_note="Reading group signup sheet, 2026-11-20",
        )
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "active" and subscriber.confirmed_at is not None
    consent = subscriber.consents.get()
    assert consent.source == ConsentRecord.Source.IMPORT
    assert consent.note == "Reading group signup sheet, 2026-11-20"
    assert mail.outbox == []


@pytest.mark.parametrize("mode", ["confirm", "consented"])
@pytest.mark.parametrize("how", ["unsubscribed", "erased", "bounced", "complained"])
def test_its_import_never_reactivates_a_suppressed_address(
    editor_client, topics, on_commit, mode, how
):
    person = SubscriberFactory(email="gone@example.org", topics=[topics["llm"]])
    if how == "unsubscribed":
        subscriber_unsubscribe(subscriber=person)
    elif how == "erased":
        subscriber_erase(subscriber=person)
    else:
        subscriber_unsubscribe(subscriber=person)
        subscriber_suppress(email=person.email, reason=how)
    with on_commit():
        page = upload(
            editor_client,
            "email\nGone@Example.org\n",
            topics=[topics["llm"].pk],
            mode=mode,
            consent_note="a list",
        )
    assert page.context["report"].suppressed == ["Gone@Example.org"]
    assert not Subscriber.objects.filter(status__in=["active", "pending"]).exists()
    assert mail.outbox == []


def test_it_exports_csv_that_imports_back(editor_client, editor, topics, on_commit):
    SubscriberFactory(email="ada@example.org", topics=[topics["llm"], topics["cv"]])
    SubscriberFactory(email="=cmd@example.org", topics=[topics["cv"]])
    ids = list(Subscriber.objects.values_list("pk", flat=True))
    response = editor_client.post(LIST, {"action": "export_csv", "_selected_action": ids})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_email = {r["email"]: r for r in rows}
    assert set(by_email) == {"ada@example.org", "'=cmd@example.org"}  # no spreadsheet formula
    assert sorted(by_email["ada@example.org"]["topics"].split("; ")) == ["cv", "llm"]
    assert by_email["ada@example.org"]["status"] == "active"
    assert LogEntry.objects.filter(user=editor, change_message="Exported to CSV").count() == 2

    # Into an empty list, the export brings the same people and topics back.
    Subscriber.objects.filter(email="ada@example.org").delete()
    with on_commit():
        upload(editor_client, response.content.decode(), mode="consented", consent_note="export")
    ada = Subscriber.objects.get(email="ada@example.org")
    assert sorted(t.slug for t in ada.topics.all()) == ["cv", "llm"]


def test_its_import_takes_topic_names_or_slugs_and_lists_them(editor_client, topics, on_commit):
    page = editor_client.get(IMPORT)
    listed = BeautifulSoup(page.content.decode(), "html.parser").select("#import-topics tbody tr")
    rows = [[td.get_text() for td in tr.find_all("td")] for tr in listed]
    assert ["Topic cv", "cv"] in rows and ["Topic llm", "llm"] in rows
    assert len(rows) == Topic.objects.filter(is_active=True).count()
    text = (
        "email,topics\n"
        "names@example.org,Topic LLM; topic cv\n"
        "slugs@example.org,llm;CV\n"
        "old@example.org,llm cv\n"
        'mixed@example.org,"Topic llm, cv"\n'
        "typo@example.org,Topic llm; Robots\n"
    )
    with on_commit():
        page = upload(editor_client, text, mode="consented", consent_note="conference list")
    report = page.context["report"]
    assert report.invalid == [
        (6, "typo@example.org", "unknown topic Robots (the import page lists them)")
    ]
    for email in ("names@example.org", "slugs@example.org", "old@example.org", "mixed@example.org"):
        person = Subscriber.objects.get(email=email)
        assert sorted(t.slug for t in person.topics.all()) == ["cv", "llm"], email
    assert not Subscriber.objects.filter(email="typo@example.org").exists()
    assert "Invalid rows" in page.content.decode()


def test_it_resends_confirmation_to_pending_only(editor_client, editor, topics, on_commit):
    pending = SubscriberFactory(email="p@example.org", pending=True)
    active = SubscriberFactory(email="a@example.org")
    with on_commit():
        editor_client.post(
            LIST, {"action": "resend_confirmation", "_selected_action": [pending.pk, active.pk]}
        )
    assert [m.to for m in mail.outbox] == [["p@example.org"]]
    assert logged(editor, pending) == ["Asked to resend the confirmation email"]


def test_it_unsubscribes_and_logs(editor_client, editor):
    subscriber = SubscriberFactory()
    editor_client.post(LIST, {"action": "unsubscribe", "_selected_action": [subscriber.pk]})
    subscriber.refresh_from_db()
    assert subscriber.status == "unsubscribed"
    assert Suppression.objects.get().reason == "unsubscribed"
    assert logged(editor, subscriber) == ["Unsubscribed"]


def test_it_erases_and_the_log_keeps_no_address(editor_client, editor):
    subscriber = SubscriberFactory(email="private@example.org")
    editor_client.post(LIST, {"action": "unsubscribe", "_selected_action": [subscriber.pk]})
    response = editor_client.post(LIST, {"action": "erase", "_selected_action": [subscriber.pk]})

    assert response.status_code == 302
    assert not Subscriber.objects.exists()
    assert Suppression.objects.get().reason == "erased"
    entries = LogEntry.objects.filter(user=editor)
    assert [e.get_change_message() for e in entries.order_by("pk")] == [
        "Unsubscribed",
        "Erased (hashed suppression kept)",
    ]
    assert not any("private" in e.object_repr for e in entries)
