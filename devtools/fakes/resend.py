"""A local stand-in for Resend's send API, written from its documented shapes.

``POST /emails`` (Bearer key) with a JSON body of from/to/subject/html/text/headers answers
200 ``{"id": "<uuid>"}``. Errors are ``{"statusCode": n, "name": ..., "message": ...}``: 401
``missing_api_key``/403 ``invalid_api_key``, 422 ``validation_error`` (a bad or suppressed
``to`` address), 429 ``rate_limit_exceeded`` with ``retry-after`` and the ``ratelimit-*``
headers (Resend's default is 2 requests per second), 500 ``internal_server_error``. Resend
has no search of sent mail by our metadata, so the fake has none either.

Run standalone (for benchmarks): ``python -m devtools.fakes.resend --port N [--no-store]``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake

API_KEY = "re_test_key"
ERROR_NAMES = {429: "rate_limit_exceeded", 500: "internal_server_error", 503: "application_error"}


@dataclass
class FakeResendState:
    api_key: str = API_KEY
    messages: list[dict] = field(default_factory=list)  # accepted bodies, with "_id"
    suppressed: set[str] = field(default_factory=set)  # addresses answered 422
    failures: list[int] = field(default_factory=list)  # statuses for the next calls
    calls: int = 0
    answer_late: float = 0  # seconds to wait after accepting, before answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def recipients(self) -> list[str]:
        with self.lock:
            return [to for m in self.messages for to in m["to"]]


class _Handler(FakeHandler):
    def _error(self, status: int, name: str, message: str, headers=None) -> None:
        self.reply(status, {"statusCode": status, "name": name, "message": message}, headers)

    def post(self, raw: bytes, arrived: float) -> None:
        state: FakeResendState = self.server.state
        with state.lock:
            state.calls += 1
            failure = state.failures.pop(0) if state.failures else None
        if self.path.rstrip("/") != "/emails":
            return self._error(404, "not_found", "The requested endpoint does not exist.")
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._error(401, "missing_api_key", "Missing API key in the authorization")
        if auth.removeprefix("Bearer ") != state.api_key:
            return self._error(403, "invalid_api_key", "API key is invalid")
        if failure == 429:
            limits = {"ratelimit-limit": "2", "ratelimit-remaining": "0", "ratelimit-reset": "1"}
            return self._error(
                429, ERROR_NAMES[429], "Too many requests.", {"retry-after": "1", **limits}
            )
        if failure:
            return self._error(failure, ERROR_NAMES.get(failure, "application_error"), "error")
        try:
            message = json.loads(raw)
        except ValueError:
            return self._error(422, "validation_error", "Invalid JSON body")
        problem = self._check(message, state)
        if problem:
            return self._error(422, "validation_error", problem)
        message_id = str(uuid.uuid4())
        to = message["to"] if isinstance(message["to"], list) else [message["to"]]
        self.counters.accepted_count(to, arrived)
        if self.counters.store:
            with state.lock:
                state.messages.append({**message, "_id": message_id})
        if state.answer_late:
            time.sleep(state.answer_late)  # taken, but the client may give up first
        self.reply(200, {"id": message_id})

    @staticmethod
    def _check(message: object, state: FakeResendState) -> str | None:
        if not isinstance(message, dict):
            return "The body must be an object"
        for name in ("from", "to", "subject"):
            if not message.get(name):
                return f"Missing `{name}` field."
        to = message["to"] if isinstance(message["to"], list) else [message["to"]]
        if len(to) > 50:
            return "Invalid `to` field. Too many recipients (max 50)."
        for address in to:
            if "@" not in address or address.lower() in state.suppressed:
                return f"Invalid `to` field. {address} is not a deliverable address."
        if not (message.get("html") or message.get("text")):
            return "Missing `html` or `text` field."
        return None


class FakeResend(LocalFake):
    """``with FakeResend() as fake:`` serves on ``fake.url`` until the block ends."""

    state: FakeResendState
    state_class = FakeResendState
    handler_class = _Handler
    base_path = "/"
    name = "Resend"


if __name__ == "__main__":
    FakeResend.serve_standalone(__doc__.splitlines()[0])
