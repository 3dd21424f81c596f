"""ANYMAIL_ESP=sparkpost, brevo, mailjet and amazon_ses: Paperboy's backends for them
(Anymail's, newsletter/{sparkpost,brevo,mailjet,amazon_ses}.py) over HTTP against
devtools/fakes/{sparkpost,brevo,mailjet,amazon_ses}.py.

All four merge on their side (SES through SendBulkEmail with an inline Handlebars
template): one call carries a content's body once and each reader's links
beside it, and each runs its template language over subject and bodies. The fakes render each
reader's copy with that language (devtools/fakes/templating.py) and refuse what it cannot
render, so every copy must be exactly what the preview shows that reader, even for a paper
whose title and abstract are full of template syntax.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from devtools.fakes import amazon_ses, brevo, mailjet, sparkpost
from digests.models import Paper
from newsletter.models import Delivery, Issue
from newsletter.services.previews import digest_preview
from newsletter.services.sending import (
    ClaimUnsettled,
    TransientSendError,
    deliveries_retry,
    deliveries_send_chunk,
    deliveries_sweep,
)
from subscriptions.links import unsubscribe_url
from tests.factories import SubscriberFactory
from tests.newsletter.conftest import ses_configure
from tests.newsletter.hooks import configure, post

pytestmark = pytest.mark.django_db

# What LaTeX and code in a paper's title or abstract look like to a template language: every
# delimiter of the three, a triple brace, and text spelled like each provider's merge fields.
TRICKY_TITLE = "Sets {{x}} and {{{y}}}: {%raw%} 50%} {#c#} }}"
TRICKY_ABSTRACT = (
    r"We bound $\frac{{a}}{b}$ by {{unsubscribe_url}}, {{ params.unsubscribe_url }}, "
    "{{var:unsubscribe_url}} and %recipient.unsubscribe_url%; {% if x %}{{ y|safe }}{% endif %}"
    " {{opening_double_curly()}} {{"
)


@dataclass
class Provider:
    """A fake, and where each rendered copy keeps what the tests compare."""

    name: str
    fake: object

    @property
    def state(self):
        return self.fake.state

    def copies(self) -> list[dict]:
        if self.name == "sparkpost":
            return self.state.transmissions
        return self.state.messages

    def to(self, copy: dict) -> str:
        if self.name == "amazon_ses":
            return copy["to"][0]
        if self.name == "sparkpost":
            return copy["recipients"][0]["address"]["email"]
        return copy["to"][0]["email"] if self.name == "brevo" else copy["To"][0]["Email"]

    # Where each provider's copy keeps its parts: SparkPost's in its content, Brevo's and
    # Mailjet's at the top, under their own names.
    PARTS = {
        "amazon_ses": {"html": "html", "text": "text", "subject": "subject"},
        "brevo": {"html": "htmlContent", "text": "textContent", "subject": "subject"},
        "mailjet": {"html": "HTMLPart", "text": "TextPart", "subject": "Subject"},
    }

    def part(self, copy: dict, name: str) -> str:
        if self.name == "sparkpost":
            return copy["content"][name]
        return copy[self.PARTS[self.name][name]]

    def html(self, copy: dict) -> str:
        return self.part(copy, "html")

    def text(self, copy: dict) -> str:
        return self.part(copy, "text")

    def subject(self, copy: dict) -> str:
        return self.part(copy, "subject")

    def header(self, copy: dict, name: str) -> str:
        if self.name == "sparkpost":
            return copy["content"]["headers"][name]
        return copy["Headers" if self.name == "mailjet" else "headers"][name]

    def metadata(self, copy: dict) -> dict:
        if self.name == "sparkpost":
            return copy["metadata"]
        if self.name == "brevo":
            return json.loads(copy["headers"]["X-Mailin-custom"])
        if self.name == "amazon_ses":
            return json.loads(copy["headers"]["X-Metadata"])
        return json.loads(copy["EventPayload"])

    def calls(self) -> int:
        return self.fake.counters.stats()["http_calls"]

    def fail_next(self, *statuses: int) -> None:
        self.state.fail_next(*statuses)


FAKES = {
    "amazon_ses": amazon_ses.FakeAmazonSes,
    "sparkpost": sparkpost.FakeSparkPost,
    "brevo": brevo.FakeBrevo,
    "mailjet": mailjet.FakeMailjet,
}
BACKENDS = {
    "sparkpost": "newsletter.sparkpost.SparkPostEmailBackend",
    "brevo": "newsletter.brevo.BrevoEmailBackend",
    "mailjet": "newsletter.mailjet.MailjetEmailBackend",
}


def provider_settings(name: str, fake) -> dict:
    settings = {f"{name.upper()}_API_URL": fake.url}
    if name == "sparkpost":
        settings["SPARKPOST_API_KEY"] = sparkpost.API_KEY
    elif name == "brevo":
        settings["BREVO_API_KEY"] = brevo.API_KEY
    else:
        settings["MAILJET_API_KEY"], settings["MAILJET_SECRET_KEY"] = (
            mailjet.API_KEY,
            mailjet.SECRET_KEY,
        )
    return settings


@pytest.fixture(params=sorted(FAKES))
def provider(request, settings, monkeypatch):
    name = request.param
    with FAKES[name]() as fake:
        if name == "amazon_ses":
            ses_configure(settings, monkeypatch, fake)
            yield Provider(name, fake)
            return
        settings.ANYMAIL_ESP = name
        settings.EMAIL_BACKEND = BACKENDS[name]
        settings.ANYMAIL = {**settings.ANYMAIL, **provider_settings(name, fake)}
        settings.SITE_URL = "https://paperboy.example.org"
        yield Provider(name, fake)


def assert_copies_are_previews(provider, day_batch, readers) -> None:
    by_to = {provider.to(c): c for c in provider.copies()}
    assert sorted(by_to) == sorted(r.email for r in readers)
    for reader in readers:
        copy = by_to[reader.email]
        preview = digest_preview(batch=day_batch.batch, subscriber=reader)
        assert provider.html(copy) == preview.html
        assert provider.text(copy) == preview.text
        assert provider.subject(copy) == preview.subject
        assert provider.header(copy, "List-Unsubscribe") == f"<{unsubscribe_url(reader)}>"
        assert provider.header(copy, "List-Unsubscribe") == preview.headers["List-Unsubscribe"]
        delivery = Delivery.objects.get(subscriber=reader)
        metadata = provider.metadata(copy)
        assert metadata["delivery"] == str(delivery.pk)
        assert metadata["issue"] == str(delivery.issue_id) and metadata["claim"] == delivery.claim
        assert delivery.status == Delivery.Status.SENT


def test_each_reader_gets_their_own_filled_copy_from_one_call(provider, day_batch, sending):
    robotics, agents = day_batch.topics["robotics"], day_batch.topics["agents"]
    readers = [SubscriberFactory(topics=[robotics]) for _ in range(3)]
    readers.append(SubscriberFactory(topics=[agents]))
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 4

        # One call per distinct content: the three robotics readers share one.
        assert issue.contents.count() == 2
        assert provider.calls() == 2
        assert_copies_are_previews(provider, day_batch, readers)
        for copy in provider.copies():
            assert "paperboy.example.org/u/" in provider.html(copy)  # their links, filled
    # The provider's message id of each reader (Brevo and Mailjet: one per recipient).
    ids = set(Delivery.objects.values_list("provider_message_id", flat=True))
    assert "" not in ids and len(ids) == (2 if provider.name == "sparkpost" else 4)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


def test_template_syntax_in_a_paper_reaches_the_reader_as_written(provider, day_batch, sending):
    paper = day_batch.papers["r1"]  # the robotics readers' top paper: in the subject too
    Paper.objects.filter(pk=paper.pk).update(
        title=TRICKY_TITLE, abstract=TRICKY_ABSTRACT, ai_summary=""
    )
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 2

        assert provider.calls() == 1
        assert_copies_are_previews(provider, day_batch, readers)
        copy = provider.copies()[0]
        assert TRICKY_TITLE in provider.subject(copy)
        assert TRICKY_TITLE in provider.text(copy) and TRICKY_ABSTRACT in provider.text(copy)
        assert html.escape(TRICKY_TITLE) in provider.html(copy)
        assert html.escape(TRICKY_ABSTRACT) in provider.html(copy)
        # Text spelled like a merge field stays text: nobody's link is put in its place.
        assert unsubscribe_url(readers[0]) not in provider.text(copy).split("Unsubscribe:")[0]


def test_the_fakes_refuse_template_syntax_their_provider_cannot_render(provider):
    """The escaping above is needed: unescaped, each provider refuses or empties the text."""
    from devtools.fakes.templating import (
        TemplateError,
        render_brevo,
        render_handlebars,
        render_mailjet,
        render_sparkpost,
    )

    render = {
        "sparkpost": render_sparkpost,
        "brevo": render_brevo,
        "mailjet": render_mailjet,
        "amazon_ses": lambda text, values, html_body: render_handlebars(text, values),
    }
    with pytest.raises(TemplateError):
        render[provider.name](TRICKY_ABSTRACT, {}, html_body=False)


def test_a_transient_answer_is_retried_exactly_once(provider, day_batch, sending):
    readers = [SubscriberFactory(topics=[day_batch.topics["agents"]]) for _ in range(2)]
    issue = sending()
    provider.fail_next(429, 500)

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    claim = raised.value.claim
    assert deliveries_send_chunk(issue_id=issue.pk) == 0  # held for the retry
    with pytest.raises(TransientSendError):
        deliveries_send_chunk(issue_id=issue.pk, claim=claim)
    assert provider.copies() == []

    assert deliveries_send_chunk(issue_id=issue.pk, claim=claim) == 2
    assert sorted(provider.state.recipients()) == sorted(r.email for r in readers)
    assert provider.fake.counters.stats()["duplicates"] == 0
    assert provider.calls() == 3


def test_a_call_refused_as_a_whole_fails_its_rows(provider, day_batch, sending):
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    SubscriberFactory(topics=[day_batch.topics["agents"]])
    if provider.name == "mailjet":
        provider.state.credentials = ("another", "key")
    elif provider.name == "amazon_ses":
        provider.state.access_key_id = "AKIAANOTHERKEY000000"
    else:
        provider.state.api_key = "another-key"
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.FAILED}
    assert provider.copies() == []


def test_an_unanswered_send_is_marked_unknown_never_resent(provider, day_batch, sending, settings):
    SubscriberFactory(email="first@example.org", topics=[day_batch.topics["agents"]])
    SubscriberFactory(email="second@example.org", topics=[day_batch.topics["agents"]])
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.3}
    if provider.name == "amazon_ses":
        settings.ANYMAIL_TIMEOUT_SECONDS = 0.3  # boto3's read timeout
    provider.fake.counters.answer_delay = 1.0  # taken; the answer comes after our timeout
    issue = sending()

    with pytest.raises(ClaimUnsettled):
        deliveries_send_chunk(issue_id=issue.pk)
    later = timezone.now() + timedelta(seconds=settings.DIGEST_CLAIM_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        deliveries_sweep()
        deliveries_sweep()

    # One call carried both: both possibly sent, neither sent again.
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.UNKNOWN}
    assert deliveries_send_chunk(issue_id=issue.pk) == 0
    assert sorted(provider.state.recipients()) == ["first@example.org", "second@example.org"]


# --- A recipient the provider refuses, each provider's way ------------------------------------


@pytest.mark.parametrize("provider", ["brevo"], indirect=True)
def test_brevo_refuses_the_call_for_a_blocked_address_which_then_fails_alone(
    provider, day_batch, sending
):
    robotics = day_batch.topics["robotics"]
    kept = [SubscriberFactory(email=f"kept{i}@example.org", topics=[robotics]) for i in range(4)]
    SubscriberFactory(email="gone@example.org", topics=[robotics])
    provider.state.blocked.add("gone@example.org")
    issue = sending()

    deliveries_send_chunk(issue_id=issue.pk)
    # The whole call refused (400), then its halves, down to the blocked address alone.
    assert provider.calls() > 1
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "rejected" in gone.last_error
    assert sorted(provider.state.recipients()) == sorted(r.email for r in kept)
    assert set(Delivery.objects.exclude(pk=gone.pk).values_list("status", flat=True)) == {"sent"}


@dataclass(frozen=True)
class AloneRefusal:
    """How a provider that answers each reader of a call is made to refuse one, and what the
    refused reader's row and the fake then hold."""

    refused: str  # the fake's set of addresses it refuses
    error: str  # the refused row's last_error
    counters: dict[str, int] = field(default_factory=dict)  # the fake's, afterwards


