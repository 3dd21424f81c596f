"""Postmark batch sending with per-recipient merge fields in the bodies.

What Anymail cannot do, and this backend adds:

- Merge fields in bodies it did not render. Anymail sends ``merge_data`` to Postmark only
  through Postmark's server-side templates; the digest is rendered here, so each recipient's
  copy of the bodies gets its ``{{field}}`` merge fields filled in (HTML-escaped in the HTML
  part) by ``newsletter.composition``, and the copies go to ``/email/batch``.
- One HTTP call for several messages. Anymail posts every EmailMessage on its own; a digest
  chunk is one message per distinct content (often a handful of recipients each), so
  ``send_messages`` puts the copies of consecutive batch messages into shared
  ``/email/batch`` calls of up to Postmark's batch limit and gives each message its own slice
  of the answer. At 10k subscribers that was 2,212 HTTP calls for 20 chunks; now 20.

It overrides Anymail internals in four more places, each for a measured per-recipient cost
(the figures are the benchmark's, 100k subscribers against the fake Postmark): request bodies
encoded by orjson, bare addresses split without the RFC 5322 parser, the sender parsed once,
and plainly accepted batch answers read without parsing their addresses again (each function
says what it saved).
Tests compare the last two with Anymail's own parsing. The hooks used (``PostmarkPayload``'s
``base_message_attrs``, ``serialize_json``, ``data_for_recipient``; the backend's
``parse_recipient_status``, ``run_pre_send``/``run_post_send``, ``raise_for_status``,
``raise_for_recipient_status``) are not a public API: pyproject.toml pins Anymail's major
version, and tests/newsletter/test_postmark_http.py runs them against the fake over HTTP.
"""

from __future__ import annotations

import copy
import functools
from urllib.parse import urljoin

import orjson
import requests
from anymail.backends.postmark import EmailBackend as PostmarkBackend
from anymail.backends.postmark import PostmarkPayload
from anymail.exceptions import (
    AnymailError,
    AnymailRequestsAPIError,
    AnymailSerializationError,
)
from anymail.message import AnymailRecipientStatus, AnymailStatus
from anymail.utils import (
    UNSET,
    CaseInsensitiveCasePreservingDict,
    EmailAddress,
    force_non_lazy,
    force_non_lazy_dict,
    parse_address_list,
)

from newsletter.composition import merge_fields_apply
from newsletter.providers import PROVIDERS
from subscriptions.addresses import SENDABLE_ADDRESS

BATCH_LIMIT = PROVIDERS["postmark"].batch_limit  # messages per /email/batch call
BATCH_ENDPOINT = "email/batch"

# A bare ASCII address with a dot-atom local part: the only form subscriptions accept and store.
BARE_ADDRESS = SENDABLE_ADDRESS


def recipients_parse(addresses, field: str | None = None) -> list[EmailAddress]:
    """Anymail's ``parse_address_list``, with a shortcut for lists of bare addresses.

    Anymail runs every address through the standard library's RFC 5322 parser, about 30 us
    each: a sixth of a worker's time per digest email (with the session reuse and leaner
    claims of the same change, 100k: 3,204 -> 4,209 emails/s). A bare ``local@domain`` of the form
    above splits at its "@" into exactly what that parser returns (tests compare the two).
    A list with anything else (a display name, quoting, non-ASCII, several addresses in one
    string) goes through Anymail's parser whole, errors and all.
    """
    if isinstance(addresses, list | tuple):
        matches = [BARE_ADDRESS.fullmatch(a) if isinstance(a, str) else None for a in addresses]
        if matches and all(matches):
            return [EmailAddress(username=m["local"], domain=m["domain"]) for m in matches]
    return parse_address_list(addresses, field=field)


def sender_parse(addresses, field: str | None = None) -> list[EmailAddress]:
    """Anymail's ``parse_address_list`` for the From address, parsed once per sender string.

    Every message of a send has the same From ("Paperboy <digest@...>"), and its display
    name sends it through the RFC 5322 parser: with every selection distinct that is one
    parse per email, 0.19 ms, a fifth of the time Anymail spends building a message's payload
    (in-process profile of 4,000 distinct emails). EmailAddress is immutable, so the parsed
    list is shared, copied for each message; errors are raised as Anymail raises them.
    """
    if isinstance(addresses, str):
        return list(_sender_parsed(addresses, field))
    return parse_address_list(addresses, field=field)


