"""What the Mailgun and SendGrid fakes share: counting what they receive, misbehaving on
demand, and serving on 127.0.0.1.

Each fake records every call's size in bytes (``bytes_in``: the request body as it arrived,
``bytes_out``: the answer) and every recipient's filled copy, expanded as the provider would
expand it; ``GET /_fake/stats`` serves the counters in the shape of the fake Postmark's
(``devtools/fakes/postmark.py``), so the benchmark reads every provider alike, and
``POST /_fake/reset`` zeroes them. With ``store=False`` (benchmarks) only the counters and an
8-byte hash per recipient are kept, so memory stays flat at any volume.
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

import orjson


@dataclass
class CountingState:
    """What a fake received, and how it should misbehave next."""

    store: bool = True
    api_key: str = ""
    copies: list[dict] = field(default_factory=list)  # each recipient's filled copy
    calls: Counter = field(default_factory=Counter)  # by path
    call_bytes: list[int] = field(default_factory=list)  # request body size of each call
    bytes_in: int = 0
    bytes_out: int = 0
    accepted: int = 0  # recipients
    refused: int = 0  # calls answered 4xx
    duplicates: int = 0
    refuse: set[str] = field(default_factory=set)  # addresses the API answers 400 for
    answer_delay: float = 0.0  # seconds between taking a call (recorded) and answering it
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    _seen: set[bytes] = field(default_factory=set)
    _failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next send calls with these HTTP statuses (429, 500, ...)."""
        with self.lock:
            self._failures.extend(statuses)

    def take_failure(self) -> int | None:
        with self.lock:
            return self._failures.pop(0) if self._failures else None

    def recipients(self) -> list[str]:
        with self.lock:
            return [c["to"] for c in self.copies]

    def record(self, copies: list[dict], arrived: float) -> None:
        """A call's accepted copies (each with its "to" address)."""
        digests = [
            hashlib.blake2b(c["to"].lower().encode(), digest_size=8, usedforsecurity=False).digest()
            for c in copies
        ]
        with self.lock:
            self.accepted += len(copies)
            self.arrivals.append((arrived, len(copies)))
            for digest in digests:
                if digest in self._seen:
                    self.duplicates += 1
                else:
                    self._seen.add(digest)
            if self.store:
                self.copies.extend(copies)

    def peak_per_second(self) -> int:
        with self.lock:
            arrivals = sorted(self.arrivals)
        peak, start, inside = 0, 0, 0
        for when, count in arrivals:
            inside += count
            while arrivals[start][0] <= when - 1.0:
                inside -= arrivals[start][1]
                start += 1
            peak = max(peak, inside)
        return peak

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
            self.copies.clear()
            self.calls.clear()
            self.call_bytes.clear()
            self._seen.clear()
            self.arrivals.clear()
            self.bytes_in = self.bytes_out = self.accepted = self.refused = self.duplicates = 0


class CountingHandler(BaseHTTPRequestHandler):
    """Reads each request body, counts it, and answers through ``reply``. Subclasses
    implement ``send(path, headers, raw, arrived)`` for their provider's send endpoint."""

    state: CountingState
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as the fake Postmark: no 40 ms delayed-ACK wait per call

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(
        self,
        status: int,
        body: object = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
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
        with self.state.lock:
            self.state.bytes_out += len(data)

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":
            return self.reply(200, self.state.stats())
        return self.reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        arrived = time.time()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_fake/reset":
            self.state.reset()
            return self.reply(200, {"reset": True})
        with self.state.lock:
            self.state.calls[self.path.split("?")[0]] += 1
            self.state.bytes_in += len(raw)
            self.state.call_bytes.append(len(raw))
        self.send(self.path, self.headers, raw, arrived)

    def send(self, path: str, headers, raw: bytes, arrived: float) -> None:
        raise NotImplementedError

    def taken(self) -> None:
        """Accepted and recorded: wait before answering if told to (a worker killed meanwhile
        leaves an accepted call unrecorded on its side)."""
        if self.state.answer_delay:
            time.sleep(self.state.answer_delay)

    def refused(self) -> None:
        with self.state.lock:
            self.state.refused += 1


def _quiet_on_disconnect(server, request, client_address) -> None:
    if not isinstance(sys.exc_info()[1], ConnectionError):
        ThreadingHTTPServer.handle_error(server, request, client_address)


class CountingServer:
    """``with Fake() as fake:`` serves on ``fake.url`` in a background thread; ``fake.api_url``
    is what the provider's API URL setting is set to."""

    handler: type[CountingHandler]
    state_class: type[CountingState] = CountingState
    name: str  # the provider, for what a standalone run prints
    api_key: str
    api_path = "v3/"

    def __init__(self, port: int = 0, *, store: bool = True) -> None:
        self.state = self.state_class(store=store)
        self.state.api_key = self.api_key
        handler = type("Handler", (self.handler,), {"state": self.state})
        server_class = type(
            "Server",
            (ThreadingHTTPServer,),
            {"request_queue_size": 128, "handle_error": _quiet_on_disconnect},
        )
        self.server = server_class(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def api_url(self) -> str:
        return self.url + self.api_path

    @classmethod
    def serve_standalone(cls, description: str, default_port: int) -> None:
        """``python -m devtools.fakes.<provider>``: serve until interrupted (the benchmark)."""
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--port", type=int, default=default_port)
        parser.add_argument("--no-store", dest="store", action="store_false")
        args = parser.parse_args()
        with cls(args.port, store=args.store) as fake:
            print(f"fake {cls.name} at {fake.api_url} (key {cls.api_key})", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                fake.thread.join()
