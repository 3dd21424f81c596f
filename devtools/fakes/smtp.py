"""A tiny SMTP server that keeps what it is sent, for tests and local runs of ANYMAIL_ESP=smtp.

Python 3.12 dropped ``smtpd`` and aiosmtpd is not a dependency, so this speaks the few
commands Django's SMTP backend uses (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) on an
asyncio event loop (which sets TCP_NODELAY on each connection), with PIPELINING (RFC 2920)
advertised unless told not to. It can refuse chosen recipients at RCPT (550), answer the
next messages with a temporary or permanent failure, and drop the connection after taking a
message without answering (the "did it take it?" case).

It counts what it receives as the HTTP fakes do (devtools/fakes/serving.py ``Counters``: each
message's DATA is a call); run standalone (for benchmarks) the counters are served over HTTP on
a second port: ``python -m devtools.fakes.smtp --port N --stats-port M [--no-store]``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass, field

from devtools.fakes.serving import Counters, FakeHandler, LocalFake


@dataclass
class FakeSmtpState:
    messages: list[dict] = field(default_factory=list)  # {"from", "to", "message"}
    refused: set[str] = field(default_factory=set)  # recipients answered 550 at RCPT
    failures: list[str] = field(default_factory=list)  # replies to the next MAIL commands
    hang_up_after_failure: bool = False  # close the connection right after such a reply
    drop_after_data: int = 0  # messages to keep and then hang up on instead of answering
    connections: int = 0
    # Advertised in the EHLO reply (RFC 2920), as real servers do. A MAIL that arrived with
    # its RCPT already behind it counts as pipelined; a client that pipelines to a server
    # not advertising it is counted as improper (Postfix logs "improper command pipelining").
    pipelining: bool = True
    pipelined: int = 0
    improper_pipelining: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recipients(self) -> list[str]:
        with self.lock:
            return [to for m in self.messages for to in m["to"]]


_ADDRESS = re.compile(r"<([^>]*)>")
_END_OF_DATA = b"\r\n.\r\n"


class _Session(asyncio.Protocol):
    """One client's conversation. The server is one event loop, as real mail servers serve many
    connections without a thread each: a fake whose threads took turns at Python's lock would
    answer later the more connections a client opened, and the benchmark would measure that.

    Bytes are kept until a whole command line (or a whole message, up to its ending dot) has
    arrived; a command that arrives with more bytes behind it was pipelined."""

    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake
        self.state, self.counters, self.loop = fake.state, fake.counters, fake.loop
        self.buffer = bytearray()
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.in_data = False
        self.searched = 0  # where the search for the message's end starts again
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.fake.sessions.add(self)
        with self.state.lock:
            self.state.connections += 1
        self._say("220 fake-smtp ready")

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake.sessions.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            if self.in_data:
                if not self._message_take():
                    return
                continue
            end = self.buffer.find(b"\n")
            if end < 0:
                return
            line = bytes(self.buffer[: end + 1])
            del self.buffer[: end + 1]
            self._command(line.decode("utf-8", "replace").strip(), waiting=bool(self.buffer))

    def _say(self, line: str) -> None:
        self.transport.write(line.encode() + b"\r\n")

    def _command(self, command: str, *, waiting: bool) -> None:
        state = self.state
        verb = command[:4].upper()
        if verb in {"MAIL", "RCPT"} and waiting:
            with state.lock:
                if not state.pipelining:
                    state.improper_pipelining += 1
                elif verb == "MAIL":
                    state.pipelined += 1
        if verb in {"EHLO", "HELO"}:
            if verb == "EHLO" and state.pipelining:
                self._say("250-fake-smtp\r\n250-SIZE 52428800\r\n250 PIPELINING")
            else:
                self._say("250 fake-smtp")
        elif verb == "MAIL":
            with state.lock:
                failure = state.failures.pop(0) if state.failures else None
            if failure:
                self._say(failure)
                if state.hang_up_after_failure:
                    self.transport.close()
                return
            self.sender, self.recipients = _address(command), []
            self._say("250 OK")
        elif verb == "RCPT":
            address = _address(command)
            if self.sender is None:
                self._say("503 5.5.1 need MAIL first")
            elif address.lower() in state.refused:
                self._say("550 5.1.1 mailbox unavailable")
            else:
                self.recipients.append(address)
                self._say("250 OK")
        elif verb == "DATA":
            if not (self.sender and self.recipients):
                self._say("503 5.5.1 need MAIL and RCPT first")
                return
            self._say("354 end with <CRLF>.<CRLF>")
            self.in_data, self.searched = True, 0
            self.buffer[:0] = b"\r\n"  # so an empty message's lone "." ends it too
        elif verb == "RSET":
            self.sender, self.recipients = None, []
            self._say("250 OK")
        elif verb == "NOOP":
            self._say("250 OK")
        elif verb == "QUIT":
            self._say("221 bye")
            self.transport.close()
        else:
            self._say("502 5.5.2 command not implemented")

    def _message_take(self) -> bool:
        """Take the message if all of it is here; False while it is still arriving."""
        end = self.buffer.find(_END_OF_DATA, self.searched)
        if end < 0:
            self.searched = max(0, len(self.buffer) - len(_END_OF_DATA))
            return False
        arrived = time.time()
        raw = bytes(self.buffer[2 : end + 2]).replace(b"\n..", b"\n.")
        raw = raw[1:] if raw.startswith(b"..") else raw
        del self.buffer[: end + len(_END_OF_DATA)]
        self.in_data = False
        sender, recipients = self.sender, self.recipients
        self.sender, self.recipients = None, []
        state, counters = self.state, self.counters
        counters.call_count("DATA", len(raw))
        counters.accepted_count(recipients, arrived)
        with state.lock:
            if counters.store:
                message = email.message_from_bytes(raw, policy=email.policy.default)
                state.messages.append({"from": sender, "to": recipients, "message": message})
            drop = state.drop_after_data > 0
            state.drop_after_data -= drop
        if drop:
            self.transport.close()  # hung up without an answer
        elif counters.answer_delay:
            # Taken; the client may be gone before the answer.
            self.loop.call_later(counters.answer_delay, self._answer_late)
        else:
            self._say("250 OK queued")
        return True

    def _answer_late(self) -> None:
        if not self.transport.is_closing():
            self._say("250 OK queued")


def _address(command: str) -> str:
    """The address of "MAIL FROM:<a> SIZE=1" or "RCPT TO:<b>"."""
    found = _ADDRESS.search(command)
    return found.group(1) if found else command.split(":", 1)[1].split()[0]


class FakeSmtp:
    """``with FakeSmtp() as smtp:`` listens on 127.0.0.1:<smtp.port> until the block ends,
    served by an event loop on a thread of its own."""

    def __init__(self, port: int = 0, *, store: bool = True) -> None:
        self.state = FakeSmtpState()
        self.counters = Counters(store=store)
        self.loop = asyncio.new_event_loop()
        self.sessions: set[_Session] = set()  # the connections open, closed when the block ends
        self._server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Session(self), "127.0.0.1", port)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeSmtp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self._server.close()
        # A client may keep its connection open past the block: not waited for.
        for session in list(self.sessions):
            session.transport.abort()
        self.loop.run_until_complete(self._server.wait_closed())
        self.loop.close()


class _StatsHandler(FakeHandler):
    def post(self, raw: bytes, arrived: float) -> None:
        self.reply(404, {"message": "only /_fake/stats and /_fake/reset are served here"})


class SmtpStats(LocalFake):
    """The SMTP fake's counters over HTTP, for the benchmark (which reads every fake alike)."""

    state_class = dict
    handler_class = _StatsHandler
    name = "SMTP counters"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stats-port", type=int, default=0)
    parser.add_argument("--no-store", dest="store", action="store_false")
    parser.add_argument(
        "--answer-delay", type=float, default=0.0, help="seconds before each answer (an RTT)"
    )
    args = parser.parse_args()
    with FakeSmtp(args.port, store=args.store) as smtp:
        smtp.counters.answer_delay = args.answer_delay
        print(f"fake SMTP at 127.0.0.1:{smtp.port}", flush=True)
        with SmtpStats(args.stats_port, store=args.store, counters=smtp.counters) as stats:
            stats.serve()


if __name__ == "__main__":
    main()