ALONE_REFUSALS = {
    # Mailjet answers a refused message in the body (Status "error"), without a reason.
    "mailjet": AloneRefusal("blocked", "provider failed this recipient"),
    # SES answers each destination of its one SendBulkEmail call (MESSAGE_REJECTED), with
    # SES's reason; the copy it took rendered.
    "amazon_ses": AloneRefusal(
        "rejected",
        "provider failed this recipient: MESSAGE_REJECTED: Address blacklisted.",
        {"bulk_calls": 1, "rendering_failures": 0},
    ),
}


@pytest.mark.parametrize("provider", sorted(ALONE_REFUSALS), indirect=True)
def test_a_refused_reader_is_answered_alone_and_the_others_sent(provider, day_batch, sending):
    refusal = ALONE_REFUSALS[provider.name]
    robotics = day_batch.topics["robotics"]
    SubscriberFactory(email="kept@example.org", topics=[robotics])
    SubscriberFactory(email="gone@example.org", topics=[robotics])
    getattr(provider.state, refusal.refused).add("gone@example.org")
    issue = sending()

    # One call, answered recipient by recipient: both rows settled by it.
    assert deliveries_send_chunk(issue_id=issue.pk) == 2
    assert provider.calls() == 1
    assert {name: getattr(provider.state, name) for name in refusal.counters} == refusal.counters
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert (gone.status, gone.last_error) == (Delivery.Status.FAILED, refusal.error)
    assert Delivery.objects.get(subscriber__email="kept@example.org").status == "sent"
    assert provider.state.recipients() == ["kept@example.org"]


