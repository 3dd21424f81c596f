"""What every fake provider API shares: a threaded HTTP server on a local port, the counters a
benchmark reads, and the standalone runner.

A fake names its state's class, its request handler (a ``FakeHandler``, which finds the state
at ``self.state``) and the path of the API's base URL under the server's root. Every fake
counts what it receives (``Counters``: calls, request and answer bytes, the largest call,
recipients accepted, distinct and repeated), served at ``GET /_fake/stats`` in the shape of the
fake Postmark's (``devtools/fakes/postmark.py``) and zeroed by ``POST /_fake/reset``, so the
benchmark reads every provider alike. With ``store=False`` (benchmarks) a fake keeps only the
counters and an 8-byte hash per recipient, not the messages, so memory stays flat at any volume.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import orjson


@dataclass
class Counters:
    """What a fake received, as the benchmark counts it."""

    store: bool = True  # False: the fake keeps no message, only these counters
    calls: Counter = field(default_factory=Counter)  # by path
    call_bytes: list[int] = field(default_factory=list)  # request body size of each call
    bytes_in: int = 0
    bytes_out: int = 0
    accepted: int = 0  # recipients
    refused: int = 0  # calls answered 4xx
    duplicates: int = 0
    # Seconds between taking a call (recorded) and answering it: a client killed or timing
    # out meanwhile cannot know it was taken.
    answer_delay: float = 0.0
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (when, recipients)
    _seen: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call_count(self, path: str, size: int) -> None:
        with self.lock:
            self.calls[path.split("?")[0]] += 1
            self.bytes_in += size
            self.call_bytes.append(size)

    def accepted_count(self, addresses: list[str], arrived: float) -> None:
        """A call's accepted recipients, arrived at `arrived` (time.time())."""
        digests = [
            hashlib.blake2b(a.lower().encode(), digest_size=8, usedforsecurity=False).digest()
            for a in addresses
        ]
        with self.lock:
            self.accepted += len(addresses)
            self.arrivals.append((arrived, len(addresses)))
            for digest in digests:
                if digest in self._seen:
                    self.duplicates += 1
                else:
                    self._seen.add(digest)

    def peak_per_second(self) -> int:
        """The most recipients accepted in calls that arrived within any one second."""
        with self.lock:
            return peak_per_second(self.arrivals)

    def stats(self) -> dict[str, object]:
        with self.lock:
            stats = {
                "calls": dict(self.calls),
                "http_calls": sum(self.calls.values()),
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "largest_call_bytes": max(self.call_bytes, default=0),
                "accepted": self.accepted,
                "refused": self.refused,
                "distinct_recipients": len(self._seen),
                "duplicates": self.duplicates,
            }
        stats["peak_per_second"] = self.peak_per_second()
        return stats

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.call_bytes.clear()
            self._seen.clear()
            self.arrivals.clear()
            self.bytes_in = self.bytes_out = self.accepted = self.refused = self.duplicates = 0


class FakeHandler(BaseHTTPRequestHandler):
    """Reads and counts each request body, serves the counters, and answers through ``reply``.
    Subclasses implement ``post(raw, arrived)`` for their provider's endpoints."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK wait per call

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def state(self) -> Any:
        return self.server.state

    @property
    def counters(self) -> Counters:
        return self.server.counters

    def reply(
        self,
        status: int,
        body: object = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        if self.counters.answer_delay and status < 300 and self.command == "POST":
            time.sleep(self.counters.answer_delay)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test, a killed worker)
        with self.counters.lock:
            self.counters.bytes_out += len(data)
            self.counters.refused += 400 <= status < 500

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":
            return self.reply(200, self.counters.stats())
        return self.reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        arrived = time.time()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_fake/reset":
            self.counters.reset()
            self.state_reset()
            return self.reply(200, {"reset": True})
        self.counters.call_count(self.path, len(raw))
        self.post(raw, arrived)

    def post(self, raw: bytes, arrived: float) -> None:
        raise NotImplementedError

    def state_reset(self) -> None:
        """What a reset clears of the fake's own state besides the counters."""


def _quiet_on_disconnect(server, request, client_address) -> None:
    """A client that gave up (timed out, or was killed) before the answer is expected here."""
    if not isinstance(sys.exc_info()[1], ConnectionError):
        ThreadingHTTPServer.handle_error(server, request, client_address)


class LocalFake:
    """``with FakeX() as fake:`` serves on ``fake.url`` (the API's base URL) until the block
    ends; ``python -m devtools.fakes.<provider>`` serves it until interrupted."""

    state_class: ClassVar[type]
    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    base_path: ClassVar[str] = ""
    name: ClassVar[str] = ""  # the provider, for what a standalone run prints

    def __init__(self, port: int = 0, *, store: bool = True, counters: Counters | None = None):
        self.state: Any = self.state_class()
        # A fake whose state is its counters (Mailgun's, SendGrid's) shares them.
        if counters is None:
            counters = self.state if isinstance(self.state, Counters) else Counters()
        self.counters = counters
        self.counters.store = store
        # A listen backlog like a real server's: clients opening many connections at once
        # must queue, not be refused as if the provider were down.
        server_class = type(
            "Server",
            (ThreadingHTTPServer,),
            {"request_queue_size": 128, "handle_error": _quiet_on_disconnect},
        )
        self._server = server_class(("127.0.0.1", port), self.handler_class)
        self._server.daemon_threads = True
        self._server.state = self.state
        self._server.counters = self.counters
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def url(self) -> str:
        return self.root_url + self.base_path.lstrip("/")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self) -> None:
        """Serve in the foreground until interrupted."""
        print(f"fake {self.name} at {self.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            self._thread.join()

    @classmethod
    def serve_standalone(cls, description: str) -> None:
        """``python -m devtools.fakes.<provider> --port N [--no-store]`` (the benchmark)."""
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--port", type=int, default=0)
        parser.add_argument("--no-store", dest="store", action="store_false")
        parser.add_argument(
            "--answer-delay", type=float, default=0.0, help="seconds before each answer (an RTT)"
        )
        args = parser.parse_args()
        with cls(args.port, store=args.store) as fake:
            fake.counters.answer_delay = args.answer_delay
            fake.serve()


def peak_per_second(arrivals: list[tuple[float, int]]) -> int:
    """The most of `count` in (arrival time, count) pairs that arrived within any one second."""
    ordered = sorted(arrivals)
    peak, start, inside = 0, 0, 0
    for when, count in ordered:
        inside += count
        while ordered[start][0] <= when - 1.0:
            inside -= ordered[start][1]
            start += 1
        peak = max(peak, inside)
    return peak
