"""A local stand-in for Resend's send API, written from its documented shapes.

``POST /emails`` (Bearer key) with a JSON body of from/to/subject/html/text/headers answers
200 ``{"id": "<uuid>"}``. ``POST /emails/batch`` takes a JSON list of up to 100 such emails
(no ``attachments`` or ``scheduled_at``) and answers 200 ``{"data": [{"id": ...}, ...]}``, one
id per email created, in the order sent. Its ``x-batch-validation`` header chooses how an
invalid email is met: ``strict`` (the default) refuses the whole call with that email's 422;
``permissive`` creates the others and lists each invalid one in ``"errors": [{"index": i,
"message": ...}]`` (present only in that mode; emails past the 100th are errors too).
Errors are ``{"statusCode": n, "name": ..., "message": ...}``: 401
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
BATCH_LIMIT = 100  # emails per /emails/batch call
TOO_MANY = "The batch contains more than 100 emails."
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
        path = self.path.rstrip("/")
        if path not in ("/emails", "/emails/batch"):
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
            body = json.loads(raw)
        except ValueError:
            return self._error(422, "validation_error", "Invalid JSON body")
        if path == "/emails/batch":
            return self._batch(body, arrived, state)
        problem = self._check(body, state)
        if problem:
            return self._error(422, "validation_error", problem)
        [message_id] = self._create([body], arrived, state)
        self.reply(200, {"id": message_id})

    def _batch(self, emails: object, arrived: float, state: FakeResendState) -> None:
        if not isinstance(emails, list) or not emails:
            return self._error(422, "validation_error", "The body must be a list of emails")
        permissive = self.headers.get("x-batch-validation", "strict").lower() == "permissive"
        if not permissive and len(emails) > BATCH_LIMIT:
            return self._error(422, "validation_error", TOO_MANY)
        errors = []
        for index, email in enumerate(emails):
            problem = TOO_MANY if index >= BATCH_LIMIT else self._check(email, state, batch=True)
            if problem and not permissive:
                return self._error(422, "validation_error", problem)
            if problem:
                errors.append({"index": index, "message": problem})
        refused = {e["index"] for e in errors}
        created = [email for index, email in enumerate(emails) if index not in refused]
        answer: dict = {"data": [{"id": i} for i in self._create(created, arrived, state)]}
        if permissive:
            answer["errors"] = errors
        self.reply(200, answer)

    def _create(self, emails: list[dict], arrived: float, state: FakeResendState) -> list[str]:
        """Take the emails (counted, and stored unless in bench mode); their ids."""
        ids = [str(uuid.uuid4()) for _ in emails]
        to = [a for email in emails for a in _addresses(email["to"])]
        self.counters.accepted_count(to, arrived)
        if self.counters.store:
            with state.lock:
                state.messages.extend({**e, "_id": i} for e, i in zip(emails, ids, strict=True))
        if state.answer_late:
            time.sleep(state.answer_late)  # taken, but the client may give up first
        return ids

    @staticmethod
    def _check(message: object, state: FakeResendState, *, batch: bool = False) -> str | None:
        if not isinstance(message, dict):
            return "The body must be an object"
        for name in ("from", "to", "subject"):
            if not message.get(name):
                return f"Missing `{name}` field."
        if batch:
            for name in ("attachments", "scheduled_at"):
                if name in message:
                    return f"The `{name}` field is not supported in batch emails."
        to = _addresses(message["to"])
        if len(to) > 50:
            return "Invalid `to` field. Too many recipients (max 50)."
        for address in to:
            if "@" not in address or address.lower() in state.suppressed:
                return f"Invalid `to` field. {address} is not a deliverable address."
        if not (message.get("html") or message.get("text")):
            return "Missing `html` or `text` field."
        return None


def _addresses(to: object) -> list[str]:
    return to if isinstance(to, list) else [to]


class FakeResend(LocalFake):
    """``with FakeResend() as fake:`` serves on ``fake.url`` until the block ends."""

    state: FakeResendState
    state_class = FakeResendState
    handler_class = _Handler
    base_path = "/"
    name = "Resend"


if __name__ == "__main__":
    FakeResend.serve_standalone(__doc__.splitlines()[0])
