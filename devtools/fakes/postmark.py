"""A local fake of Postmark's send API, for the real Anymail backend to talk HTTP to.

It implements ``POST /email`` and ``POST /email/batch`` the way Postmark documents them: the
server token header is required, bodies are validated, a batch holds at most 500 messages, and
each message in a batch gets its own result (``ErrorCode`` 0 with a ``MessageID``, 300 for an
invalid recipient, 406 for an inactive one). Tests can make it answer 429 or 500, or go away
for a while, to exercise retries; be slow (``delay``: think before taking a call, so a client
that gives up first leaves a call the provider accepts late), take a call at once and answer
it late (``answer_delay``: a worker killed meanwhile leaves an accepted call unrecorded), and
have its message search fail for a while (``search_outage``).

It also counts what it received (calls, request and response bytes, messages, distinct and
repeated recipients), served at ``GET /_fake/stats`` and zeroed by ``POST /_fake/reset``. A
benchmark runs it with ``--no-store``: it then keeps only those counters (and a small hash per
recipient to spot duplicates) instead of every message, so its memory stays flat at any volume.

Run standalone (for benchmarks): ``python -m devtools.fakes.postmark --port 8025 [--no-store]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

from devtools.fakes.serving import peak_per_second

BATCH_LIMIT = 500
TOKEN = "fake-postmark-token"  # noqa: S105 - the fake's own token, not a secret
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _addr_spec(value: str) -> str:
    match = re.search(r"<([^>]*)>\s*$", value)
    return (match.group(1) if match else value).strip()


@dataclass
class FakePostmarkState:
    """What the fake received, and how it should misbehave next."""

    token: str = TOKEN
    messages: list[dict] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)
    inactive: set[str] = field(default_factory=set)
    delay: float = 0.0  # seconds to think before taking a send, like a real API under load
    answer_delay: float = 0.0  # seconds between taking a send (recorded) and answering it
    # False: keep counters only, not the messages (GET /messages/outbound then finds nothing).
    store: bool = True
    retry_after: str = "1"  # the Retry-After header of its 429 answers
    # (arrival time, messages accepted) of each send call, for checks of the send rate
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    largest_call: int = 0  # bytes of the largest request body
    accepted: int = 0
    refused: int = 0
    duplicates: int = 0
    _seen: set[bytes] = field(default_factory=set)
    _failures: list[int] = field(default_factory=list)
    _down_until: float = 0.0
    _search_down_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next calls with these HTTP statuses (e.g. 429, 500) before recovering."""
        with self.lock:
            self._failures.extend(statuses)

    def outage(self, seconds: float) -> None:
        """Answer 503 to every call for this long."""
        with self.lock:
            self._down_until = time.monotonic() + seconds

    def search_outage(self, seconds: float) -> None:
        """Answer 503 to every message search for this long (0: search works again)."""
        with self.lock:
            self._search_down_until = time.monotonic() + seconds

    def search_down(self) -> bool:
        with self.lock:
            return time.monotonic() < self._search_down_until

    def peak_per_second(self) -> int:
        """The most messages accepted in calls that arrived within any one second."""
        with self.lock:
            return peak_per_second(self.arrivals)

    def recipients(self) -> list[str]:
        with self.lock:
            return [_addr_spec(m["To"]) for m in self.messages]

    def stats(self) -> dict[str, object]:
        with self.lock:
            stats = {
                "calls": dict(self.calls),
                "http_calls": sum(self.calls.values()),
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "largest_call_bytes": self.largest_call,
                "accepted": self.accepted,
                "refused": self.refused,
                "distinct_recipients": len(self._seen),
                "duplicates": self.duplicates,
            }
        stats["peak_per_second"] = self.peak_per_second()  # takes the lock itself
        return stats

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.calls.clear()
            self._seen.clear()
            self.arrivals.clear()
            self.bytes_in = self.bytes_out = self.accepted = self.refused = self.duplicates = 0
            self.largest_call = 0

    def _record(self, message: dict, message_id: str) -> None:
        # 8 bytes per recipient address: enough to count repeats at a million recipients.
        digest = hashlib.blake2b(
            str(message["To"]).lower().encode(), digest_size=8, usedforsecurity=False
        ).digest()
        with self.lock:
            self.accepted += 1
            if digest in self._seen:
                self.duplicates += 1
            else:
                self._seen.add(digest)
            if self.store:
                self.messages.append({**message, "_MessageID": message_id})

    def _take_failure(self) -> int | None:
        with self.lock:
            if time.monotonic() < self._down_until:
                return 503
            return self._failures.pop(0) if self._failures else None


