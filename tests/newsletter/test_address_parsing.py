"""The backend's shortcut for bare recipient addresses against Anymail's own parser."""

from __future__ import annotations

import pytest
from anymail.exceptions import AnymailInvalidAddress
from anymail.utils import parse_address_list
from hypothesis import given
from hypothesis import strategies as st

from newsletter.backends import BARE_ADDRESS, recipients_parse


def _parts(addresses):
    return [(a.display_name, a.username, a.domain, a.addr_spec, a.address) for a in addresses]


@given(st.lists(st.from_regex(BARE_ADDRESS, fullmatch=True), min_size=1, max_size=5))
def test_it_splits_bare_addresses_exactly_as_anymail_parses_them(addresses):
    assert _parts(recipients_parse(addresses)) == _parts(parse_address_list(addresses))


@given(st.lists(st.text(alphabet="ab.@-<>\" ,é\\", max_size=12), min_size=1, max_size=3))
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
