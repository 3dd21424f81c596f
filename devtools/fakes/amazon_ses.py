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
500 ``InternalFailure``; 503 ``ServiceUnavailable``; and, once the account's daily quota is
used up (below), 400 ``ThrottlingException`` "Daily message quota exceeded." (what SES's guide
says its API answers then; AWS's common errors give ThrottlingException status 400). SES has
no search of sent mail by our metadata, so neither has the fake.

``POST /v2/email/outbound-bulk-emails`` (SendBulkEmail) takes ``FromEmailAddress``,
``DefaultContent.Template`` (an inline ``TemplateContent`` {Subject, Text, Html}, its
``TemplateData`` and ``Headers``) and ``BulkEmailEntries``, at most 50 (more: 400
``BadRequestException``), each a ``Destination``, its ``ReplacementEmailContent.
ReplacementTemplate.ReplacementTemplateData`` (JSON of its values) and
``ReplacementHeaders`` (taking precedence over the template's header of the same name; at
most 15 headers, printable ASCII). It answers 200 ``{"BulkEmailEntryResults": [...]}``, one
``{"Status", "MessageId"}`` or ``{"Status", "Error"}`` per entry, in their order: an address
in ``rejected`` gets ``MESSAGE_REJECTED``, one in ``throttled`` ``ACCOUNT_THROTTLED`` (once:
``throttle_once``; when each such call arrived is kept in ``throttled_at``). The daily quota:
a destination in ``over_quota``, or every one once ``daily_quota`` emails were accepted, gets
``ACCOUNT_DAILY_QUOTA_EXCEEDED`` (when each such call arrived: ``quota_exceeded_at``; setting
``daily_quota`` to None, or higher, is the rolling window making room again). Each accepted
entry's copy is rendered as SES renders an inline template, Handlebars' simple substitution
(devtools/fakes/templating.py): a template holding anything else is refused as a whole (400
``BadRequestException`` "Template contains unsupported operations"); a variable without a
value is SES's rendering failure, the entry accepted and never delivered (counted in
``rendering_failures``, not stored).

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
from devtools.fakes.templating import MissingValue, TemplateError, render_handlebars

ACCESS_KEY_ID = "AKIAFAKESESTEST00000"
SECRET_ACCESS_KEY = "fake-ses-secret-key"  # noqa: S105 (the fake's own, not a real one)
REGION = "eu-west-1"

SEND_PATH = "/v2/email/outbound-emails"
BULK_PATH = "/v2/email/outbound-bulk-emails"
BULK_LIMIT = 50  # entries a SendBulkEmail call may carry
MAX_HEADERS = 15
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_HEADER_VALUE = re.compile(r"^[ -~]{1,995}$")

# Each error SES documents for SendEmail, with the status it comes with.
ERRORS = {
    "MessageRejected": 400,
    "MailFromDomainNotVerifiedException": 400,
    "AccountSuspendedException": 400,
    "SendingPausedException": 400,
    "BadRequestException": 400,
    "TooManyRequestsException": 429,
    "ThrottlingException": 400,  # AWS's common error; SES's for the daily quota used up
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
    throttled: set[str] = field(default_factory=set)  # answered ACCOUNT_THROTTLED in bulk
    throttle_once: bool = True  # a throttled address is taken at its next call
    throttled_at: list[float] = field(default_factory=list)  # arrivals answered with one
    over_quota: set[str] = field(default_factory=set)  # answered the daily quota is used up
    daily_quota: int | None = None  # emails accepted before every further one is answered so
    emails_accepted: int = 0  # counted against daily_quota
    quota_exceeded_at: list[float] = field(default_factory=list)  # arrivals answered so
    rendering_failures: int = 0  # bulk entries accepted whose template could not render
    bulk_calls: int = 0
    calls: int = 0  # send calls received, however answered
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (when, recipients)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *errors: int | str) -> None:
        """Answer the next send calls with these errors: an error type or 429/500/503."""
        with self.lock:
            self.failures.extend(_BY_STATUS.get(e, e) if isinstance(e, int) else e for e in errors)

    def over_quota_for(self, address: str) -> bool:
        """Whether `address` is answered that the daily quota is used up (call with the lock)."""
        if address.lower() in self.over_quota:
            return True
        return self.daily_quota is not None and self.emails_accepted >= self.daily_quota

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
        path = self.path.split("?")[0].rstrip("/")
        if path not in (SEND_PATH, BULK_PATH):
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
        if path == BULK_PATH:
            return self._bulk(state, params, arrived)
        try:
            message = self._message(params, parse=self.counters.store)
        except ValueError as error:
            return self._error("BadRequestException", str(error))
        refused = [to for to in message["to"] if to.lower() in state.rejected]
        if refused:
            return self._error("MessageRejected", f"Address blacklisted: {refused[0]}")
        with state.lock:
            over_quota = any(state.over_quota_for(to) for to in message["to"])
            if over_quota:
                state.quota_exceeded_at.append(arrived)
            else:
                state.emails_accepted += len(message["to"])
        if over_quota:
            return self._error("ThrottlingException", "Daily message quota exceeded.")
        message_id = f"0102{uuid.uuid4().hex}-{uuid.uuid4().hex[:8]}-000000"
        self.counters.accepted_count(message["to"], arrived)
        with state.lock:
            state.arrivals.append((arrived, len(message["to"])))
            if self.counters.store:
                state.messages.append({**message, "_id": message_id, "params": params})
        self._reply(200, {"MessageId": message_id})

    def _bulk(self, state: FakeAmazonSesState, params: object, arrived: float) -> None:
        try:
            template, entries = _bulk_request(params)
        except ValueError as error:
            return self._error("BadRequestException", str(error))
        with state.lock:
            state.bulk_calls += 1
        results, accepted, stored, failed_renders = [], [], [], 0
        throttled_any = over_quota_any = False
        for entry in entries:
            to = entry["Destination"]["ToAddresses"]
            address = to[0].lower()
            if address in state.rejected:
                results.append({"Status": "MESSAGE_REJECTED", "Error": "Address blacklisted."})
                continue
            with state.lock:
                over_quota = state.over_quota_for(address)
                throttled = not over_quota and address in state.throttled
                if throttled and state.throttle_once:
                    state.throttled.discard(address)
                if not (over_quota or throttled):
                    state.emails_accepted += 1
            if over_quota:
                results.append(
                    {
                        "Status": "ACCOUNT_DAILY_QUOTA_EXCEEDED",
                        "Error": "Daily message quota exceeded.",
                    }
                )
                over_quota_any = True
                continue
            if throttled:
                results.append(
                    {"Status": "ACCOUNT_THROTTLED", "Error": "Maximum sending rate exceeded."}
                )
                throttled_any = True
                continue
            message_id = f"0102{uuid.uuid4().hex}-{uuid.uuid4().hex[:8]}-000000"
            results.append({"Status": "SUCCESS", "MessageId": message_id})
            accepted += to
            if not self.counters.store:
                continue
            try:
                copy = _rendered(params, template, entry)
            except MissingValue:
                failed_renders += 1  # accepted; SES reports a rendering failure, no delivery
                continue
            stored.append({**copy, "to": to, "_id": message_id, "params": params})
        self.counters.accepted_count(accepted, arrived)
        with state.lock:
            state.arrivals.append((arrived, len(accepted)))
            if throttled_any:
                state.throttled_at.append(arrived)
            if over_quota_any:
                state.quota_exceeded_at.append(arrived)
            state.rendering_failures += failed_renders
            state.messages.extend(stored)
        self._reply(200, {"BulkEmailEntryResults": results})

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