class _Handler(BaseHTTPRequestHandler):
    state: FakePostmarkState
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body then waits
    # for the client's delayed ACK (40 ms on Linux) on every call. Real servers turn it off.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet

    def _reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        with self.state.lock:
            self.state.bytes_out += len(data)

    def do_GET(self) -> None:
        """``GET /messages/outbound``: Postmark's search of sent messages, by metadata."""
        url = urlsplit(self.path)
        if url.path == "/_fake/stats":
            return self._reply(200, self.state.stats())
        if url.path != "/messages/outbound":
            return self._reply(404, {"ErrorCode": 404, "Message": "Not found"})
        if self.headers.get("X-Postmark-Server-Token") != self.state.token:
            return self._reply(401, {"ErrorCode": 10, "Message": "Bad token"})
        if self.state.search_down():
            return self._reply(503, {"ErrorCode": 503, "Message": "Search unavailable"})
        query = parse_qs(url.query)
        count, offset = int(query["count"][0]), int(query.get("offset", ["0"])[0])
        wanted = {
            k[len("metadata_") :]: v[0] for k, v in query.items() if k.startswith("metadata_")
        }
        with self.state.lock:
            matches = [
                m
                for m in self.state.messages
                if all(str((m.get("Metadata") or {}).get(k)) == v for k, v in wanted.items())
            ]
        page = matches[offset : offset + count]
        return self._reply(
            200,
            {
                "TotalCount": len(matches),
                "Messages": [
                    {
                        "MessageID": m["_MessageID"],
                        "To": [{"Email": _addr_spec(m["To"]), "Name": None}],
                        "Subject": m["Subject"],
                        "Metadata": m.get("Metadata") or {},
                        "Status": "Sent",
                    }
                    for m in page
                ],
            },
        )

    def do_POST(self) -> None:
        arrived = time.time()  # when the call reached the provider: what its rate limit counts
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        state = self.state
        if self.path == "/_fake/reset":
            state.reset()
            return self._reply(200, {"reset": True})
        with state.lock:
            state.calls[self.path] += 1
            state.bytes_in += len(raw)
            state.largest_call = max(state.largest_call, len(raw))
        if self.path not in {"/email", "/email/batch"}:
            return self._reply(404, {"ErrorCode": 404, "Message": "Not found"})
        if state.delay:
            time.sleep(state.delay)
        failure = state._take_failure()
        if failure == 429:
            return self._reply(
                429,
                {"ErrorCode": 429, "Message": "Rate limit exceeded"},
                {"Retry-After": state.retry_after},
            )
        if failure:
            return self._reply(failure, {"ErrorCode": failure, "Message": "Internal error"})
        if self.headers.get("X-Postmark-Server-Token") != state.token:
            return self._reply(
                401,
                {
                    "ErrorCode": 10,
                    "Message": "No Account or Server API tokens were supplied in the HTTP headers.",
                },
            )
        if self.headers.get("Accept") != "application/json":
            return self._reply(406, {"ErrorCode": 406, "Message": "Accept must be JSON"})
        try:
            # orjson parses the bytes as they came: a batch call is megabytes of JSON, and
            # the fake shares the benchmark machine's two cores with the workers it measures.
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._reply(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
        if self.path == "/email/batch":
            if not isinstance(body, list):
                return self._reply(422, {"ErrorCode": 402, "Message": "Expected a JSON array."})
            if len(body) > BATCH_LIMIT:
                return self._reply(
                    422, {"ErrorCode": 300, "Message": f"Batch exceeds {BATCH_LIMIT} messages."}
                )
            results = [self._accept(m) for m in body]
            self._arrived(arrived, sum(1 for r in results if r.get("ErrorCode") == 0))
            self._answer_late()
            return self._reply(200, results)
        result = self._accept(body)
        self._arrived(arrived, 1 if result["ErrorCode"] == 0 else 0)
        self._answer_late()
        return self._reply(200 if result["ErrorCode"] == 0 else 422, result)

    def _arrived(self, when: float, accepted: int) -> None:
        with self.state.lock:
            self.state.arrivals.append((when, accepted))

    def _answer_late(self) -> None:
        if self.state.answer_delay:
            time.sleep(self.state.answer_delay)

    def _accept(self, message: object) -> dict:
        now = datetime.now(UTC).isoformat()
        result = self._check(message)
        if result is not None:
            with self.state.lock:
                self.state.refused += 1
            return result
        message_id = str(uuid.uuid4())
        self.state._record(message, message_id)
        return {
            "ErrorCode": 0,
            "Message": "OK",
            "MessageID": message_id,
            "SubmittedAt": now,
            "To": message["To"],
        }

    def _check(self, message: object) -> dict | None:
        """Postmark's error answer for an unacceptable message; None if it is fine."""
        if not isinstance(message, dict):
            return {"ErrorCode": 402, "Message": "Invalid message."}
        for required in ("From", "To", "Subject"):
            if not message.get(required):
                return {"ErrorCode": 300, "Message": f"Invalid email request: '{required}'."}
        if not (message.get("HtmlBody") or message.get("TextBody")):
            return {"ErrorCode": 300, "Message": "Provide either email TextBody or HtmlBody."}
        recipients = [_addr_spec(a) for a in str(message["To"]).split(",")]
        for address in recipients:
            if not ADDRESS.match(address):
                return {
                    "ErrorCode": 300,
                    "Message": f"Error parsing 'To': Illegal email address '{address}'. "
                    "It must contain the '@' symbol.",
                }
        inactive = [a for a in recipients if a.lower() in self.state.inactive]
        if inactive and len(inactive) == len(recipients):
            return {
                "ErrorCode": 406,
                "Message": "You tried to send to a recipient that has been marked as inactive.\n"
                f"Found inactive addresses: {', '.join(inactive)}.\n"
                "Inactive recipients are ones that have generated a hard bounce or a spam "
                "complaint. ",
            }
        return None


def _quiet_on_disconnect(server, request, client_address) -> None:
    """A client that gave up (timed out, or was killed) before the answer is expected here."""
    if not isinstance(sys.exc_info()[1], ConnectionError):
        ThreadingHTTPServer.handle_error(server, request, client_address)


class FakePostmark:
    """Serves the fake on 127.0.0.1 in a background thread."""

    def __init__(self, port: int = 0, *, store: bool = True) -> None:
        self.state = FakePostmarkState(store=store)
        handler = type("Handler", (_Handler,), {"state": self.state})
        # A listen backlog like a real server's: clients opening many connections at once
        # (one per call) must queue, not be refused as if the provider were down.
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

    def __enter__(self) -> FakePostmark:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument(
        "--no-store",
        dest="store",
        action="store_false",
        help="count messages without keeping them (benchmarks: memory stays flat)",
    )
    parser.add_argument(
        "--answer-delay", type=float, default=0.0, help="seconds before each answer (an RTT)"
    )
    args = parser.parse_args()
    with FakePostmark(args.port, store=args.store) as fake:
        fake.state.answer_delay = args.answer_delay
        print(f"fake Postmark at {fake.url} (token {TOKEN})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            fake.thread.join()


if __name__ == "__main__":
    main()
