"""A local stand-in for Mailgun's messages API, written from its documented shapes.

``POST /v3/<domain>/messages`` (HTTP basic auth, user ``api``, the API key as password) takes
a form, ``multipart/form-data`` or ``application/x-www-form-urlencoded``: ``from``, ``to``
(repeated, or comma-separated), ``subject``, ``text``, ``html``, ``o:tag``, ``h:<Header>``,
``v:<custom variable>`` and ``recipient-variables`` (a JSON object of address -> values). With
recipient variables it is a batch send: each ``to`` recipient gets a copy of their own,
sees only their own address, and ``%recipient.<key>%`` is replaced by their value
everywhere in the message (subject, bodies, ``h:`` headers, ``v:`` variables), which is
what the fake stores per recipient. At most 1,000 recipients per call.

Answers: 200 ``{"id": "<...@domain>", "message": "Queued. Thank you."}``; 400
``{"message": ...}`` for a missing parameter, a recipient that is not a valid address (the
whole call is refused, naming no address, as Mailgun does), more than 1,000 recipients or
recipient-variables that are not a JSON object; 401 ``Forbidden`` (plain text) for a wrong
key; 429 and 500 when told to (``fail_next``). Mailgun has no search of sent mail by our
metadata, so neither has the fake.

Run standalone (for benchmarks): ``python -m devtools.fakes.mailgun --port 8026 [--no-store]``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl

from devtools.fakes.counting import CountingHandler, CountingState
from devtools.fakes.serving import LocalFake

API_KEY = "mailgun-test-key"
BATCH_LIMIT = 1000
ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+$")
RECIPIENT_VARIABLE = re.compile(r"%recipient\.([^%\s]+)%")
BOUNDARY = re.compile(r"boundary=([^;]+)")
PART_NAME = re.compile(rb'Content-Disposition: form-data; name="([^"]*)"', re.IGNORECASE)
MESSAGES_PATH = re.compile(r"^/v3/([^/]+)/messages$")
ERROR_MESSAGES = {429: "Too many requests", 500: "Internal server error", 503: "Unavailable"}


def form_fields(content_type: str, raw: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a multipart or urlencoded form, in order.

    Multipart is split at its boundary by hand: the standard library's MIME parser took most
    of the fake's time at benchmark volumes, on the cores it shares with the workers.
    """
    if not content_type.startswith("multipart/form-data"):
        return parse_qsl(raw.decode(), keep_blank_values=True)
    boundary = BOUNDARY.search(content_type)
    if boundary is None:
        raise ValueError("multipart without a boundary")
    delimiter = b"--" + boundary.group(1).strip('"').encode()
    fields = []
    for part in raw.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = PART_NAME.search(head)
        if name is None:
            raise ValueError("a form-data part without a name")
        fields.append((name.group(1).decode(), value.removesuffix(b"\r\n").decode()))
    return fields


def addr_spec(value: str) -> str:
    match = re.search(r"<([^>]*)>\s*$", value)
    return (match.group(1) if match else value).strip()


def fill(text: str, values: dict) -> str:
    """``%recipient.key%`` replaced by the recipient's value; unknown keys left as written."""

    def value(match: re.Match) -> str:
        found = values.get(match.group(1))
        return match.group(0) if found is None else str(found)

    return RECIPIENT_VARIABLE.sub(value, text)


class _Handler(CountingHandler):
    def send(self, path: str, headers, raw: bytes, arrived: float) -> None:
        route = MESSAGES_PATH.match(path)
        if route is None:
            return self.reply(404, {"message": "Mailgun Magnificent API"})
        if not self._authorized(headers.get("Authorization", "")):
            return self.reply(401, b"Forbidden", content_type="text/plain")
        failure = self.state.take_failure()
        if failure:
            return self.reply(failure, {"message": ERROR_MESSAGES.get(failure, "Error")})
        try:
            fields = form_fields(headers.get("Content-Type", ""), raw)
        except (ValueError, UnicodeDecodeError):
            return self.reply(400, {"message": "Could not parse the request body"})
        copies, problem = self._copies(fields, route.group(1))
        if problem:
            return self.reply(400, {"message": problem})
        message_id = f"<{uuid.uuid4().hex}@{route.group(1)}>"
        for one in copies:
            one["_id"] = message_id
        self.state.record(copies, arrived)
        self.reply(200, {"id": message_id, "message": "Queued. Thank you."})

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == "api" and key == self.state.api_key

    def _copies(self, fields: list[tuple[str, str]], domain: str) -> tuple[list[dict], str]:
        single = {}
        to: list[str] = []
        for name, value in fields:
            if name == "to":
                to += [a.strip() for a in value.split(",") if a.strip()]
            elif name in ("o:tag",):
                single.setdefault(name, []).append(value)
            else:
                single[name] = value
        for required in ("from", "subject"):
            if not single.get(required):
                return [], f"{required} parameter is missing"
        if not to:
            return [], "to parameter is missing"
        if not (single.get("text") or single.get("html")):
            return [], "Need at least one of 'text' or 'html' parameters specified"
        if len(to) > BATCH_LIMIT:
            return [], f"Too many recipients: the maximum is {BATCH_LIMIT}"
        for address in to:
            spec = addr_spec(address)
            if not ADDRESS.match(spec) or spec.lower() in self.state.refuse:
                return [], "to parameter is not a valid address. please check documentation"
        variables = None
        if "recipient-variables" in single:
            try:
                variables = json.loads(single["recipient-variables"])
            except ValueError:
                variables = None
            if not isinstance(variables, dict):
                return [], "recipient-variables parameter is not a valid JSON"
        parts = {k: v for k, v in single.items() if k != "recipient-variables"}
        if variables is None:
            # Not a batch: one message, everyone on it sees everyone.
            return [{**parts, "to": addr_spec(a), "To": ", ".join(to)} for a in to], ""
        copies = []
        for address in to:
            spec = addr_spec(address)
            values = variables.get(spec) or {}
            one = {k: fill(v, values) if isinstance(v, str) else v for k, v in parts.items()}
            one["to"], one["To"] = spec, address
            copies.append(one)
        return copies, ""


@dataclass
class FakeMailgunState(CountingState):
    api_key: str = API_KEY


class FakeMailgun(LocalFake):
    """Its url is what MAILGUN_API_URL is set to: Anymail appends ``<domain>/messages``."""

    state: FakeMailgunState
    state_class = FakeMailgunState
    handler_class = _Handler
    base_path = "v3/"
    name = "Mailgun"


if __name__ == "__main__":
    FakeMailgun.serve_standalone(__doc__.splitlines()[0])
