"""The backend's shortcuts (bare recipient addresses, plainly accepted batch answers, payloads
of like messages) against Anymail's own parsers and payloads."""

from __future__ import annotations

import orjson
import pytest
import requests
from anymail.backends.postmark import EmailBackend as PostmarkBackend
from anymail.backends.postmark import PostmarkPayload
from anymail.exceptions import AnymailInvalidAddress
from anymail.message import AnymailMessage
from anymail.utils import UNSET, parse_address_list
from hypothesis import given
from hypothesis import strategies as st

from newsletter.backends import (
    BARE_ADDRESS,
    PostmarkBatchEmailBackend,
    PostmarkBatchPayload,
    _Slice,
    plainly_accepted,
    recipients_parse,
)

BOTH = ["a@example.org", "b@example.org"]
OK = {"ErrorCode": 0, "Message": "OK", "MessageID": "m1", "To": "a@example.org"}


def _parts(addresses):
    return [(a.display_name, a.username, a.domain, a.addr_spec, a.address) for a in addresses]


@given(st.lists(st.from_regex(BARE_ADDRESS, fullmatch=True), min_size=1, max_size=5))
def test_it_splits_bare_addresses_exactly_as_anymail_parses_them(addresses):
    assert _parts(recipients_parse(addresses)) == _parts(parse_address_list(addresses))


@given(st.lists(st.text(alphabet='ab.@-<>" ,é\\', max_size=12), min_size=1, max_size=3))
def test_it_agrees_with_anymail_on_any_address_list(addresses):
    try:
        expected = _parts(parse_address_list(addresses, field="to"))
    except AnymailInvalidAddress as error:
        with pytest.raises(AnymailInvalidAddress) as raised:
            recipients_parse(addresses, field="to")
        assert str(raised.value) == str(error)
    else:
        assert _parts(recipients_parse(addresses, field="to")) == expected


@pytest.mark.parametrize(
    "address",
    ['"quoted local"@example.org', "Ada <ada@example.org>", "a@b.org, c@d.org", "é@example.org"],
)
def test_it_leaves_anything_but_a_bare_address_to_anymail(address):
    assert BARE_ADDRESS.fullmatch(address) is None
    assert _parts(recipients_parse([address])) == _parts(parse_address_list([address]))


def _statuses(parsed) -> dict:
    return {address: (s.status, s.message_id) for address, s in parsed.items()}


@pytest.mark.parametrize(
    "answers",
    [
        [
            OK,
            {**OK, "MessageID": "m2", "To": "b@example.org"},
        ],
        [
            OK,
            {
                **OK,
                "MessageID": "m2",
                "To": "b@example.org",
                "Message": "Message accepted, but delivery may be delayed.",
            },
        ],
        [
            OK,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to a recipient that has been "
                "marked as inactive.\nFound inactive addresses: b@example.org.\nInactive "
                "recipients are ones that have generated a hard bounce or a spam complaint.",
            },
        ],
        [OK, {**OK, "MessageID": "m2", "To": "someone-else@example.org"}],
        [OK],
    ],
    ids=["accepted", "delayed", "inactive", "other-recipient", "missing-answer"],
)
def test_it_reads_batch_answers_as_anymail_does(answers, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_SERVER_TOKEN": "token"}
    backend = PostmarkBatchEmailBackend()
    message = AnymailMessage("Digest", "Hi", "digest@paperboy.example.org", BOTH)
    message.merge_data = {address: {} for address in BOTH}
    payload = backend.build_message_payload(message, backend.send_defaults)
    answer = _Slice(requests.Response(), answers)

    ours = backend.parse_recipient_status(answer, payload, message)
    anymails = PostmarkBackend.parse_recipient_status(backend, answer, payload, message)
    assert _statuses(ours) == _statuses(anymails)
    assert (plainly_accepted(answers, payload) is not None) == (
        len(answers) == 2 and all(a.get("ErrorCode") == 0 and a["To"] in BOTH for a in answers)
    )


def _digest(subject: str, to: list[str], **extra) -> AnymailMessage:
    """A message shaped as sending.digest_message builds one."""
    message = AnymailMessage(
        subject,
        f"text for {{{{unsubscribe_url}}}} {subject}",
        "Paperboy <digest@paperboy.example.org>",
        to,
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "List-Id": "pb"},
    )
    message.attach_alternative(f"<p>{subject} {{{{unsubscribe_url}}}} &amp; é</p>", "text/html")
    message.tags = ["daily-digest"]
    message.metadata = {"issue": "7", "claim": "c1"}
    message.merge_data = {a: {"unsubscribe_url": f"https://x.example/u/{a}?a=1&b=2"} for a in to}
    message.merge_headers = {a: {"List-Unsubscribe": f"<https://x.example/u/{a}>"} for a in to}
    message.merge_metadata = {a: {"delivery": str(i)} for i, a in enumerate(to)}
    for name, value in extra.items():
        setattr(message, name, value)
    return message


