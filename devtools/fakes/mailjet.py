"""A local stand-in for Mailjet's Send API v3.1, written from its documented shapes.

``POST /v3.1/send`` (basic auth, API key and secret) with ``{"Globals": {...}, "Messages":
[{From, To, Subject, TextPart, HTMLPart, Headers, EventPayload}]}`` (each message inherits
Globals) answers 200 with ``{"Messages": [{"Status": "success", "To": [{"Email",
"MessageUUID", "MessageID", "MessageHref"}]}]}``. A message Mailjet will not send makes the
answer 400 with that message's ``{"Status": "error", "Errors": [{"ErrorCode": "mj-00xx",
"StatusCode": 400, "ErrorMessage", "ErrorRelatedTo"}]}``; a bad key is 401 with
``{"ErrorMessage", "StatusCode": 401}``; too many calls 429 with Retry-After; 500; more than
50 messages in one call 400. Mailjet's message API cannot be searched by our metadata, so the
fake has no search.

With ``"TemplateLanguage": true`` (in Globals or the message) Mailjet runs its template
language (devtools/fakes/templating.py) over the subject and both parts, with the message's
``Variables`` over the Globals' ones: that rendered message is what ``messages`` keeps.
Without it the parts are sent as written. A template Mailjet cannot render (a variable with
no value, an unclosed delimiter) makes Mailjet block the message (its TemplateErrorDeliver
default); the fake answers it as that message's error, so a test sees it.

Run standalone (for benchmarks): ``python -m devtools.fakes.mailjet --port N [--no-store]``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake
from devtools.fakes.templating import TemplateError, render_mailjet

API_KEY, SECRET_KEY = "mj-key", "mj-secret"
MESSAGES_LIMIT = 50


@dataclass
class FakeMailjetState:
    credentials: tuple[str, str] = (API_KEY, SECRET_KEY)
    messages: list[dict] = field(default_factory=list)  # accepted, Globals merged in, "_id"
    blocked: set[str] = field(default_factory=set)  # recipients whose message is refused
    failures: list[int] = field(default_factory=list)
    next_id: int = 288230376151711744
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def recipients(self) -> list[str]:
        with self.lock:
            return [to["Email"] for m in self.messages for to in m["To"]]


class _Handler(FakeHandler):
    def _authorized(self, state: FakeMailjetState) -> bool:
        expected = base64.b64encode(":".join(state.credentials).encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def post(self, raw: bytes, arrived: float) -> None:
        state: FakeMailjetState = self.server.state
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if self.path.rstrip("/") != "/v3.1/send":
            return self.reply(404, {"ErrorMessage": "Object not found", "StatusCode": 404})
        if not self._authorized(state):
            message = "API key authentication/authorization failure. You may be unauthorized"
            return self.reply(401, {"ErrorInfo": "", "ErrorMessage": message, "StatusCode": 401})
        if failure == 429:
            body = {"ErrorInfo": "", "ErrorMessage": "Too many requests", "StatusCode": 429}
            return self.reply(429, body, {"Retry-After": "1"})
        if failure:
            return self.reply(failure, {"ErrorMessage": "Internal error", "StatusCode": failure})
        try:
            body = json.loads(raw)
            shared = body.get("Globals", {})
            messages = [_inherit(shared, m) for m in body["Messages"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.reply(400, {"ErrorMessage": "Invalid JSON", "StatusCode": 400})
        if len(messages) > MESSAGES_LIMIT:
            problem = f"Messages may hold at most {MESSAGES_LIMIT} messages"
            return self.reply(
                400, {"ErrorMessage": problem, "StatusCode": 400, "ErrorCode": "mj-0003"}
            )
        results = [self._one(state, message, arrived) for message in messages]
        ok = all(r["Status"] == "success" for r in results)
        self.reply(200 if ok else 400, {"Messages": results})

    def _one(self, state: FakeMailjetState, message: dict, arrived: float) -> dict:
        to = message.get("To") or []
        refused = [t["Email"] for t in to if t.get("Email", "").lower() in state.blocked]
        if refused or not to or not message.get("From"):
            return _error(
                "mj-0013",
                f'"{refused[0] if refused else ""}" is an invalid email address.',
                "To[0].Email",
            )
        try:
            message = _rendered(message)
        except TemplateError as problem:
            return _error("mj-template", f"template language error: {problem}", "HTMLPart")
        answered = []
        with state.lock:
            for recipient in to:
                state.next_id += 1
                answered.append(
                    {
                        "Email": recipient["Email"],
                        "MessageUUID": str(uuid.uuid4()),
                        "MessageID": state.next_id,
                        "MessageHref": f"https://api.mailjet.com/v3/REST/message/{state.next_id}",
                    }
                )
            if self.counters.store:
                state.messages.append({**message, "_id": str(answered[0]["MessageID"])})
        self.counters.accepted_count([t["Email"] for t in to], arrived)
        return {"Status": "success", "CustomID": "", "To": answered, "Cc": [], "Bcc": []}


def _inherit(shared: dict, message: dict) -> dict:
    """A message with what it does not set taken from Globals (Variables merged)."""
    merged = {**shared, **message}
    if "Variables" in shared or "Variables" in message:
        merged["Variables"] = {**shared.get("Variables", {}), **message.get("Variables", {})}
    return merged


def _rendered(message: dict) -> dict:
    if not message.get("TemplateLanguage"):
        return message
    variables = message.get("Variables") or {}
    rendered = dict(message)
    for name in ("Subject", "TextPart", "HTMLPart"):
        if message.get(name) is not None:
            rendered[name] = render_mailjet(message[name], variables, html_body=name == "HTMLPart")
    return rendered


def _error(code: str, text: str, related: str) -> dict:
    error = {
        "ErrorIdentifier": str(uuid.uuid4()),
        "ErrorCode": code,
        "StatusCode": 400,
        "ErrorMessage": text,
        "ErrorRelatedTo": [related],
    }
    return {"Status": "error", "Errors": [error]}


class FakeMailjet(LocalFake):
    """``with FakeMailjet() as fake:`` serves on ``fake.url`` (the v3.1 base)."""

    state: FakeMailjetState
    state_class = FakeMailjetState
    handler_class = _Handler
    base_path = "/v3.1/"
    name = "Mailjet"


if __name__ == "__main__":
    FakeMailjet.serve_standalone(__doc__.splitlines()[0])