@functools.lru_cache(maxsize=16)
def _sender_parsed(address: str, field: str | None) -> tuple[EmailAddress, ...]:
    return tuple(parse_address_list(address, field=field))


_CONVERTERS = {"to": recipients_parse, "from_email": sender_parse}

# What each digest message of a send has of its own: its content and its recipients. Every
# other attribute (sender, headers, tags, metadata, tracking, ESP extras) is the same for all
# the messages of a chunk, so their payloads differ from one another only in these.
OWN_ATTRS = frozenset(
    {"subject", "body", "alternatives", "to", "merge_data", "merge_headers", "merge_metadata"}
)
_NOT_COMPARED = OWN_ATTRS | {"anymail_status"}  # set on every message by the backend


def _non_lazy_dict(obj):
    """Anymail's ``force_non_lazy_dict``, without its exception per plain string: it tries
    ``.items()`` on every value and a string's AttributeError was 6 % of a worker's time."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return {key: _non_lazy_dict(value) for key, value in obj.items()}
    return force_non_lazy_dict(obj)


def _headers_merged(base: list[dict], extra) -> list[dict]:
    """Postmark's header list `base` with `extra` merged in, as Anymail merges them: names
    compared without case, a merged name taking the first one's place with its own spelling
    and value, new names after."""
    merged: dict[str, tuple[str, str]] = {}
    for item in base:
        merged[item["Name"].lower()] = (item["Name"], item["Value"])
    for name, value in extra.items():
        merged[name.lower()] = (name, value)
    return [{"Name": name, "Value": value} for name, value in merged.values()]


class PostmarkBatchPayload(PostmarkPayload):
    base_message_attrs = tuple(
        (
            attr,
            combiner,
            functools.partial(_CONVERTERS[attr], field=attr) if attr in _CONVERTERS else conv,
        )
        for attr, combiner, conv in PostmarkPayload.base_message_attrs
    )

    def _uses_template(self) -> bool:
        return "TemplateAlias" in self.data or "TemplateId" in self.data

    def serialize_json(self, data) -> bytes:
        """The request body as UTF-8 JSON bytes.

        orjson rather than Anymail's json.dumps: a full batch call is about 15 MB of
        JSON, which json.dumps took 50 ms to encode (a quarter of a worker's time per email)
        and orjson 4 ms; bytes also spare requests encoding the body again (with merge fields
        split once per body, 100k: 2,495 -> 3,204 emails/s).
        """
        try:
            return orjson.dumps(data, default=self._json_default)
        except TypeError as err:  # orjson.JSONEncodeError is a TypeError
            raise AnymailSerializationError(
                orig_err=err, email_message=self.message, backend=self.backend, payload=self
            ) from None

    def get_api_endpoint(self) -> str:
        if self.merge_data and not self._uses_template() and not self.backend.use_bulk_api:
            return BATCH_ENDPOINT
        return super().get_api_endpoint()

    def data_for_recipient(self, to):
        headers = self.merge_headers.get(to.addr_spec)
        if headers is None or self._uses_template():
            data = super().data_for_recipient(to)
        else:
            # Anymail's, less the merge headers, which it merges through a requests
            # CaseInsensitiveDict built for each copy (a twentieth of a worker's time with
            # every selection distinct); the same merge with a plain dict follows.
            saved, self.merge_headers = self.merge_headers, {}
            try:
                data = super().data_for_recipient(to)
            finally:
                self.merge_headers = saved
            data["Headers"] = _headers_merged(data.get("Headers", ()), headers)
        if self._uses_template():
            return data
        fields = data.pop("TemplateModel", None) or {}
        if fields:
            # The subject as the preview reads it (composition.messages_per_recipient).
            if "Subject" in data:
                data["Subject"] = merge_fields_apply(data["Subject"], fields, html_escape=False)
            if "HtmlBody" in data:
                data["HtmlBody"] = merge_fields_apply(data["HtmlBody"], fields, html_escape=True)
            if "TextBody" in data:
                data["TextBody"] = merge_fields_apply(data["TextBody"], fields, html_escape=False)
        return data

    @classmethod
    def like(cls, first: PostmarkBatchPayload, message) -> PostmarkBatchPayload | None:
        """The payload of `message`, made from `first` (another message's batch payload), or
        None when `message` differs from that message in more than OWN_ATTRS.

        Anymail builds a payload by running each of some thirty attributes of the message
        through its converter and setter: with every selection distinct, 0.29 ms per email,
        the largest single cost of a worker (in-process profile of 20,000 distinct emails).
        The messages of a chunk share all but their content and recipients, so those are
        converted and set as Anymail does, onto a copy of `first`'s data; anything else that
        differs (an attribute, a send default for these attributes, a second alternative, an
        HTML-only body) builds the payload Anymail's way. Tests compare the two payloads.
        """
        model = first.message
        if type(message) is not type(model) or first.get_api_endpoint() != BATCH_ENDPOINT:
            return None
        if OWN_ATTRS & first.defaults.keys() or message.content_subtype != "plain":
            return None
        mine, theirs = vars(message), vars(model)
        if mine.keys() != theirs.keys():
            return None
        for name, value in mine.items():
            if name not in _NOT_COMPARED and value != theirs[name]:
                return None
        alternatives = message.alternatives
        if len(alternatives) != 1 or alternatives[0][1] != "text/html":
            return None
        if not all(getattr(message, a, UNSET) is not UNSET for a in cls.batch_attrs):
            return None  # merge data, headers and metadata all set, as `first` has them
        if not message.merge_data:
            return None  # not a batch send: its one payload goes out as it is, To and all
        to = recipients_parse(message.to, field="to")
        payload = copy.copy(first)
        payload.message = message
        payload.data = data = dict(first.data)  # values shared, never changed in place
        payload.to_emails, payload.cc_and_bcc_emails = to, list(first.cc_and_bcc_emails)
        payload.generated_message_ids = {}
        payload._batch_attrs_used = dict.fromkeys(cls.batch_attrs, True)
        # The To of each copy is its recipient's (data_for_recipient): the message's joined
        # list never reaches the provider, so it is not formatted (27 us an address).
        data.pop("To", None)
        data["Subject"] = force_non_lazy(message.subject)
        data["TextBody"] = force_non_lazy(message.body)
        data["HtmlBody"] = force_non_lazy(alternatives[0][0])
        payload.merge_data = _non_lazy_dict(message.merge_data)
        payload.merge_headers = message.merge_headers
        payload.merge_metadata = _non_lazy_dict(message.merge_metadata)
        return payload

    def batch_copies(self) -> list[dict]:
        """This message's entries of an /email/batch body: one per To recipient."""
        return [self.data_for_recipient(to) for to in self.to_emails]


class _Slice:
    """One message's part of a shared batch answer, shaped like the response it came in."""

    def __init__(self, response: requests.Response, answers: list) -> None:
        self._response = response
        self._answers = answers

    def json(self) -> list:
        return self._answers

    def __getattr__(self, name: str):
        return getattr(self._response, name)


def plainly_accepted(answers: list, payload: PostmarkBatchPayload):
    """Recipient statuses of a batch slice whose copies were all simply accepted, else None.

    Anymail's status parser runs each answer's "To" through the RFC 5322 parser again. Where
    every answer (they come in the order of the copies) accepts its copy and names the very
    address it was sent to, the statuses can be read off as Anymail would; anything else (a
    refusal, inactive addresses, an answer naming someone else) is left to Anymail's parser.
    Measured: 100k: 4,209 -> 4,637 emails/s.
    """
    if payload.cc_and_bcc_emails or len(answers) != len(payload.to_emails):
        return None
    statuses = CaseInsensitiveCasePreservingDict()
    for answer, to in zip(answers, payload.to_emails, strict=True):
        if not (
            isinstance(answer, dict)
            and answer.get("ErrorCode", 0) == 0
            and answer.get("To") == to.address
            and "MessageID" in answer
            and isinstance(answer.get("Message"), str)
            and "inactive" not in answer["Message"]
        ):
            return None
        status = "queued" if "delivery may be delayed" in answer["Message"] else "sent"
        statuses[to.addr_spec] = AnymailRecipientStatus(answer["MessageID"], status)
    return statuses


class PostmarkBatchEmailBackend(PostmarkBackend):
    def build_message_payload(self, message, defaults):
        return PostmarkBatchPayload(message, defaults, self)

    def parse_recipient_status(self, response, payload, message):
        if isinstance(response, _Slice):
            statuses = plainly_accepted(response.json(), payload)
            if statuses is not None:
                return statuses
        return super().parse_recipient_status(response, payload, message)

    def send_messages(self, email_messages) -> int:
        """Send the messages; copies of batch messages share /email/batch calls.

        Messages are answered in order. On an error the exception is raised after the
        messages answered before it got their ``anymail_status``; every message of a failed
        call is listed in the exception's ``email_messages``, and later messages are not
        attempted (as with Anymail, which stops at the first failing message).
        """
        if len(email_messages) < 2:
            return super().send_messages(email_messages)
        created_session = self.open()
        try:
            return self._send_shared(email_messages)
        finally:
            if created_session:
                self.close()

    def _send_shared(self, email_messages) -> int:
        sent = shared = 0  # shared: copies in `call`, counted as they come (not re-added)
        call: list[tuple[object, PostmarkBatchPayload, list[dict]]] = []
        first: PostmarkBatchPayload | None = None  # the last batch payload built in full
        for message in email_messages:
            message.anymail_status = AnymailStatus()
            if not self.run_pre_send(message) or not message.recipients():
                continue
            payload = first and PostmarkBatchPayload.like(first, message)
            if not payload:
                payload = self.build_message_payload(message, self.send_defaults)
                first = payload if payload.get_api_endpoint() == BATCH_ENDPOINT else first
            if payload.get_api_endpoint() != BATCH_ENDPOINT:
                sent += self._post_shared(call)
                call, shared = [], 0
                self._finish(message, payload, self.post_to_esp(payload, message))
                sent += 1
                continue
            copies = payload.batch_copies()
            other_token = call and payload.server_token != call[0][1].server_token
            if call and (shared + len(copies) > BATCH_LIMIT or other_token):
                sent += self._post_shared(call)
                call, shared = [], 0
            call.append((message, payload, copies))
            shared += len(copies)
        return sent + self._post_shared(call)

    def _post_shared(self, call: list[tuple[object, PostmarkBatchPayload, list[dict]]]) -> int:
        if not call:
            return 0
        first_message, first_payload, _ = call[0]
        body = [copy for _, _, copies in call for copy in copies]
        try:
            try:
                response = self.session.request(
                    method="POST",
                    url=urljoin(self.api_url, BATCH_ENDPOINT),
                    data=first_payload.serialize_json(body),
                    headers={
                        **first_payload.headers,
                        "X-Postmark-Server-Token": first_payload.server_token,
                    },
                    timeout=self.timeout,
                )
            except requests.RequestException as err:
                # Both an Anymail error and the requests one, as Anymail's post_to_esp raises.
                error_class = type(
                    "AnymailRequestsAPIError", (AnymailRequestsAPIError, type(err)), {}
                )
                raise error_class(
                    f"Error posting to {urljoin(self.api_url, BATCH_ENDPOINT)}:",
                    email_message=first_message,
                    payload=first_payload,
                ) from err
            self.raise_for_status(response, first_payload, first_message)
            answers = self.deserialize_json_response(response, first_payload, first_message)
            if not isinstance(answers, list) or len(answers) != len(body):
                raise AnymailRequestsAPIError(
                    "Invalid Postmark batch response: one answer per message expected",
                    email_message=first_message,
                    payload=first_payload,
                    response=response,
                    backend=self,
                )
        except AnymailError as error:
            error.email_messages = [message for message, _, _ in call]
            raise
        start, refused = 0, None
        for message, payload, copies in call:
            part = _Slice(response, answers[start : start + len(copies)])
            start += len(copies)
            try:
                self._finish(message, payload, response, part)
            except AnymailError as error:
                # Refused recipients of one message: the others were accepted, so they are
                # all recorded first; the first refusal is raised at the end.
                refused = refused or error
        if refused is not None:
            raise refused
        return len(call)

    def _finish(self, message, payload, response, answer=None) -> None:
        """What Anymail does with a message's answer (statuses, tracking signal, checks)."""
        message.anymail_status.esp_response = response
        recipient_status = self.parse_recipient_status(answer or response, payload, message)
        message.anymail_status.set_recipient_status(recipient_status)
        self.run_post_send(message)
        self.raise_for_recipient_status(message.anymail_status, response, payload, message)
