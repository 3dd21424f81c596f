"""A local stand-in for SparkPost's Transmissions API, written from its documented shapes.

``POST /api/v1/transmissions`` (``Authorization: <key>``) with recipients (each an
``address`` with its own ``substitution_data`` and ``metadata``), content (from, subject,
html, text, headers), and top-level ``substitution_data`` and ``metadata`` answers 200
``{"results": {"id": ..., "total_accepted_recipients": n, "total_rejected_recipients": 0}}``.
Each recipient's copy is generated as SparkPost does: its template language
(devtools/fakes/templating.py) run over the subject, headers and both bodies with the
recipient's values over the transmission's (substitution_data over metadata), its metadata
the transmission's with its own over it; that copy is what ``transmissions`` keeps, one entry
per recipient. A template SparkPost cannot generate is refused (422, code 3000).

Errors are ``{"errors": [{"message": ..., "code": ..., "description": ...}]}``: 401 (key),
420 when the one recipient of a transmission is on the account's suppression list (code
1902, "Message generation rejected"), 429 "Too many requests" with Retry-After, 500. In a
transmission of several recipients SparkPost accepts a suppressed one at first and rejects it
afterwards with a ``policy_rejection`` event: the fake counts it accepted, generates no copy
for it and keeps the ``policy_rejection`` event SparkPost would post to the tracking webhook in
``events`` (a webhook batch each). SparkPost's message events can be searched, but
only for hours later and not by our metadata at send time, so Paperboy does not ask it.

Run standalone (for benchmarks): ``python -m devtools.fakes.sparkpost --port N [--no-store]``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake
from devtools.fakes.templating import TemplateError, render_sparkpost

API_KEY = "sparkpost-test-key"


@dataclass
class FakeSparkPostState:
    api_key: str = API_KEY
    # Each recipient's generated copy: {"recipients": [it], "content", "metadata", "_id"}.
    transmissions: list[dict] = field(default_factory=list)
    suppressed: set[str] = field(default_factory=set)  # the suppression list
    events: list[list[dict]] = field(default_factory=list)  # webhook posts it would make
    # Recipients the next transmissions count as rejected in their totals, without saying
    # which (SparkPost's answer names none): how a mixed answer looks.
    rejected_in_totals: int = 0
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
        if blocked and len(recipients) == 1:  # inline only for a single recipient
            return self.reply(
                420,
                _errors(
                    "Message generation rejected",
                    "1902",
                    f"recipient address was suppressed due to customer policy: {blocked[0]}",
                ),
            )
        transmission_id = str(uuid.uuid4().int)[:18]
        try:
            copies = [
                _copy(body, one, transmission_id)
                for one in body["recipients"]
                if one["address"]["email"].lower() not in state.suppressed
            ]
        except TemplateError as error:
            return self.reply(422, _errors("substitution language errors", "3000", str(error)))
        self.counters.accepted_count(recipients, arrived)
        with state.lock:
            state.events.extend(
                _policy_rejection(body, one, transmission_id)
                for one in body["recipients"]
                if one["address"]["email"].lower() in state.suppressed
            )
            if self.counters.store:
                state.transmissions.extend(copies)
        rejected = min(state.rejected_in_totals, len(recipients))
        results = {
            "id": transmission_id,
            "total_accepted_recipients": len(recipients) - rejected,
            "total_rejected_recipients": rejected,
        }
        self.reply(200, {"results": results})


def _copy(body: dict, recipient: dict, transmission_id: str) -> dict:
    """One recipient's message as SparkPost generates it from the transmission."""
    metadata = {**(body.get("metadata") or {}), **(recipient.get("metadata") or {})}
    values = {
        **metadata,
        **(body.get("substitution_data") or {}),
        **(recipient.get("substitution_data") or {}),
    }
    content = dict(body["content"])
    for name in ("subject", "text", "html"):
        if content.get(name) is not None:
            content[name] = render_sparkpost(content[name], values, html_body=name == "html")
    content["headers"] = {
        header: render_sparkpost(value, values, html_body=False)
        for header, value in (content.get("headers") or {}).items()
    }
    return {
        "recipients": [recipient],
        "content": content,
        "metadata": metadata,
        "campaign_id": body.get("campaign_id"),
        "_id": transmission_id,
    }


def _policy_rejection(body: dict, recipient: dict, transmission_id: str) -> list[dict]:
    """The webhook batch SparkPost posts when it rejects a suppressed recipient afterwards."""
    address = recipient["address"]["email"]
    event = {
        "type": "policy_rejection",
        "bounce_class": "25",
        "error_code": "554",
        "event_id": str(uuid.uuid4().int)[:17],
        "message_id": uuid.uuid4().hex[:20],
        "raw_rcpt_to": address,
        "rcpt_to": address,
        "rcpt_meta": {**(body.get("metadata") or {}), **(recipient.get("metadata") or {})},
        "raw_reason": "554 5.7.1 recipient address suppressed due to customer policy",
        "reason": "554 5.7.1 recipient address suppressed due to customer policy",
        "timestamp": str(int(time.time())),
        "transmission_id": transmission_id,
    }
    return [{"msys": {"message_event": event}}]


class FakeSparkPost(LocalFake):
    """``with FakeSparkPost() as fake:`` serves on ``fake.url`` (the v1 base)."""

    state: FakeSparkPostState
    state_class = FakeSparkPostState
    handler_class = _Handler
    base_path = "/api/v1/"
    name = "SparkPost"


if __name__ == "__main__":
    FakeSparkPost.serve_standalone(__doc__.splitlines()[0])
