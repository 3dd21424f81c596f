"""A local stand-in for SparkPost's Transmissions API, written from its documented shapes.

``POST /api/v1/transmissions`` (``Authorization: <key>``) with recipients, content (from,
subject, html, text, headers) and metadata answers 200 ``{"results": {"id": ...,
"total_accepted_recipients": n, "total_rejected_recipients": 0}}``. Errors are
``{"errors": [{"message": ..., "code": ..., "description": ...}]}``: 401 (key), 420 when a
recipient is on the account's suppression list (code 1902, "Message generation rejected"),
429 "Too many requests" with Retry-After, 500. SparkPost's message events can be searched,
but only for hours later and not by our metadata at send time, so Paperboy does not ask it.

Run standalone (for benchmarks): ``python -m devtools.fakes.sparkpost --port N [--no-store]``.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake

API_KEY = "sparkpost-test-key"


@dataclass
class FakeSparkPostState:
    api_key: str = API_KEY
    transmissions: list[dict] = field(default_factory=list)  # accepted bodies, with "_id"
    suppressed: set[str] = field(default_factory=set)  # recipients answered 420
    failures: list[int] = field(default_factory=list)  # statuses for the next calls
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def recipients(self) -> list[str]:
        with self.lock:
            return [r["address"]["email"] for t in self.transmissions for r in t["recipients"]]


def _errors(message: str, code: str, description: str = "") -> dict:
    return {"errors": [{"message": message, "code": code, "description": description}]}


class _Handler(FakeHandler):
    def post(self, raw: bytes, arrived: float) -> None:
        state: FakeSparkPostState = self.server.state
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if self.path.rstrip("/") != "/api/v1/transmissions":
            return self.reply(404, _errors("resource not found", "1600"))
        if self.headers.get("Authorization") != state.api_key:
            return self.reply(401, _errors("Unauthorized.", "1000"))
        if failure == 429:
            return self.reply(429, _errors("Too many requests", "1300"), {"Retry-After": "1"})
        if failure:
            return self.reply(failure, _errors("Internal error", "1500"))
        try:
            body = json.loads(raw)
            recipients = [r["address"]["email"] for r in body["recipients"]]
            content = body["content"]
        except (ValueError, KeyError, TypeError):
            return self.reply(422, _errors("invalid data format/type", "1300"))
        if not (content.get("from") and content.get("subject")):
            return self.reply(422, _errors("required field is missing", "1400"))
        blocked = [r for r in recipients if r.lower() in state.suppressed]
        if blocked and len(blocked) == len(recipients):
            return self.reply(
                420,
                _errors(
                    "Message generation rejected",
                    "1902",
                    f"recipient address was suppressed due to customer policy: {blocked[0]}",
                ),
            )
        transmission_id = str(uuid.uuid4().int)[:18]
        self.counters.accepted_count(recipients, arrived)
        if self.counters.store:
            with state.lock:
                state.transmissions.append({**body, "_id": transmission_id})
        results = {
            "id": transmission_id,
            "total_accepted_recipients": len(recipients),
            "total_rejected_recipients": 0,
        }
        self.reply(200, {"results": results})


class FakeSparkPost(LocalFake):
    """``with FakeSparkPost() as fake:`` serves on ``fake.url`` (the v1 base)."""

    state: FakeSparkPostState
    state_class = FakeSparkPostState
    handler_class = _Handler
    base_path = "/api/v1/"
    name = "SparkPost"


if __name__ == "__main__":
    FakeSparkPost.serve_standalone(__doc__.splitlines()[0])
