"""A tiny SMTP server that keeps what it is sent, for tests and local runs of ANYMAIL_ESP=smtp.

Python 3.12 dropped ``smtpd`` and aiosmtpd is not a dependency, so this speaks the few
commands Django's SMTP backend uses (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) over a
threaded socket server, with PIPELINING (RFC 2920) advertised unless told not to. It can
refuse chosen recipients at RCPT (550), answer the next messages with a temporary or permanent
failure, and drop the connection after taking a message without answering (the "did it take
it?" case).

It counts what it receives as the HTTP fakes do (devtools/fakes/serving.py ``Counters``: each
message's DATA is a call); run standalone (for benchmarks) the counters are served over HTTP on
a second port: ``python -m devtools.fakes.smtp --port N --stats-port M [--no-store]``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field

from devtools.fakes.serving import Counters, FakeHandler, LocalFake


@dataclass
class FakeSmtpState:
    messages: list[dict] = field(default_factory=list)  # {"from", "to", "message"}
    refused: set[str] = field(default_factory=set)  # recipients answered 550 at RCPT
    failures: list[str] = field(default_factory=list)  # replies to the next MAIL commands
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


class _Reader:
    """The client's bytes, read from the socket in blocks: lines for commands, and a whole
    message up to its ending dot in one search rather than line by line. Knows whether more
    has arrived than was read (``waiting``), which is how pipelining is told apart."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def _more(self) -> bool:
        block = self._sock.recv(262144)
        self._buffer += block
        return bool(block)

    def waiting(self) -> bool:
        return bool(self._buffer)

    def line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if not self._more():
                return b""
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def message(self) -> bytes | None:
        """DATA's message with the dot-stuffing undone; None if the client went away."""
        self._buffer[:0] = b"\r\n"  # so an empty message's lone "." ends it too
        searched = 0
        while (end := self._buffer.find(_END_OF_DATA, searched)) < 0:
            searched = max(0, len(self._buffer) - len(_END_OF_DATA))
            if not self._more():
                return None
        raw = bytes(self._buffer[2 : end + 2])
        del self._buffer[: end + len(_END_OF_DATA)]
        unstuffed = raw.replace(b"\n..", b"\n.")
        return unstuffed[1:] if unstuffed.startswith(b"..") else unstuffed


class _Handler(socketserver.BaseRequestHandler):
    def _say(self, line: str) -> None:
        self.request.sendall(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed ACKs
        state: FakeSmtpState = self.server.state
        reader = _Reader(self.request)
        with state.lock:
            state.connections += 1
        self._say("220 fake-smtp ready")
        sender, recipients = None, []
        while line := reader.line():
            command = line.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb in {"MAIL", "RCPT"} and reader.waiting():
                with state.lock:
                    if not state.pipelining:
                        state.improper_pipelining += 1
                    elif verb == "MAIL":
                        state.pipelined += 1
            if verb in {"EHLO", "HELO"}:
                if verb == "EHLO" and state.pipelining:
                    self.request.sendall(b"250-fake-smtp\r\n250-SIZE 52428800\r\n")
                    self._say("250 PIPELINING")
                else:
                    self._say("250 fake-smtp")
            elif verb == "MAIL":
                with state.lock:
                    failure = state.failures.pop(0) if state.failures else None
                if failure:
                    self._say(failure)
                    continue
                sender, recipients = _address(command), []
                self._say("250 OK")
            elif verb == "RCPT":
                address = _address(command)
                if sender is None:
                    self._say("503 5.5.1 need MAIL first")
                elif address.lower() in state.refused:
                    self._say("550 5.1.1 mailbox unavailable")
                else:
                    recipients.append(address)
                    self._say("250 OK")
            elif verb == "DATA":
                if not (sender and recipients):
                    self._say("503 5.5.1 need MAIL and RCPT first")
                    continue
                self._say("354 end with <CRLF>.<CRLF>")
                if not self._take(state, reader, sender, recipients):
                    return  # hung up without an answer
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self._say("250 OK")
            elif verb == "NOOP":
                self._say("250 OK")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 5.5.2 command not implemented")

    def _take(
        self, state: FakeSmtpState, reader: _Reader, sender: str, recipients: list[str]
    ) -> bool:
        arrived = time.time()
        raw = reader.message()
        if raw is None:
            return False
        counters: Counters = self.server.counters
        counters.call_count("DATA", len(raw))
        counters.accepted_count(recipients, arrived)
        with state.lock:
            if counters.store:
                message = email.message_from_bytes(raw, policy=email.policy.default)
                state.messages.append({"from": sender, "to": recipients, "message": message})
            drop = state.drop_after_data > 0
            state.drop_after_data -= drop
        if drop:
            return False
        if counters.answer_delay:
            time.sleep(counters.answer_delay)  # taken; the client may be gone before the answer
        self._say("250 OK queued")
        return True


def _address(command: str) -> str:
    """The address of "MAIL FROM:<a> SIZE=1" or "RCPT TO:<b>"."""
    found = _ADDRESS.search(command)
    return found.group(1) if found else command.split(":", 1)[1].split()[0]


class FakeSmtp:
    """``with FakeSmtp() as smtp:`` listens on 127.0.0.1:<smtp.port> until the block ends."""

    def __init__(self, port: int = 0, *, store: bool = True) -> None:
        self.state = FakeSmtpState()
        self.counters = Counters(store=store)
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.state = self.state
        self._server.counters = self.counters
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSmtp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


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
