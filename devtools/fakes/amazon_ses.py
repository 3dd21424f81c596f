"""A local stand-in for Amazon SES's v2 send API, written from its documented shapes.

``POST /v2/email/outbound-emails`` (SendEmail) takes a JSON body with ``Destination``
(``ToAddresses``...), ``FromEmailAddress`` and ``Content``: either ``Raw.Data`` (the whole MIME
message, base64) or ``Simple`` (``Subject``/``Body.Text``/``Body.Html``, each ``{"Data": ...}``).
Every call must carry a SigV4 ``Authorization`` header (``AWS4-HMAC-SHA256 Credential=<key id>/
<date>/<region>/ses/aws4_request, SignedHeaders=..., Signature=<64 hex>``) and ``X-Amz-Date``:
without one SES answers 403 ``UnrecognizedClientException``, with a malformed one or another
key id 403 ``SignatureDoesNotMatch`` / ``UnrecognizedClientException``. (The signature itself is
not recomputed: the check is that boto3 signed the call with the configured credentials.)
It answers 200 ``{"MessageId": ...}``. Errors name their type in the ``x-amzn-ErrorType``
header (boto3 reads the error code from it) with a JSON ``{"message": ...}`` body: 400
``MessageRejected`` (here: an address in ``rejected``), ``MailFromDomainNotVerifiedException``,
``AccountSuspendedException``, ``SendingPausedException``; 429 ``TooManyRequestsException``;
500 ``InternalFailure``; 503 ``ServiceUnavailable``. SES has no search of sent mail by our
metadata, so neither has the fake.

Run standalone (for benchmarks): ``python -m devtools.fakes.amazon_ses --port N [--no-store]``.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field

from devtools.fakes.serving import FakeHandler, LocalFake

ACCESS_KEY_ID = "AKIAFAKESESTEST00000"
SECRET_ACCESS_KEY = "fake-ses-secret-key"  # noqa: S105 (the fake's own, not a real one)
REGION = "eu-west-1"

SEND_PATH = "/v2/email/outbound-emails"

# Each error SES documents for SendEmail, with the status it comes with.
ERRORS = {
    "MessageRejected": 400,
    "MailFromDomainNotVerifiedException": 400,
    "AccountSuspendedException": 400,
    "SendingPausedException": 400,
    "BadRequestException": 400,
    "TooManyRequestsException": 429,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}
_BY_STATUS = {429: "TooManyRequestsException", 500: "InternalFailure", 503: "ServiceUnavailable"}

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)"
    r"/(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),"
    r"\s*Signature=[0-9a-f]{64}$"
)


@dataclass
class FakeAmazonSesState:
    access_key_id: str = ACCESS_KEY_ID
    region: str = REGION
    # Each accepted message as SES would deliver it: "to", "from", "subject", "headers" (name
    # -> value), "html", "text", "_id", and the call's "params" (the JSON body).
    messages: list[dict] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)  # addresses answered 400 MessageRejected
    failures: list[str] = field(default_factory=list)  # error types for the next send calls
    calls: int = 0  # send calls received, however answered
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (when, recipients)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *errors: int | str) -> None:
        """Answer the next send calls with these errors: an error type or 429/500/503."""
        with self.lock:
            self.failures.extend(_BY_STATUS.get(e, e) if isinstance(e, int) else e for e in errors)

    def recipients(self) -> list[str]:
        with self.lock:
            return [to for m in self.messages for to in m["to"]]


class _Handler(FakeHandler):
    def _reply(self, status: int, body: object, error_type: str = "") -> None:
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        if error_type:
            headers["x-amzn-ErrorType"] = error_type
        self.reply(status, body, headers)

    def _error(self, error_type: str, message: str, status: int | None = None) -> None:
        self._reply(status or ERRORS[error_type], {"message": message}, error_type)

    def post(self, raw: bytes, arrived: float) -> None:
        state: FakeAmazonSesState = self.server.state
        if self.path.split("?")[0].rstrip("/") != SEND_PATH:
            return self._reply(404, {"message": "not found"}, "UnknownOperationException")
        problem = self._unauthorized(state)
        if problem:
            return self._error(*problem, status=403)
        with state.lock:
            state.calls += 1
            failure = state.failures.pop(0) if state.failures else None
        if failure:
            return self._error(failure, f"{failure} (made to fail by the fake)")
        try:
            params = json.loads(raw)
        except ValueError:
            return self._error("BadRequestException", "Request body is not valid JSON")
        try:
            message = self._message(params, parse=self.counters.store)
        except ValueError as error:
            return self._error("BadRequestException", str(error))
        refused = [to for to in message["to"] if to.lower() in state.rejected]
        if refused:
            return self._error("MessageRejected", f"Address blacklisted: {refused[0]}")
        message_id = f"0102{uuid.uuid4().hex}-{uuid.uuid4().hex[:8]}-000000"
        self.counters.accepted_count(message["to"], arrived)
        with state.lock:
            state.arrivals.append((arrived, len(message["to"])))
            if self.counters.store:
                state.messages.append({**message, "_id": message_id, "params": params})
        self._reply(200, {"MessageId": message_id})

    def _unauthorized(self, state: FakeAmazonSesState) -> tuple[str, str] | None:
        header = self.headers.get("Authorization")
        if not header:
            return (
                "UnrecognizedClientException",
                "Missing Authentication Token",
            )
        match = _AUTHORIZATION.match(header.strip())
        if not match or not self.headers.get("X-Amz-Date"):
            return ("SignatureDoesNotMatch", "The request signature we calculated does not match")
        if match["key"] != state.access_key_id:
            return (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if match["service"] != "ses" or match["region"] != state.region:
            return ("SignatureDoesNotMatch", "Credential should be scoped to a valid region/ses")
        return None

    @staticmethod
    def _message(params: object, *, parse: bool = True) -> dict:
        if not isinstance(params, dict):
            raise ValueError("body must be an object")
        to = (params.get("Destination") or {}).get("ToAddresses") or []
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise ValueError("Destination.ToAddresses must hold valid addresses")
        content = params.get("Content") or {}
        if "Raw" in content:
            return {"to": to, **_from_raw((content["Raw"] or {}).get("Data"), parse=parse)}
        if "Simple" in content:
            return {"to": to, **_from_simple(content["Simple"], params)}
        raise ValueError("Content must hold Raw, Simple or Template")


def _from_raw(data: object, *, parse: bool = True) -> dict:
    """The raw message's parts. parse=False (a benchmark's fake, storing nothing) checks only
    that it is base64 with a From header: parsing the MIME took most of the fake's CPU."""
    try:
        mime = base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Content.Raw.Data must be base64") from None
    if not parse:
        head = mime.partition(b"\n\n")[0].partition(b"\r\n\r\n")[0]
        if not (head.startswith(b"From:") or b"\nFrom:" in head):
            raise ValueError("the raw message has no From header")
        return {}
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    if not parsed["From"]:
        raise ValueError("the raw message has no From header")
    bodies = {}
    for kind in ("html", "plain"):
        part = parsed.get_body(preferencelist=(kind,))
        if part is not None:
            bodies[kind] = part.get_content()
    if not bodies:
        raise ValueError("the raw message has no text or HTML body")
    return {
        "from": str(parsed["From"]),
        "subject": str(parsed["Subject"] or ""),
        # A long header arrives folded; its value is the unfolded text.
        "headers": {name: " ".join(str(value).split()) for name, value in parsed.items()},
        "html": bodies.get("html"),
        "text": bodies.get("plain"),
    }


def _from_simple(simple: dict, params: dict) -> dict:
    if not params.get("FromEmailAddress"):
        raise ValueError("FromEmailAddress is required with Simple content")
    body = simple.get("Body") or {}
    html, text = (body.get("Html") or {}).get("Data"), (body.get("Text") or {}).get("Data")
    if html is None and text is None:
        raise ValueError("Simple.Body must hold Text or Html")
    return {
        "from": params["FromEmailAddress"],
        "subject": (simple.get("Subject") or {}).get("Data", ""),
        "headers": {h["Name"]: h["Value"] for h in simple.get("Headers") or []},
        "html": html,
        "text": text,
    }


class FakeAmazonSes(LocalFake):
    """``with FakeAmazonSes() as fake:`` serves on ``fake.url`` (boto3's ``endpoint_url``)."""

    state: FakeAmazonSesState
    state_class = FakeAmazonSesState
    handler_class = _Handler
    name = "Amazon SES"


if __name__ == "__main__":
    FakeAmazonSes.serve_standalone(__doc__.splitlines()[0])
