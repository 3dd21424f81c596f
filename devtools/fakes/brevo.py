"""A local stand-in for Brevo's transactional send API (v3), written from its documented shapes.

``POST /v3/smtp/email`` with an ``api-key`` header and a JSON body of sender/to/subject/
htmlContent/textContent/headers/params answers 201 ``{"messageId": "<...@smtp-relay.mailin.fr>"}``.
A batch send carries ``messageVersions`` instead of ``to`` (at most 1,000), each with its
``to``, ``params`` and ``headers`` (and optionally its own subject or content), and is
answered ``{"messageIds": [...]}``, one per version. Each recipient's copy is generated as
Brevo does: its template language (devtools/fakes/templating.py) run over the subject and
both bodies with the version's params over the top-level ones, its headers the top-level
ones with the version's over them; that copy is what ``messages`` keeps, one entry per
recipient. A template Brevo cannot render is refused (400 ``invalid_parameter``).

Errors are ``{"code": ..., "message": ...}``: 401 ``unauthorized`` (key not found), 400
``invalid_parameter`` (a bad address; Brevo also answers 400 for a blocked contact, refusing
the whole call), 429 with the ``x-sib-ratelimit-limit/-remaining/-reset`` headers, 500.
Brevo's event log cannot be searched by our metadata, so the fake has no search either.

Run standalone (for benchmarks): ``python -m devtools.fakes.brevo --port N [--no-store]``.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake
from devtools.fakes.templating import TemplateError, render_brevo

API_KEY = "xkeysib-test"
VERSIONS_LIMIT = 1000


@dataclass
class FakeBrevoState:
    api_key: str = API_KEY
    messages: list[dict] = field(default_factory=list)  # each recipient's copy, with "_id"
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
        versions = message.get("messageVersions") if isinstance(message, dict) else None
        if versions is not None and not (isinstance(versions, list) and versions):
            return self.reply(400, {"code": "invalid_parameter", "message": "messageVersions"})
        if versions is not None and len(versions) > VERSIONS_LIMIT:
            problem = f"messageVersions may hold at most {VERSIONS_LIMIT} versions"
            return self.reply(400, {"code": "invalid_parameter", "message": problem})
        batch = versions is not None
        versions = versions or [{}]
        problem = self._check(message, versions, state)
        if problem:
            return self.reply(400, {"code": "invalid_parameter", "message": problem})
        ids = [f"<{uuid.uuid4().hex}@smtp-relay.mailin.fr>" for _ in versions]
        try:
            copies = [
                copy
                for version, message_id in zip(versions, ids, strict=True)
                for copy in _copies(message, version, message_id)
            ]
        except TemplateError as error:
            return self.reply(400, {"code": "invalid_parameter", "message": str(error)})
        self.counters.accepted_count([c["to"][0]["email"] for c in copies], arrived)
        if self.counters.store:
            with state.lock:
                state.messages.extend(copies)
        self.reply(201, {"messageIds": ids} if batch else {"messageId": ids[0]})

    @staticmethod
    def _check(message: object, versions: list, state: FakeBrevoState) -> str | None:
        if not isinstance(message, dict):
            return "body must be an object"
        if not (isinstance(message.get("sender"), dict) and message["sender"].get("email")):
            return "sender is missing"
        if not message.get("subject"):
            return "subject is missing"
        if not (message.get("htmlContent") or message.get("textContent")):
            return "htmlContent or textContent is missing"
        for version in versions:
            for to in version.get("to") or message.get("to") or [{}]:
                address = to.get("email", "")
                if "@" not in address:
                    return "email is not valid in to"
                if address.lower() in state.blocked:
                    return f"{address} is blocked"
        return None


def _copies(message: dict, version: dict, message_id: str) -> list[dict]:
    """Each recipient's message of one version, as Brevo renders it."""
    params = {**(message.get("params") or {}), **(version.get("params") or {})}
    rendered = {}
    for name in ("subject", "htmlContent", "textContent"):
        value = version.get(name) or message.get(name)
        if value is not None:
            rendered[name] = render_brevo(value, params, html_body=name == "htmlContent")
    headers = {**(message.get("headers") or {}), **(version.get("headers") or {})}
    return [
        {**rendered, "to": [to], "sender": message["sender"], "headers": headers, "_id": message_id}
        for to in version.get("to") or message["to"]
    ]


class FakeBrevo(LocalFake):
    """``with FakeBrevo() as fake:`` serves on ``fake.url`` (the v3 base) until the block ends."""

    state: FakeBrevoState
    state_class = FakeBrevoState
    handler_class = _Handler
    base_path = "/v3/"
    name = "Brevo"


if __name__ == "__main__":
    FakeBrevo.serve_standalone(__doc__.splitlines()[0])
