from __future__ import annotations

import pytest

from config.demo import DEMO_STEPS, DEMO_SUBSCRIBERS, step_subscribers
from subscriptions.models import Subscriber
from subscriptions.selectors import subscribers_sendable
from tests.subscriptions.conftest import without_seeded_topics

pytestmark = pytest.mark.django_db


def test_it_is_a_demo_step():
    assert step_subscribers in DEMO_STEPS


def test_it_skips_without_topics():
    without_seeded_topics()
    lines: list[str] = []
    step_subscribers(lines.append)
    assert len(lines) == 1 and "no active topics" in lines[0]
    assert not Subscriber.objects.exists()


def test_it_creates_active_subscribers_once(topics):
    lines: list[str] = []
    step_subscribers(lines.append)
    step_subscribers(lines.append)
    assert subscribers_sendable().count() == len(DEMO_SUBSCRIBERS)
    assert all(s.topics.exists() for s in Subscriber.objects.all())
    assert "(3 new)" in lines[0] and "(0 new)" in lines[1]
    assert len(lines) == 2
    assert "/p/" in lines[0]  # a preferences link to try


def test_it_leaves_a_sent_example_and_a_draft_waiting_for_review(
    topics, settings, tmp_path, django_capture_on_commit_callbacks
):
    import datetime as dt

    import time_machine

    from config.demo import demo_bootstrap
    from config.outbox import outbox_list
    from digests.models import DailyBatch
    from newsletter.models import Issue

    settings.PAPERBOY_VAR_DIR = tmp_path
    settings.EMAIL_BACKEND = "config.outbox.OutboxEmailBackend"
    settings.EMAIL_OUTBOX_DIR = tmp_path / "outbox"
    settings.DIGEST_AUTO_APPROVE = False
    settings.SENDER_POSTAL_ADDRESS = "Paperboy Ltd; 1 Main Street; Springfield"
    said: list[str] = []
    with time_machine.travel(dt.datetime(2026, 6, 2, 9, 0, tzinfo=dt.UTC)):
        with django_capture_on_commit_callbacks(execute=True):
            demo_bootstrap(said.append)
        with django_capture_on_commit_callbacks(execute=True):
            demo_bootstrap(said.append)  # a second start sends nothing more
    sent = DailyBatch.objects.get(date=dt.date(2026, 6, 1))
    draft = DailyBatch.objects.get(date=dt.date(2026, 6, 2))
    assert sent.status == DailyBatch.Status.SENT
    assert draft.status == DailyBatch.Status.DRAFT and draft.entry_count == 37
    assert Issue.objects.get().batch == sent
    # Today's draft holds other papers than the ones just sent, so it has news for everyone.
    sent_ids = set(sent.entries.values_list("paper_id", flat=True))
    assert sent_ids and not sent_ids & set(draft.entries.values_list("paper_id", flat=True))
    messages = outbox_list()
    # Each demo subscriber whose topics match one of the example's papers got it.
    assert 1 <= len(messages) == Issue.objects.get().deliveries.filter(status="sent").count()
    for message in messages:  # every digest's footer carries the sender's postal address
        assert "Paperboy Ltd, 1 Main Street, Springfield" in message.body("plain")
        assert "Paperboy Ltd, 1 Main Street, Springfield" in message.body("html")
    assert any("draft waiting for review" in line for line in said)
    assert sum("(sent now)" in line for line in said) == 1


def test_it_welcomes_with_the_served_address_logins_outbox_and_how_to_stop(settings, tmp_path):
    from django.core.management import call_command

    from config.demo import step_admin

    settings.PAPERBOY_VAR_DIR = tmp_path
    settings.SITE_URL = "http://127.0.0.1:8101"
    settings.EMAIL_BACKEND = "config.outbox.OutboxEmailBackend"
    step_admin(lambda line: None)
    from io import StringIO

    out = StringIO()
    call_command(
        "demo_welcome", "--served", "http://127.0.0.1:8101/", "--logs", "var/log", stdout=out
    )
    text = out.getvalue()
    assert "Paperboy is running at http://127.0.0.1:8101/" in text
    assert "http://127.0.0.1:8101/admin/  user: admin  password: " in text
    assert "http://127.0.0.1:8101/outbox/" in text
    assert "Ctrl-C" in text and "var/log" in text
    assert "Links in email" not in text  # SITE_URL is the served address

    settings.SITE_URL = "https://paperboy.example.org"
    out = StringIO()
    call_command("demo_welcome", "--served", "http://127.0.0.1:8101/", stdout=out)
    assert "Links in email:" in out.getvalue() and "https://paperboy.example.org/" in out.getvalue()