def _assert_mailjet_calls(provider) -> None:
    assert provider.calls() == 2 and len(provider.state.recipients()) == 51


def _assert_ses_calls(provider) -> None:
    entries = sorted(len(m["params"]["BulkEmailEntries"]) for m in provider.state.messages)
    assert provider.state.bulk_calls == 2 and entries == [1] + [50] * 50


# Providers whose merging call takes at most 50 readers: two calls, as each fake shows them.
CALLS_OF_50 = {"mailjet": _assert_mailjet_calls, "amazon_ses": _assert_ses_calls}


@pytest.mark.parametrize("provider", list(CALLS_OF_50), indirect=True)
def test_a_claims_readers_go_in_calls_of_at_most_50(provider, day_batch, sending, settings):
    settings.DIGEST_BATCH_SIZE = 0
    robotics = day_batch.topics["robotics"]
    for i in range(51):
        SubscriberFactory(email=f"reader{i}@example.org", topics=[robotics])
    issue = sending()

    # One claim (up to 500 rows), its 51 readers of one content in two calls.
    assert deliveries_send_chunk(issue_id=issue.pk) == 51
    CALLS_OF_50[provider.name](provider)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize("provider", ["sparkpost"], indirect=True)
def test_sparkpost_rejects_a_suppressed_address_of_a_batch_afterwards(
    provider, day_batch, sending, settings, client
):
    robotics = day_batch.topics["robotics"]
    kept = [SubscriberFactory(email=f"kept{i}@example.org", topics=[robotics]) for i in range(2)]
    SubscriberFactory(email="gone@example.org", topics=[robotics])
    provider.state.suppressed.add("gone@example.org")
    issue = sending()

    # A transmission of several recipients: SparkPost accepts them all, then rejects the
    # suppressed one with an event (the tracking webhook), which settles that row alone.
    assert deliveries_send_chunk(issue_id=issue.pk) == 3
    assert sorted(provider.state.recipients()) == sorted(r.email for r in kept)
    [event] = provider.state.events
    configure(settings, "sparkpost")
    assert post(client, "sparkpost", event).status_code == 200
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.BOUNCED
    assert set(Delivery.objects.exclude(pk=gone.pk).values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize("provider", ["sparkpost"], indirect=True)
def test_sparkpost_refuses_a_transmission_to_one_suppressed_address(provider, day_batch, sending):
    SubscriberFactory(email="kept@example.org", topics=[day_batch.topics["robotics"]])
    SubscriberFactory(email="gone@example.org", topics=[day_batch.topics["agents"]])
    provider.state.suppressed.add("gone@example.org")
    issue = sending()

    assert deliveries_send_chunk(issue_id=issue.pk) == 1
    gone = Delivery.objects.get(subscriber__email="gone@example.org")
    assert gone.status == Delivery.Status.FAILED and "suppressed" in gone.last_error
    assert provider.state.recipients() == ["kept@example.org"]


def test_the_admin_is_told_what_a_crash_leaves_unknown(provider):
    from newsletter.providers import crash_recovery_note

    note = crash_recovery_note()
    if provider.name in ("mailjet", "amazon_ses"):
        assert "the claim it died in (up to 500, in calls of 50)" in note
    else:
        assert "the call it died in" in note


@pytest.mark.parametrize("provider", ["sparkpost"], indirect=True)
def test_sparkpost_totals_that_do_not_say_who_was_taken_leave_the_rows_unknown(
    provider, day_batch, sending
):
    for i in range(3):
        SubscriberFactory(email=f"reader{i}@example.org", topics=[day_batch.topics["robotics"]])
    provider.state.rejected_in_totals = 1  # "2 accepted, 1 rejected", naming nobody
    issue = sending()

    deliveries_send_chunk(issue_id=issue.pk)

    # Possibly sent, every one: never failed, which "Retry failed" would send again.
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.UNKNOWN}
    assert deliveries_retry(deliveries=Delivery.objects.all()) == 0


