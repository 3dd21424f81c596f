"""A local stand-in for Brevo's transactional send API (v3), written from its documented shapes.

``POST /v3/smtp/email`` with an ``api-key`` header and a JSON body of sender/to/subject/
htmlContent/textContent/headers answers 201 ``{"messageId": "<...@smtp-relay.mailin.fr>"}``.
Errors are ``{"code": ..., "message": ...}``: 401 ``unauthorized`` (key not found), 400
``invalid_parameter`` (a bad address; Brevo also answers 400 for a blocked contact), 429 with
the ``x-sib-ratelimit-limit/-remaining/-reset`` headers, 500. Brevo's event log cannot be
searched by our metadata, so the fake has no search either.

Run standalone (for benchmarks): ``python -m devtools.fakes.brevo --port N [--no-store]``.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake

API_KEY = "xkeysib-test"


@dataclass
class FakeBrevoState:
    api_key: str = API_KEY
    messages: list[dict] = field(default_factory=list)  # accepted bodies, with "_id"
    blocked: set[str] = field(default_factory=set)  # addresses answered 400
    failures: list[int] = field(default_factory=list)  # statuses for the next calls
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def recipients(self) -> list[str]:
        with self.lock:
            return [to["email"] for m in self.messages for to in m["to"]]


class _Handler(FakeHandler):
    def post(self, raw: bytes, arrived: float) -> None:
        state: FakeBrevoState = self.server.state
        with state.lock:
            state.calls += 1
            failure = state.failures.pop(0) if state.failures else None
        if self.path.rstrip("/") != "/v3/smtp/email":
            return self.reply(404, {"code": "not_found", "message": "Invalid route"})
        if self.headers.get("api-key") != state.api_key:
            return self.reply(401, {"code": "unauthorized", "message": "Key not found"})
        if failure == 429:
            limits = {
                "x-sib-ratelimit-limit": "10",
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": "1",
            }
            return self.reply(429, {"code": "too_many_requests", "message": "slow down"}, limits)
        if failure:
            return self.reply(failure, {"code": "internal_error", "message": "error"})
        try:
            message = json.loads(raw)
        except ValueError:
            return self.reply(400, {"code": "bad_request", "message": "Invalid JSON"})
        problem = self._check(message, state)
        if problem:
            return self.reply(400, {"code": "invalid_parameter", "message": problem})
        message_id = f"<{uuid.uuid4().hex}@smtp-relay.mailin.fr>"
        self.counters.accepted_count([to["email"] for to in message["to"]], arrived)
        if self.counters.store:
            with state.lock:
                state.messages.append({**message, "_id": message_id})
        self.reply(201, {"messageId": message_id})

    @staticmethod
    def _check(message: object, state: FakeBrevoState) -> str | None:
        if not isinstance(message, dict):
            return "body must be an object"
        if not (isinstance(message.get("sender"), dict) and message["sender"].get("email")):
            return "sender is missing"
        if not message.get("subject"):
            return "subject is missing"
        if not (message.get("htmlContent") or message.get("textContent")):
            return "htmlContent or textContent is missing"
        for to in message.get("to") or [{}]:
            address = to.get("email", "")
            if "@" not in address:
                return "email is not valid in to"
            if address.lower() in state.blocked:
                return f"{address} is blocked"
        return None


class FakeBrevo(LocalFake):
    """``with FakeBrevo() as fake:`` serves on ``fake.url`` (the v3 base) until the block ends."""

    state: FakeBrevoState
    state_class = FakeBrevoState
    handler_class = _Handler
    base_path = "/v3/"
    name = "Brevo"


if __name__ == "__main__":
    FakeBrevo.serve_standalone(__doc__.splitlines()[0])
