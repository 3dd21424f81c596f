"""Lifecycle mail: the welcome after confirming, "Email me my link", and change of address."""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from subscriptions import address_change, services
from subscriptions.emails import email_build
from subscriptions.links import preferences_url
from subscriptions.models import ConsentRecord, Subscriber, Suppression
from subscriptions.tasks import send_form_email
from tests.factories import SubscriberFactory
from tests.subscriptions.helpers import link_in, path_of

pytestmark = pytest.mark.django_db


def _confirm(client, signup, email: str, **extra):
    signup(email, **extra)
    confirm = path_of(link_in(mail.outbox[-1]))
    mail.outbox.clear()
    return confirm


# --- Welcome --------------------------------------------------------------------------------


@time_machine.travel(datetime(2026, 12, 2, 22, 0, tzinfo=UTC), tick=False)  # a Wednesday
def test_it_welcomes_once_with_the_readers_own_schedule(
    client, signup, topics, django_capture_on_commit_callbacks
):
    confirm = _confirm(
        client, signup, "reader@example.org", chosen=topics[:2], time_zone="Europe/Paris"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(confirm).status_code == 200
    [welcome] = mail.outbox
    assert welcome.to == ["reader@example.org"]
    assert welcome.subject == (
        "Welcome to Paperboy: your digest comes weekdays at 07:00 (Europe/Paris)"
    )
    body = welcome.body
    # 07:00 in Paris on Thursday 3 December, the first weekday slot after 23:00 local.
    assert (
        "When: weekdays at 07:00 (Europe/Paris). Your first digest is due on "
        "Thursday 3 December at 07:00 (Europe/Paris)." in body
    )
    assert "Topics: Language models, Computer vision" in body
    assert "up to 10 papers an email, the day's trending papers ranked for you." in body
    subscriber = Subscriber.objects.get()
    assert preferences_url(subscriber) in body
    [(html, _)] = welcome.alternatives
    assert preferences_url(subscriber) in html and "Computer vision" in html

    # A second click, and the task run again (a redelivered message): no second welcome.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm)
    send_form_email.delay(subscriber.pk, services.FORM_EMAIL_WELCOME)
    assert len(mail.outbox) == 1
    assert subscriber.consents.get().welcomed_at is not None
    [consent] = services.subscriber_export(subscriber=subscriber)["consent_records"]
    assert consent["welcome_email_at"] == "2026-12-02T22:00:00+00:00"


@time_machine.travel(datetime(2026, 12, 2, 22, 0, tzinfo=UTC), tick=False)  # a Wednesday
def test_a_weekly_readers_welcome_says_the_week_and_its_day():
    reader = SubscriberFactory(
        frequency="weekly", weekday=0, time_zone="Asia/Tokyo", delivery_hour=8, papers_per_email=5
    )
    reader.next_due_at = None  # the welcome works out the first slot itself
    welcome = email_build(
        services.FORM_EMAIL_WELCOME, to=reader.email, context=services.welcome_context(reader)
    )
    assert "When: weekly on Mondays at 08:00 (Asia/Tokyo)." in welcome.body
    assert "due on Monday 7 December at 08:00 (Asia/Tokyo)" in welcome.body
    assert (
        "up to 5 papers an email, the best of the week's trending papers for you, none you "
        "already had." in welcome.body
    )


def test_it_welcomes_again_after_coming_back(client, signup, django_capture_on_commit_callbacks):
    confirm = _confirm(client, signup, "reader@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm)
    subscriber = Subscriber.objects.get()
    services.subscriber_unsubscribe(subscriber=subscriber)
    mail.outbox.clear()
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        confirm = _confirm(client, signup, "reader@example.org")
        with django_capture_on_commit_callbacks(execute=True):
            client.post(confirm)
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Welcome to Paperboy"]
    assert ConsentRecord.objects.filter(welcomed_at__isnull=False).count() == 2


def test_it_gives_the_welcome_back_when_the_provider_refuses_it(signup, client, settings):
    confirm = _confirm(client, signup, "reader@example.org")
    client.post(confirm)  # on-commit callbacks not run: the welcome is not sent yet
    subscriber = Subscriber.objects.get()
    settings.EMAIL_BACKEND = "tests.subscriptions.test_lifecycle.RefusingBackend"
    with pytest.raises(ConnectionRefusedError):
        services.subscriber_form_email_send(
            subscriber_id=subscriber.pk, kind=services.FORM_EMAIL_WELCOME
        )
    assert subscriber.consents.get().welcomed_at is None  # so a retry sends it
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert services.subscriber_form_email_send(
        subscriber_id=subscriber.pk, kind=services.FORM_EMAIL_WELCOME
    )
    assert len(mail.outbox) == 1


class RefusingBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("provider down")


def test_the_confirmation_email_states_the_schedule(signup):
    signup("reader@example.org", time_zone="Asia/Tokyo")
    [message] = mail.outbox
    assert "weekdays at 07:00 (Asia/Tokyo)" in message.body
    assert "Daily or weekly, the hour and the time zone are yours to change." in message.body


def test_the_landing_page_states_the_schedule_and_links_to_my_link(client, topics):
    body = client.get("/").content.decode()
    assert "every weekday, every day, or once a week" in body
    assert "at the hour\nyou pick in your own time zone" in body
    assert 'href="/link/">Email me my link</a>' in body


# --- "Email me my link" ----------------------------------------------------------------------


def _link_post(email: str, *, client=None, **extra):
    return (client or Client()).post("/link/", {"email": email, "website": ""}, **extra)


def _state(state: str, email: str) -> None:
    if state in ("unknown",):
        return
    if state == "erased":
        services.subscriber_erase(subscriber=SubscriberFactory(email=email))
        return
    if state == "bounced":
        SubscriberFactory(email=email)
        services.subscriber_suppress(email=email, reason="bounced")
        return
    status = {
        "active": Subscriber.Status.ACTIVE,
        "paused": Subscriber.Status.PAUSED,
        "pending": Subscriber.Status.PENDING,
        "unsubscribed": Subscriber.Status.UNSUBSCRIBED,
    }[state]
    SubscriberFactory(email=email, status=status, consent=status != Subscriber.Status.PENDING)
    if status == Subscriber.Status.PENDING:
        ConsentRecord.objects.create(
            subscriber=Subscriber.objects.get(email=email),
            requested_at=timezone.now(),
            form_version="2026-05",
        )


def test_it_answers_my_link_identically_for_every_address_state(
    django_capture_on_commit_callbacks, settings
):
    from subscriptions.consent import CONSENT_VERSION

    states = ["active", "paused", "pending", "unsubscribed", "unknown", "erased", "bounced"]
    answers = []
    for state in states:
        _state(state, f"{state}@example.org")
        ConsentRecord.objects.filter(form_version="2026-05").update(form_version=CONSENT_VERSION)
        with django_capture_on_commit_callbacks(execute=True):
            response = _link_post(f"{state}@example.org")
        answers.append((response.status_code, sorted(response.items()), response.content))
    assert answers[0][0] == 200
    assert b"If this address has a Paperboy subscription" in answers[0][2]
    assert all(answer == answers[0] for answer in answers), "answers differ between states"
    # Behind the same answer: the link to those who have one, a confirmation to the pending.
    sent = {m.to[0]: m.subject for m in mail.outbox}
    assert sent == {
        "active@example.org": "Your Paperboy preferences link",
        "paused@example.org": "Your Paperboy preferences link",
        "unsubscribed@example.org": "Your Paperboy preferences link",
        "pending@example.org": "Confirm your Paperboy subscription",
    }
    active = Subscriber.objects.get(email="active@example.org")
    assert preferences_url(active) in mail.outbox[0].body


def test_my_link_sends_at_most_one_email_an_hour(django_capture_on_commit_callbacks, signup):
    SubscriberFactory(email="reader@example.org")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(5):
            with django_capture_on_commit_callbacks(execute=True):
                assert _link_post("reader@example.org").status_code == 200
        signup("reader@example.org")  # the signup form shares the interval
        assert len(mail.outbox) == 1
        clock.shift(timedelta(hours=1, seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            _link_post("reader@example.org")
    assert len(mail.outbox) == 2


def test_my_link_is_rate_limited_per_ip(settings):
    settings.SIGNUP_RATE_LIMIT = 2
    for i in range(2):
        assert _link_post(f"r{i}@example.org", REMOTE_ADDR="198.51.100.7").status_code == 200
    limited = _link_post("r9@example.org", REMOTE_ADDR="198.51.100.7")
    assert limited.status_code == 429
    assert limited["Retry-After"] == str(settings.SIGNUP_RATE_WINDOW_SECONDS)
    assert _link_post("r9@example.org", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_my_link_refuses_a_malformed_address_and_ignores_the_honeypot(client):
    SubscriberFactory(email="reader@example.org")
    bad = client.post("/link/", {"email": "not an address", "website": ""})
    assert bad.status_code == 400
    assert b"Enter a valid email address." in bad.content
    bot = client.post("/link/", {"email": "reader@example.org", "website": "spam"})
    assert bot.status_code == 200 and b"Check your inbox" in bot.content
    assert mail.outbox == []


def test_broken_and_expired_links_point_to_my_link(client, signup, settings):
    assert b'href="/link/"' in client.get("/p/nonsense/").content
    signup("reader@example.org")
    confirm = path_of(link_in(mail.outbox[0]))
    with time_machine.travel(
        timezone.now() + timedelta(days=settings.CONFIRM_LINK_MAX_AGE_DAYS + 1)
    ):
        expired = client.get(confirm)
    assert expired.status_code == 410 and b'href="/link/"' in expired.content


# --- Change of address -------------------------------------------------------------------------


def _pref_path(subscriber) -> str:
    return path_of(preferences_url(subscriber))


def _ask(client, subscriber, new_email, capture, **extra):
    with capture(execute=True):
        return client.post(_pref_path(subscriber) + "address", {"new_email": new_email}, **extra)


def test_it_changes_the_address_once_the_new_one_confirms(
    client, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(email="old@example.org")
    asked = _ask(client, subscriber, "New@Example.net", django_capture_on_commit_callbacks)
    assert asked.status_code == 302
    page = client.get(asked["Location"]).content.decode()
    assert "We sent a link to new@example.net. Your digests go to old@example.org" in page

    [message] = mail.outbox
    assert message.to == ["new@example.net"]
    assert message.subject == "Confirm your new address for Paperboy"
    link = path_of(link_in(message, r"https?://\S+/address/\S+/"))
    subscriber.refresh_from_db()
    assert subscriber.email == "old@example.org"  # the old one works until confirmed

    shown = client.get(link)  # a mail scanner's GET changes nothing
    assert shown.status_code == 200 and b"new@example.net" in shown.content
    subscriber.refresh_from_db()
    assert subscriber.email == "old@example.org"

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(link)
    assert done.status_code == 200 and b"Your address is changed" in done.content
    subscriber.refresh_from_db()
    assert subscriber.email == "new@example.net"
    assert Subscriber.objects.filter(email_hash=subscriber.email_hash).count() == 1
    [notice] = mail.outbox
    assert notice.to == ["old@example.org"]
    assert notice.subject == "Your Paperboy address was changed"
    assert "now go to new@example.net" in notice.body

    # A second click is fine; and an older link of the old address no longer works.
    assert client.post(link).status_code == 200
    assert len(mail.outbox) == 1


def test_a_link_of_the_old_address_stops_working_after_a_change(
    client, django_capture_on_commit_callbacks, settings
):
    settings.SIGNUP_EMAIL_INTERVAL_SECONDS = 1
    subscriber = SubscriberFactory(email="old@example.org")
    _ask(client, subscriber, "first@example.net", django_capture_on_commit_callbacks)
    _ask(client, subscriber, "second@example.net", django_capture_on_commit_callbacks)
    first, second = (path_of(link_in(m, r"https?://\S+/address/\S+/")) for m in mail.outbox)
    assert client.post(second).status_code == 200
    stale = client.post(first)
    assert stale.status_code == 409 and b"no longer valid" in stale.content
    subscriber.refresh_from_db()
    assert subscriber.email == "second@example.net"


def test_it_answers_the_same_for_a_taken_or_suppressed_new_address(
    client, django_capture_on_commit_callbacks, topics
):
    SubscriberFactory(email="taken@example.net")
    services.subscriber_suppress(email="bounced@example.net", reason="bounced")
    answers = {}
    for new in ("free@example.net", "taken@example.net", "bounced@example.net"):
        subscriber = SubscriberFactory(
            email=f"from-{new.split('@')[0]}@example.org", topics=topics[:1]
        )
        fresh = Client()
        asked = _ask(fresh, subscriber, new, django_capture_on_commit_callbacks)
        page = fresh.get(asked["Location"])
        assert b"We sent a link to" in page.content
        text = re.sub(r"\S+@example\.\w+", "ADDRESS", page.content.decode())
        text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
        text = re.sub(r"/p/[^/]+/", "/p/TOKEN/", text)
        answers[new] = (asked.status_code, text)
    first = answers["free@example.net"][1].splitlines()
    for new, (_, text) in answers.items():
        diff = [d for d in difflib.unified_diff(first, text.splitlines(), lineterm="", n=0)]
        assert not diff, f"the preference center told {new} apart: {diff}"
    assert len(set(answers.values())) == 1
    # Behind it: a link to the free address, a note to the subscribed one, nothing to the other.
    assert {m.to[0]: m.subject for m in mail.outbox} == {
        "free@example.net": "Confirm your new address for Paperboy",
        "taken@example.net": "This address already has a Paperboy subscription",
    }
    assert "/address/" not in mail.outbox[1].body


def test_it_refuses_at_confirmation_an_address_taken_or_blocked_meanwhile(
    client, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(email="old@example.org")
    _ask(client, subscriber, "new@example.net", django_capture_on_commit_callbacks)
    link = path_of(link_in(mail.outbox[0], r"https?://\S+/address/\S+/"))
    SubscriberFactory(email="new@example.net", status=Subscriber.Status.PENDING)
    taken = client.post(link)
    assert taken.status_code == 409 and b"has a subscription of its own" in taken.content
    Subscriber.objects.filter(email="new@example.net").delete()
    services.subscriber_suppress(email="new@example.net", reason="complained")
    blocked = client.post(link)
    assert blocked.status_code == 409 and b"cannot send to this address" in blocked.content
    subscriber.refresh_from_db()
    assert subscriber.email == "old@example.org"


def test_confirming_lifts_an_unsubscribed_suppression_of_the_new_address(
    client, django_capture_on_commit_callbacks
):
    gone = SubscriberFactory(email="new@example.net")
    services.subscriber_erase(subscriber=gone)
    subscriber = SubscriberFactory(email="old@example.org")
    _ask(client, subscriber, "new@example.net", django_capture_on_commit_callbacks)
    link = path_of(link_in(mail.outbox[0], r"https?://\S+/address/\S+/"))
    assert client.post(link).status_code == 200
    assert not Suppression.objects.filter(email_hash=Subscriber.objects.get().email_hash).exists()


def test_change_of_address_refuses_bad_input_with_a_form_error(
    client, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(email="old@example.org")
    bad = _ask(client, subscriber, "nope", django_capture_on_commit_callbacks)
    assert bad.status_code == 400 and b"Enter a valid email address." in bad.content
    same = _ask(client, subscriber, "OLD@example.org", django_capture_on_commit_callbacks)
    assert same.status_code == 400 and b"That is already your address." in same.content
    assert mail.outbox == []


def test_change_of_address_sends_one_mail_per_new_address_an_hour(
    client, django_capture_on_commit_callbacks
):
    subscriber = SubscriberFactory(email="old@example.org")
    for _ in range(3):
        assert (
            _ask(
                client, subscriber, "new@example.net", django_capture_on_commit_callbacks
            ).status_code
            == 302
        )
    assert len(mail.outbox) == 1


def test_change_links_expire_and_are_checked(client, django_capture_on_commit_callbacks, settings):
    subscriber = SubscriberFactory(email="old@example.org")
    _ask(client, subscriber, "new@example.net", django_capture_on_commit_callbacks)
    link = path_of(link_in(mail.outbox[0], r"https?://\S+/address/\S+/"))
    assert client.post(link[:-5] + "xxxx/").status_code == 400
    later = timezone.now() + timedelta(days=settings.CONFIRM_LINK_MAX_AGE_DAYS + 1)
    with time_machine.travel(later):
        assert client.post(link).status_code == 410
    subscriber.refresh_from_db()
    assert subscriber.email == "old@example.org"
    assert address_change.ADDRESS_CONFIRM in address_change.KINDS