# --- Amazon SES: each destination's own answer, the call's limit, what bulk cannot carry --------


@pytest.mark.parametrize("provider", ["amazon_ses"], indirect=True)
def test_ses_throttled_destination_is_retried_with_the_claim_exactly_once(
    provider, day_batch, sending
):
    robotics = day_batch.topics["robotics"]
    SubscriberFactory(email="first@example.org", topics=[robotics])
    SubscriberFactory(email="later@example.org", topics=[robotics])
    provider.state.throttled.add("later@example.org")  # ACCOUNT_THROTTLED once
    issue = sending()

    with pytest.raises(TransientSendError) as raised:
        deliveries_send_chunk(issue_id=issue.pk)
    later = Delivery.objects.get(subscriber__email="later@example.org")
    assert (later.status, later.claim, later.handed_at) == ("sending", raised.value.claim, None)
    assert Delivery.objects.get(subscriber__email="first@example.org").status == "sent"
    assert provider.state.recipients() == ["first@example.org"]

    assert deliveries_send_chunk(issue_id=issue.pk, claim=raised.value.claim) == 1
    assert sorted(provider.state.recipients()) == ["first@example.org", "later@example.org"]
    assert provider.fake.counters.stats()["duplicates"] == 0
    assert provider.state.bulk_calls == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_the_ses_fake_refuses_a_call_of_more_than_50_destinations():
    from devtools.fakes.amazon_ses import _bulk_request

    entry = {"Destination": {"ToAddresses": ["a@example.org"]}}
    template = {"Template": {"TemplateContent": {"Subject": "s", "Text": "t"}}}
    params = {"FromEmailAddress": "f@example.org", "DefaultContent": template}
    assert len(_bulk_request({**params, "BulkEmailEntries": [entry] * 50})[1]) == 50
    with pytest.raises(ValueError, match="at most 50"):
        _bulk_request({**params, "BulkEmailEntries": [entry] * 51})
    with pytest.raises(ValueError, match="unsupported operations"):
        bad = {"Template": {"TemplateContent": {"Text": "{{#if a}}x{{/if}}"}}}
        _bulk_request({**params, "DefaultContent": bad, "BulkEmailEntries": [entry]})


