"""The backend's shortcuts (bare recipient addresses, plainly accepted batch answers) against
Anymail's own parsers."""

from __future__ import annotations

import pytest
import requests
from anymail.backends.postmark import EmailBackend as PostmarkBackend
from anymail.exceptions import AnymailInvalidAddress
from anymail.message import AnymailMessage
from anymail.utils import parse_address_list
from hypothesis import given
from hypothesis import strategies as st

from newsletter.backends import (
    BARE_ADDRESS,
    PostmarkBatchEmailBackend,
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