def _headers(value: object, where: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_HEADERS:
        raise ValueError(f"{where} must be a list of at most {MAX_HEADERS} headers")
    for header in value:
        if not isinstance(header, dict) or not _HEADER_NAME.match(str(header.get("Name", ""))):
            raise ValueError(f"{where}: invalid header name")
        if not _HEADER_VALUE.match(str(header.get("Value", ""))):
            raise ValueError(f"{where}: invalid value for header {header['Name']}")
    return value


def _bulk_request(params: object) -> tuple[dict, list[dict]]:
    """The call's template and entries, checked as SES checks them; ValueError: 400."""
    if not isinstance(params, dict):
        raise ValueError("body must be an object")
    if not params.get("FromEmailAddress"):
        raise ValueError("FromEmailAddress is required")
    template = ((params.get("DefaultContent") or {}).get("Template")) or {}
    content = template.get("TemplateContent")
    if not isinstance(content, dict) or not (content.get("Html") or content.get("Text")):
        raise ValueError("DefaultContent.Template.TemplateContent must hold Html or Text")
    _headers(template.get("Headers"), "DefaultContent.Template.Headers")
    entries = params.get("BulkEmailEntries")
    if not isinstance(entries, list) or not entries:
        raise ValueError("BulkEmailEntries must hold at least one entry")
    if len(entries) > BULK_LIMIT:
        raise ValueError(f"BulkEmailEntries holds {len(entries)}: at most {BULK_LIMIT}")
    for entry in entries:
        to = ((entry or {}).get("Destination") or {}).get("ToAddresses") or []
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise ValueError("Destination.ToAddresses must hold valid addresses")
        _headers(entry.get("ReplacementHeaders"), "ReplacementHeaders")
        data = _entry_data(template, entry)
        if not isinstance(data, dict):
            raise ValueError("ReplacementTemplateData must be a JSON object")
    try:
        # Simple substitution only: a template with other syntax is refused as a whole.
        for part in ("Subject", "Text", "Html"):
            _check_template(content.get(part) or "")
    except TemplateError as error:
        raise ValueError(f"Template contains unsupported operations. ({error})") from None
    return template, entries


def _check_template(text: str) -> None:
    try:
        render_handlebars(text, {})
    except MissingValue:
        pass  # syntax is fine; values come per entry
    except TemplateError:
        raise
    # Every field, with a value for each, to be sure no later syntax hides behind a missing
    # value (render_handlebars stops at the first).
    values: dict[str, str] = {}
    while True:
        try:
            render_handlebars(text, values)
            return
        except MissingValue as missing:
            values[str(missing).split("'")[1]] = ""


def _entry_data(template: dict, entry: dict) -> object:
    replacement = (entry.get("ReplacementEmailContent") or {}).get("ReplacementTemplate") or {}
    raw = replacement.get("ReplacementTemplateData") or template.get("TemplateData") or "{}"
    try:
        return json.loads(raw)
    except ValueError:
        raise ValueError("ReplacementTemplateData is not valid JSON") from None


def _rendered(params: dict, template: dict, entry: dict) -> dict:
    """One entry's copy as SES sends it: the template rendered with the entry's values, the
    template's headers with the entry's taking precedence."""
    content = template["TemplateContent"]
    values = _entry_data(template, entry)
    headers = {h["Name"]: h["Value"] for h in template.get("Headers") or []}
    for header in entry.get("ReplacementHeaders") or []:
        headers = {n: v for n, v in headers.items() if n.lower() != header["Name"].lower()}
        headers[header["Name"]] = header["Value"]
    html, text = content.get("Html"), content.get("Text")
    return {
        "from": params["FromEmailAddress"],
        "subject": render_handlebars(content.get("Subject") or "", values),
        "headers": headers,
        "html": None if html is None else render_handlebars(html, values),
        "text": None if text is None else render_handlebars(text, values),
    }


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