@pytest.mark.parametrize("provider", ["amazon_ses"], indirect=True)
def test_ses_sends_a_content_handlebars_cannot_write_as_filled_copies(provider, day_batch, sending):
    # "\{{" (LaTeX's literal brace before a group): no simple substitution prints it.
    title = r"Sets \{{x}} of braces"
    paper = day_batch.papers["r1"]
    Paper.objects.filter(pk=paper.pk).update(title=title, ai_summary="")
    readers = [SubscriberFactory(topics=[day_batch.topics["robotics"]]) for _ in range(2)]
    with time_machine.travel(timezone.now(), tick=False):
        issue = sending()

        assert deliveries_send_chunk(issue_id=issue.pk) == 2

        # One SendEmail of raw MIME per reader, none through bulk.
        assert provider.state.bulk_calls == 0 and provider.calls() == 2
        by_to = {provider.to(c): c for c in provider.copies()}
        for reader in readers:
            copy = by_to[reader.email]
            preview = digest_preview(batch=day_batch.batch, subscriber=reader)
            assert provider.html(copy).strip() == preview.html.strip()
            assert provider.text(copy).strip() == preview.text.strip()
            assert title in provider.subject(copy) and title in provider.text(copy)
            assert provider.header(copy, "List-Unsubscribe") == f"<{unsubscribe_url(reader)}>"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