def test_it_builds_a_like_message_s_payload_as_anymail_does(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_SERVER_TOKEN": "token"}
    backend = PostmarkBatchEmailBackend()
    first = backend.build_message_payload(_digest("One", ["a@example.org"]), backend.send_defaults)
    second = _digest("Two ▲", ["b@example.org", "c@example.org"])

    made = PostmarkBatchPayload.like(first, second)
    anymails = backend.build_message_payload(second, backend.send_defaults)

    assert made is not None and made.message is second
    assert made.batch_copies() == anymails.batch_copies()
    # The same JSON (its keys may come in another order, which JSON leaves without meaning).
    assert orjson.loads(made.serialize_data()) == orjson.loads(anymails.serialize_data())
    assert made.get_api_endpoint() == anymails.get_api_endpoint() == "email/batch"
    assert _parts(made.to_emails) == _parts(anymails.to_emails)
    # The first payload is left as it was.
    assert [c["Subject"] for c in first.batch_copies()] == ["One"]


@pytest.mark.parametrize(
    "extra",
    [
        {"tags": ["other"]},
        {"metadata": {"issue": "8", "claim": "c1"}},
        {"extra_headers": {"List-Id": "other"}},
        {"cc": ["d@example.org"]},
        {"from_email": "Other <other@paperboy.example.org>"},
        {"alternatives": [("<p>a</p>", "text/html"), ("<p>b</p>", "text/html")]},
        {"alternatives": [("*a*", "text/markdown")]},
        {"content_subtype": "html"},
        {"merge_headers": UNSET},
        {"esp_extra": {"MessageStream": "other"}},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_it_leaves_a_message_that_differs_in_more_to_anymail(settings, extra):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_SERVER_TOKEN": "token"}
    backend = PostmarkBatchEmailBackend()
    first = backend.build_message_payload(_digest("One", ["a@example.org"]), backend.send_defaults)

    assert PostmarkBatchPayload.like(first, _digest("Two", ["b@example.org"], **extra)) is None


def test_it_leaves_messages_to_anymail_when_send_defaults_set_their_own_parts(settings):
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "POSTMARK_SERVER_TOKEN": "token",
        "SEND_DEFAULTS": {"merge_data": {"a@example.org": {"x": "1"}}},
    }
    backend = PostmarkBatchEmailBackend()
    first = backend.build_message_payload(_digest("One", ["a@example.org"]), backend.send_defaults)

    assert PostmarkBatchPayload.like(first, _digest("Two", ["b@example.org"])) is None


@pytest.mark.parametrize(
    "merge_headers",
    [
        {"List-Unsubscribe": "<https://x.example/u/a>"},
        {"list-id": "lower case replaces List-Id in place", "X-New": "1"},
        {},
    ],
)
def test_it_merges_a_copy_s_headers_as_anymail_does(settings, merge_headers):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_SERVER_TOKEN": "token"}
    backend = PostmarkBatchEmailBackend()
    message = _digest("One", ["a@example.org", "b@example.org"])
    message.merge_headers = {"a@example.org": merge_headers}  # b@ has none
    ours = backend.build_message_payload(message, backend.send_defaults)
    anymails = PostmarkPayload(message, backend.send_defaults, backend)

    for to in ours.to_emails:
        mine = ours.data_for_recipient(to)
        theirs = PostmarkPayload.data_for_recipient(anymails, to)
        assert mine["Headers"] == theirs["Headers"]
        assert mine["Metadata"] == theirs["Metadata"] and mine["To"] == theirs["To"]
