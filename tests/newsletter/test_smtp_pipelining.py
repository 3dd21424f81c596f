"""newsletter/smtp_connection.py against the local SMTP server: MAIL, RCPT and DATA in one
round trip where PIPELINING is advertised, smtplib's exchange where it is not, and every
answer read as smtplib reads it."""

from __future__ import annotations

import re
import smtplib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.fakes.smtp import FakeSmtp
from newsletter.smtp_connection import PipeliningSMTP, dot_stuffed

MESSAGE = (
    b"Subject: stuffing\r\n\r\n"
    b".a line starting with a dot\r\n"
    b"..two of them\r\n"
    b"a line\r\n"
    b".\r\n"
    b"the end"  # no final line break: one is added
)


@pytest.fixture
def server():
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def connect(server):
    """Open a connection to the server (after its EHLO); each is closed after the test."""
    opened = []

    def open_one() -> PipeliningSMTP:
        connection = PipeliningSMTP("127.0.0.1", server.port)
        opened.append(connection)
        connection.ehlo()
        return connection

    yield open_one
    for connection in opened:
        connection.close()


@given(st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n")))
def test_dot_stuffing_gives_the_bytes_smtplib_sends(message):
    quoted = re.sub(rb"(?m)^\.", b"..", message)  # smtplib's _quote_periods
    expected = quoted if quoted.endswith(b"\r\n") else quoted + b"\r\n"
    assert dot_stuffed(message) == expected


def test_a_message_goes_in_one_round_trip_and_arrives_as_written(server, connect):
    connection = connect()

    for n in range(3):
        assert connection.sendmail("news@example.org", [f"r{n}@example.org"], MESSAGE) == {}

    assert server.state.pipelined == 3  # each MAIL arrived with its RCPT and DATA behind it
    assert server.state.connections == 1
    body = MESSAGE.split(b"\r\n\r\n", 1)[1].decode() + "\r\n"
    received = [m["message"].get_payload() for m in server.state.messages]
    assert [r.replace("\r\n", "\n") for r in received] == [body.replace("\r\n", "\n")] * 3
    assert server.counters.bytes_in == 3 * len(MESSAGE + b"\r\n")


def test_a_server_without_pipelining_gets_one_command_at_a_time(server, connect):
    server.state.pipelining = False
    connection = connect()

    assert connection.sendmail("news@example.org", ["r@example.org"], MESSAGE) == {}
    assert connection.sendmail("news@example.org", ["s@example.org"], MESSAGE) == {}

    assert server.state.improper_pipelining == 0 and server.state.pipelined == 0
    assert server.state.recipients() == ["r@example.org", "s@example.org"]


def test_a_refused_recipient_is_reported_and_the_others_get_the_message(server, connect):
    server.state.refused.add("gone@example.org")
    connection = connect()

    refused = connection.sendmail(
        "news@example.org", ["kept@example.org", "gone@example.org"], MESSAGE
    )

    assert list(refused) == ["gone@example.org"] and refused["gone@example.org"][0] == 550
    assert server.state.recipients() == ["kept@example.org"]


def test_every_recipient_refused_sends_no_message_and_the_connection_goes_on(server, connect):
    server.state.refused.add("gone@example.org")
    connection = connect()

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        connection.sendmail("news@example.org", ["gone@example.org"], MESSAGE)

    assert list(refused.value.recipients) == ["gone@example.org"]
    assert server.state.messages == []
    # The transaction was ended: the next message on the same connection goes through alone.
    assert connection.sendmail("news@example.org", ["next@example.org"], MESSAGE) == {}
    assert server.state.recipients() == ["next@example.org"]


@pytest.mark.parametrize("reply, code", [("451 4.3.0 try again later", 451), ("554 no", 554)])
def test_a_refused_sender_is_raised_with_its_code_and_the_connection_goes_on(
    server, connect, reply, code
):
    server.state.failures.append(reply)
    connection = connect()

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        connection.sendmail("news@example.org", ["r@example.org"], MESSAGE)

    assert refused.value.smtp_code == code
    assert server.state.messages == []
    assert connection.sendmail("news@example.org", ["r@example.org"], MESSAGE) == {}
    assert server.state.recipients() == ["r@example.org"]


def test_a_server_that_refuses_the_sender_and_hangs_up_is_a_refusal_not_a_lost_message(
    server, connect
):
    server.state.failures.append("554 5.7.1 not from you")
    server.state.hang_up_after_failure = True
    connection = connect()

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        connection.sendmail("news@example.org", ["r@example.org"], MESSAGE)

    assert refused.value.smtp_code == 554  # certainly not taken, not "connection lost"
    assert server.state.messages == []


def test_a_message_taken_and_unanswered_raises_a_lost_connection(server, connect):
    server.state.drop_after_data = 1
    connection = connect()

    with pytest.raises(smtplib.SMTPServerDisconnected):
        connection.sendmail("news@example.org", ["r@example.org"], MESSAGE)

    assert server.state.recipients() == ["r@example.org"]  # it was taken: the caller must know
