"""A local stand-in for SendGrid's v3 Mail Send API, written from its documented shapes.

``POST /v3/mail/send`` (``Authorization: Bearer <key>``) takes JSON: ``from``, ``subject``,
``content`` (``text/plain`` then ``text/html``), ``headers``, ``categories``, ``custom_args``
and ``personalizations`` (1 to 1,000, at most 1,000 recipients in all), each with ``to`` and
optionally its own ``subject``, ``headers``, ``custom_args`` and ``substitutions``. Each
personalization is its own message: its substitutions (at most 10,000 bytes together) are
replaced, tag by tag as written, in the subject and in every content value, which is what the
fake stores per recipient. (SendGrid's "sections", which could have carried shared blocks
once per call, have been removed from the API; the fake ignores them as SendGrid now does.)

Answers: 202 with an empty body and ``X-Message-Id``; 400 ``{"errors": [{"message", "field",
"help"}]}`` naming the field (``personalizations.3.to.0.email`` for an address it refuses);
401 for a wrong key; 413 for a body over 30 MB; 429 (with the ``X-RateLimit-*`` headers) and
500 when told to (``fail_next``). SendGrid has no search of sent mail by our metadata at send
time, so neither has the fake.

Run standalone (for benchmarks): ``python -m devtools.fakes.sendgrid --port 8027 [--no-store]``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import orjson

from devtools.fakes.counting import CountingHandler, CountingState
from devtools.fakes.serving import LocalFake

API_KEY = "SG.test-key"
PERSONALIZATIONS_LIMIT = 1000
SUBSTITUTIONS_LIMIT = 10_000  # bytes per personalization
BODY_LIMIT = 30 * 1024 * 1024
ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+$")
ERROR_MESSAGES = {429: "too many requests", 500: "internal server error", 503: "unavailable"}


def errors(message: str, field: str | None = None) -> dict:
    return {"errors": [{"message": message, "field": field, "help": None}]}


def substitute(text: str, substitutions: dict[str, str]) -> str:
    for tag, value in substitutions.items():
        text = text.replace(tag, value)
    return text


class _Handler(CountingHandler):
    def send(self, path: str, headers, raw: bytes, arrived: float) -> None:
        if path.rstrip("/") != "/v3/mail/send":
            return self.reply(404, errors("not found"))
        if headers.get("Authorization", "") != f"Bearer {self.state.api_key}":
            return self.reply(
                401,
                errors("The provided authorization grant is invalid, expired, or revoked"),
            )
        if len(raw) > BODY_LIMIT:
            return self.reply(413, errors("Payload Too Large"))
        failure = self.state.take_failure()
        if failure == 429:
            limits = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
            return self.reply(429, errors(ERROR_MESSAGES[429]), {**limits, "Retry-After": "1"})
        if failure:
            return self.reply(failure, errors(ERROR_MESSAGES.get(failure, "error")))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.reply(400, errors("Bad Request", None))
        copies, problem = self._copies(body)
        if problem:
            return self.reply(400, errors(*problem))
        message_id = secrets.token_urlsafe(16)
        for one in copies:
            one["_id"] = message_id
        self.state.record(copies, arrived)
        self.reply(202, b"", {"X-Message-Id": message_id})

    def _copies(self, body: object) -> tuple[list[dict], tuple[str, str | None] | None]:
        if not isinstance(body, dict):
            return [], ("Bad Request", None)
        sender = body.get("from")
        if not isinstance(sender, dict) or not ADDRESS.match(str(sender.get("email", ""))):
            return [], ("The from object must be provided for every email send.", "from")
        content = body.get("content")
        if not isinstance(content, list) or not content:
            return [], ("Unless a valid template_id is provided, the content parameter is "
                        "required.", "content")  # fmt: skip
        for index, part in enumerate(content):
            if not isinstance(part, dict) or not part.get("value"):
                return [], ("The content value must be a string at least one character in "
                            "length.", f"content.{index}.value")  # fmt: skip
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            return [], ("You must have at least one personalization.", "personalizations")
        if len(personalizations) > PERSONALIZATIONS_LIMIT:
            return [], (
                "The personalization block is limited to 1000 personalizations per API "
                f"request. You have provided {len(personalizations)} personalizations.",
                "personalizations",
            )
        copies, seen = [], set()
        for index, one in enumerate(personalizations):
            to = one.get("to") if isinstance(one, dict) else None
            if not isinstance(to, list) or not to:
                return [], ("The to parameter is required for all personalization objects, "
                            "and must have at least one email object with a valid email "
                            "address.", f"personalizations.{index}.to")  # fmt: skip
            for position, recipient in enumerate(to):
                address = str(recipient.get("email", "")) if isinstance(recipient, dict) else ""
                if not ADDRESS.match(address) or address.lower() in self.state.refuse:
                    return [], (
                        "Does not contain a valid address.",
                        f"personalizations.{index}.to.{position}.email",
                    )
                if address.lower() in seen:
                    return [], (
                        "Each unique email address in the personalizations array should only "
                        "be included once.",
                        f"personalizations.{index}.to",
                    )
                seen.add(address.lower())
            substitutions = one.get("substitutions") or {}
            if not all(isinstance(v, str) for v in substitutions.values()):
                return [], ("Substitutions must be strings.", f"personalizations.{index}")
            size = sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())
            if size > SUBSTITUTIONS_LIMIT:
                return [], ("The total size of your substitutions may not exceed 10,000 bytes "
                            "per personalization object.", f"personalizations.{index}")  # fmt: skip
            subject = one.get("subject") or body.get("subject")
            if not subject:
                return [], ("The subject is required.", "subject")
            for recipient in to:
                copies.append(
                    {
                        "to": recipient["email"],
                        "from": sender,
                        "subject": substitute(subject, substitutions),
                        "content": {
                            part["type"]: substitute(part["value"], substitutions)
                            for part in content
                        },
                        "headers": {**(body.get("headers") or {}), **(one.get("headers") or {})},
                        "custom_args": {
                            **(body.get("custom_args") or {}),
                            **(one.get("custom_args") or {}),
                        },
                        "categories": body.get("categories") or [],
                    }
                )
        return copies, None


@dataclass
class FakeSendGridState(CountingState):
    api_key: str = API_KEY


class FakeSendGrid(LocalFake):
    """Its url is what SENDGRID_API_URL is set to: Anymail appends ``mail/send``."""

    state: FakeSendGridState
    state_class = FakeSendGridState
    handler_class = _Handler
    base_path = "v3/"
    name = "SendGrid"


if __name__ == "__main__":
    FakeSendGrid.serve_standalone(__doc__.splitlines()[0])
