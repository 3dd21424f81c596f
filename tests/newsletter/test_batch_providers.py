"""ANYMAIL_ESP=mailgun and sendgrid: Paperboy's backends for them (Anymail's, newsletter/
mailgun.py and newsletter/sendgrid.py) over HTTP against devtools/fakes/{mailgun,sendgrid}.py.

Both merge on their side: one call carries a content's body once and each reader's links
beside it; the fakes expand each reader's copy as the provider documents it, and every copy
must be exactly what the preview shows that reader.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from devtools.fakes import mailgun, sendgrid
from digests.models import Paper
from newsletter.models import Delivery, Issue
from newsletter.services.previews import digest_preview
from newsletter.services.sending import (
    ClaimUnsettled,
    TransientSendError,
    deliveries_send_chunk,
    deliveries_sweep,
)
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@dataclass
class Provider:
    """A fake, and where each filled copy keeps what the tests compare."""

    name: str
    fake: object

    @property
    def state(self):
        return self.fake.state

    def html(self, copy: dict) -> str:
        return copy["html"] if self.name == "mailgun" else copy["content"]["text/html"]

    def text(self, copy: dict) -> str:
        return copy["text"] if self.name == "mailgun" else copy["content"]["text/plain"]

    def header(self, copy: dict, name: str) -> str:
        return copy[f"h:{name}"] if self.name == "mailgun" else copy["headers"][name]

    def metadata(self, copy: dict, key: str) -> str:
        return copy[f"v:{key}"] if self.name == "mailgun" else copy["custom_args"][key]

    def message_id(self, copy: dict) -> str:
        # Mailgun answers one id for the call; Anymail gives each SendGrid personalization an
        # id of its own (custom_args "anymail_id"), which tracking events carry back.
        return copy["_id"] if self.name == "mailgun" else copy["custom_args"]["anymail_id"]


@pytest.fixture(params=["mailgun", "sendgrid"])
def provider(request, settings):
    name = request.param
    fake_class = mailgun.FakeMailgun if name == "mailgun" else sendgrid.FakeSendGrid
    with fake_class() as fake:
        settings.ANYMAIL_ESP = name
        settings.EMAIL_BACKEND = {
            "mailgun": "newsletter.mailgun.MailgunLeanEmailBackend",
            "sendgrid": "newsletter.sendgrid.SendGridEmailBackend",
        }[name]
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            f"{name.upper()}_API_KEY": fake.state.api_key,
            f"{name.upper()}_API_URL": fake.url,
        }
        settings.SITE_URL = "https://paperboy.example.org"
        yield Provider(name, fake)


def test_each_reader_gets_their_own_filled_copy_from_one_call(provider, day_batch, sending):
    robotics, agents = day_batch.topics["robotics"], day_batch.topics["agents"]
    readers = [SubscriberFactory(topics=[robotics]) for _ in range(3)]
    readers.append(SubscriberFactory(topics=[agents]))
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 4

        # One call per distinct content: the three robotics readers share one.
        assert issue.contents.count() == 2
        assert provider.state.stats()["http_calls"] == 2
        by_to = {c["to"]: c for c in provider.state.copies}
        assert sorted(by_to) == sorted(r.email for r in readers)
        for reader in readers:
            copy = by_to[reader.email]
            assert provider.header(copy, "List-Unsubscribe") == f"<{unsubscribe_url(reader)}>"
            delivery = Delivery.objects.get(subscriber=reader)
            assert provider.metadata(copy, "delivery") == str(delivery.pk)
            assert delivery.status == Delivery.Status.SENT
            assert delivery.provider_message_id == provider.message_id(copy)
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert provider.html(copy) == preview.html
            assert provider.text(copy) == preview.text
            assert copy["subject"] == preview.subject
            assert "%recipient" not in provider.html(copy) and "{{" not in provider.html(copy)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_template_syntax_in_a_paper_reaches_the_reader_as_written(provider, day_batch, sending):
    # Neither has a template language: only their own fields are replaced, so braces and
    # percent signs pass as they are, and the copy is still the preview.
    title = "Sets {{x}} and {{{y}}}: {%raw%} 50%} {#c#} }} %recipient%"
    Paper.objects.filter(pk=day_batch.papers["r1"].pk).update(
        title=title, abstract=r"$\frac{{a}}{b}$ {{ y|safe }} {% if x %}", ai_summary=""
    )
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()
        assert deliveries_send_chunk(issue_id=issue.pk) == 1

        [copy] = provider.state.copies
        preview = digest_preview(batch=day_batch.batch, subscriber=reader)
        assert (provider.html(copy), provider.text(copy)) == (preview.html, preview.text)
        assert copy["subject"] == preview.subject and title in preview.subject
        assert title in preview.text and html.escape(title) in preview.html


def test_an_address_the_provider_refuses_fails_alone(provider, day_batch, sending):
    robotics = day_batch.topics["robotics"]
    kept = [SubscriberFactory(email=f"kept{i}@example.org", topics=[robotics]) for i in range(4)]
    SubscriberFactory(email="refused@example.org", topics=[robotics])
    provider.state.refuse.add("refused@example.org")
    issue = sending()

    deliveries_send_chunk(issue_id=issue.pk)

    refused = Delivery.objects.get(subscriber__email="refused@example.org")
    assert refused.status == Delivery.Status.FAILED
    assert "rejected" in refused.last_error
    assert sorted(provider.state.recipients()) == sorted(r.email for r in kept)
    statuses = set(Delivery.objects.exclude(pk=refused.pk).values_list("status", flat=True))
    assert statuses == {Delivery.Status.SENT}


def test_a_transient_answer_while_splitting_keeps_what_was_taken(provider, day_batch, sending):
    robotics = day_batch.topics["robotics"]
    for i in range(4):
        SubscriberFactory(email=f"kept{i}@example.org", topics=[robotics])
    SubscriberFactory(email="refused@example.org", topics=[robotics])
    provider.state.refuse.add("refused@example.org")
    # The whole call is refused, its first half taken, its second half answered 500.
    provider.state.fail_next(0, 0, 500)
    issue = sending()

    with pytest.raises(TransientSendError):
        deliveries_send_chunk(issue_id=issue.pk)

    taken = sorted(provider.state.recipients())
    assert taken == ["kept0@example.org", "kept1@example.org"]
    statuses = dict(Delivery.objects.values_list("subscriber__email", "status"))
    assert {a for a, s in statuses.items() if s == Delivery.Status.SENT} == set(taken)
    # Not reached: failed (an editor can retry them), never sent again blindly.
    assert {s for a, s in statuses.items() if a not in taken} == {Delivery.Status.FAILED}


def test_a_call_refused_as_a_whole_fails_its_rows(provider, day_batch, sending):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    provider.state.api_key = "another-key"
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.FAILED}
    assert provider.state.copies == []


@pytest.mark.parametrize("status", [429, 500])
def test_a_transient_answer_is_retried_exactly_once(provider, day_batch, sending, status):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    provider.state.fail_next(status)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    assert provider.state.copies == []
    assert deliveries_send_chunk(issue_id=issue.pk) == 0  # held for the retry

    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 2
    assert sorted(provider.state.recipients()) == sorted(r.email for r in readers)
    assert provider.state.stats()["duplicates"] == 0


def test_an_unanswered_send_is_marked_unknown_never_resent(provider, day_batch, sending, settings):
    SubscriberFactory(email="first@example.org", topics=[day_batch.topics["agents"]])
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}
    provider.state.answer_delay = 1.0  # taken; the answer comes after our timeout
    issue = sending()

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()

    delivery = Delivery.objects.get(issue=issue)
    assert delivery.status == Delivery.Status.UNKNOWN  # neither provider can be asked
    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert provider.state.recipients() == ["first@example.org"]  # exactly once


@pytest.mark.parametrize("provider", ["mailgun"], indirect=True)
def test_mailgun_gets_the_same_copies_in_fewer_bytes_than_from_anymails_backend(
    provider, day_batch, sending, settings
):
    robotics = day_batch.topics["robotics"]
    for i in range(20):
        SubscriberFactory(email=f"reader{i}@example.org", topics=[robotics])
    copies, sizes = {}, {}
    now = timezone.now()  # signed links carry their time: the same in both sends
    for backend in ("anymail.backends.mailgun.EmailBackend", settings.EMAIL_BACKEND):
        settings.EMAIL_BACKEND = backend
        provider.state.reset()
        Delivery.objects.all().delete()
        Issue.objects.all().delete()
        with time_machine.travel(now, tick=False):
            issue = sending()
            assert deliveries_send_chunk(issue_id=issue.pk) == 20
        [sizes[backend]] = provider.state.call_bytes
        copies[backend] = sorted(
            # Less what differs from issue to issue: ids of the issue, claim and delivery.
            ({k: v for k, v in c.items() if k not in ("_id", "v:issue", "v:claim",
             "v:delivery")} for c in provider.state.copies),
            key=lambda c: c["to"],
        )  # fmt: skip
    ours, anymails = settings.EMAIL_BACKEND, "anymail.backends.mailgun.EmailBackend"
    assert copies[ours] == copies[anymails]  # every reader's copy, headers and all
    assert sizes[ours] < 0.8 * sizes[anymails], sizes
