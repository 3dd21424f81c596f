"""Sending through Amazon SES: Anymail's backend, with one boto3 client per process and
connection failures read for what they say about the message.

- **One client per process.** Anymail creates a boto3 client each time a connection opens,
  once per chunk; creating one loads SES's service model from disk and resolves credentials,
  about 0.4 s of CPU, which at 50 copies a chunk was most of a send's time. boto3 clients are
  thread-safe and keep their HTTP connections, so the first one a process makes for a set of
  settings is kept and reused (a forked worker makes its own).
- **The wire timeout is ANYMAIL_TIMEOUT_SECONDS**, as for the other providers (botocore's default
  is 60 s), so a claim's lease outlasts a call that hangs.
- **The send rate's turn is taken at the wire**: in boto3's ``before-send`` event, once the
  call is serialized and signed, so a call reaches SES when its turn says, not a message
  build later (newsletter/services/pacing.py).
- **Failures without an answer from SES.** Anymail wraps every boto3 error in one
  ``AnymailAPIError`` with no status. Here a connection that could not be made (refused,
  unreachable endpoint, connect timeout) is certainly not a message taken, reported as the 503
  the send code retries; a call that broke or timed out after the request went out may have been
  taken, reported as a status-less requests error, which the send code marks "unknown" and never
  re-sends blindly (newsletter/services/sending.py, ``send_outcome``).
- **A content's readers in one SendBulkEmail call** (up to 50, SES's limit): the subject and
  bodies once, as an inline Handlebars template (``DefaultContent.Template.TemplateContent``;
  the fields spelled by newsletter/composition.py), the headers all readers share once
  (``Template.Headers``), and per destination its values (``ReplacementTemplateData``) and
  its own ``List-Unsubscribe`` and ``X-Metadata`` (the delivery id; ``ReplacementHeaders``,
  which take precedence over the template's). Each destination's answer
  (``BulkEmailEntryResults``, in the order sent) is that reader's: ``SUCCESS`` sent with its
  MessageId, a throttling or temporary status given back for the claim's retry
  (``DeferredStatus``), the daily quota used up given back to wait until it can have renewed
  (``QuotaExhaustedStatus``; a whole call refused so is ``SesQuotaExhausted``), any other
  refused alone with SES's reason. A message bulk cannot carry exactly (``bulk_carries``:
  attachments, a body Handlebars would read otherwise, headers SES would refuse) goes as
  filled copies, one SendEmail of raw MIME each, as before.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading

import boto3
from anymail.backends.amazon_ses import (
    AmazonSESV2SendBulkEmailPayload,
    AmazonSESV2SendEmailPayload,
)
from anymail.backends.amazon_ses import EmailBackend as AnymailSesBackend
from anymail.exceptions import AnymailAPIError, AnymailRequestsAPIError
from anymail.message import AnymailRecipientStatus
from anymail.utils import UNSET, EmailAddress
from botocore.client import Config
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
)
from django.conf import settings

from newsletter import mime_copies
from newsletter.composition import reads_as_meant, recipient_merge_data

NOT_TAKEN = 503  # how a certainly-not-taken call is reported, as the HTTP providers' 503
# Failures before any byte of the request reached SES.
_NOT_CONNECTED = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
# What boto3 reads from the environment when it looks for credentials itself.
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()
# The pacer of the call a thread is making (boto3 calls the event handler on that thread).
_calling = threading.local()
SEND_EVENTS = ("before-send.sesv2.SendEmail", "before-send.sesv2.SendBulkEmail")
BULK_LIMIT = 50  # destinations a SendBulkEmail call may carry
# SES's MessageHeader: a name of printable ASCII but ":", a value of printable ASCII, at most
# 995 characters, 15 headers a message (botocore's service model of SESv2).
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_HEADER_VALUE = re.compile(r"^[ -~]{1,995}$")
MAX_HEADERS = 15
# What a destination's status means (BulkEmailStatus): SES could not take it now but may
# later (the claim retries it); the account's 24-hour quota is used up (every worker waits
# until it can have renewed, the rows pending: newsletter/services/provider_quota.py); every
# other status but SUCCESS refuses that reader.
TRANSIENT_STATUSES = {"ACCOUNT_THROTTLED", "TRANSIENT_FAILURE"}
QUOTA_STATUS = "ACCOUNT_DAILY_QUOTA_EXCEEDED"
# A whole call refused for the same reason: SES documents a throttling error whose message
# says "Daily message quota exceeded" (SMTP's "454 Throttling failure: Daily message quota
# exceeded."); SESv2's SendEmail may name it TooManyRequestsException or LimitExceededException
# rather than ThrottlingException, so the message, not the error's name, is what is read.
_QUOTA_MESSAGE = re.compile(r"daily (message|sending) quota exceeded", re.IGNORECASE)
MIME_KEY = "amazon_ses"  # this backend's templates of a content (newsletter/mime_copies.py)


def _turn_at_the_wire(**_: object) -> None:
    """boto3's before-send handler: the call is built and signed; wait for its turn. (Returns
    None: a value would be taken as the answer.)"""
    pacer = getattr(_calling, "pacer", None)
    if pacer is not None:
        pacer.turn()


class SesQuotaExhausted(AnymailAPIError):
    """SES refused the call because the account's daily quota is used up: nothing of it was
    taken, and nothing more will be before the quota renews (the send code reads
    ``quota_exhausted``)."""

    quota_exhausted = True


def _quota_refusal(error: AnymailAPIError) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    message = (response.get("Error") or {}).get("Message") or ""
    return bool(_QUOTA_MESSAGE.search(message))


class SesOutcomeUnknown(AnymailRequestsAPIError):
    """The call broke after it went out (a read timeout, a closed connection): SES may have
    taken it. (A status-less requests error is what the send code reads as "unknown".)"""


class AmazonSesEmailBackend(AnymailSesBackend):
    # The send rate's (pace_with), for the backend's life: one chunk. Not dropped by close(),
    # which send_messages calls after each call it opened the client for.
    pacer = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        timeout = settings.ANYMAIL_TIMEOUT_SECONDS
        configured = self.client_params["config"]
        # The operator's own timeouts, if set, win (merge: the argument's options override).
        # The client is shared by a worker's concurrent sends: a connection for each of them.
        pool = max(10, settings.SEND_CONCURRENCY)
        self.client_params["config"] = Config(
            connect_timeout=timeout, read_timeout=timeout, max_pool_connections=pool
        ).merge(configured)

    def _client_key(self) -> tuple:
        params = {k: v for k, v in self.client_params.items() if k != "config"}
        options = self.client_params["config"]._user_provided_options
        credentials = tuple(os.environ.get(name, "") for name in _CREDENTIAL_VARIABLES)
        return (
            os.getpid(),
            repr(sorted(self.session_params.items())),
            repr(sorted(params.items())),
            repr(sorted(options.items())),
            credentials,
        )

    def open(self):
        if self.client:
            return False
        key = self._client_key()
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                try:
                    client = boto3.session.Session(**self.session_params).client(
                        "sesv2", **self.client_params
                    )
                except Exception:
                    if not self.fail_silently:
                        raise
                    return None
                for event in SEND_EVENTS:
                    client.meta.events.register(event, _turn_at_the_wire)
                _clients[key] = client
        self.client = client
        return True

    def close(self):
        # The client (and its connections) stays for the process's next chunk.
        self.client = None

    def pace_with(self, pacer) -> None:
        self.pacer = pacer

    def build_message_payload(self, message, defaults):
        if getattr(message, "template_id", UNSET) is UNSET and _is_batch(message):
            # The send code gives bulk only what it carries (bulk_carries); the rest arrives
            # as filled copies, below.
            return BulkTemplatePayload(message, defaults, self)
        # A copy of a content is filled into the content's template, and its call's parameters
        # are the content's probe's with its own address; any other message, or a copy the
        # template cannot make exactly, is built whole by Anymail.
        if getattr(message, "template_id", UNSET) is UNSET:
            filled = mime_copies.copy_filled(message, key=MIME_KEY, build=self._mime_probe)
            if filled is not None and filled.extra is not None:
                return _FilledCopyPayload(message, defaults, self, filled=filled)
        return super().build_message_payload(message, defaults)

    def _mime_probe(self, probe):
        """The template's copy (newsletter/mime_copies.py), built as Anymail builds each one:
        (MIME message, the raw bytes sent, line separator, the call's other parameters)."""
        payload = super().build_message_payload(probe, self.send_defaults)
        raw = payload.generate_raw_message()  # 8bit parts made quoted-printable, in place
        params = {k: v for k, v in payload.params.items() if k not in ("Destination", "Content")}
        # The copies' parameters are these with their own address: only where that is all
        # the probe's destination is.
        plain = payload.params.get("Destination") == {"ToAddresses": probe.to}
        return payload.mime_message, raw, "\n", params if plain else None

    def post_to_esp(self, payload, message):
        _calling.pacer = self.pacer
        try:
            return super().post_to_esp(payload, message)
        except AnymailAPIError as error:
            cause = error.__cause__
            if _quota_refusal(error):
                raise SesQuotaExhausted(
                    str(error),
                    email_message=message,
                    payload=payload,
                    backend=self,
                    response=error.response,
                ) from cause
            if not isinstance(cause, (BotoConnectionError, HTTPClientError)):
                # An answer from SES (ClientError: its status says what it means), or a call
                # boto3 refused to make (bad parameters, no credentials): never sent.
                raise
            if isinstance(cause, _NOT_CONNECTED):
                raise AnymailAPIError(
                    f"Amazon SES unreachable: {cause}",
                    status_code=NOT_TAKEN,
                    email_message=message,
                    payload=payload,
                    backend=self,
                ) from cause
            raise SesOutcomeUnknown(
                f"Amazon SES call broke after it went out: {cause}",
                email_message=message,
                payload=payload,
                backend=self,
            ) from cause
        finally:
            _calling.pacer = None


class _FilledCopyPayload(AmazonSESV2SendEmailPayload):
    """Anymail's SendEmail payload of a copy filled in from its content's template
    (newsletter/mime_copies.py): the raw bytes filled, the parameters the content's probe's
    (configuration set, tags, feedback address: the copies share them) with the copy's own
    address. Anymail's payload building, address parsing included, ran once for the probe."""

    def __init__(self, message, defaults, backend, *, filled: mime_copies.Filled):
        # Not BasePayload.__init__: what it computes from the message is the probe's.
        self.message, self.defaults, self.backend = message, defaults, backend
        self.esp_name = backend.esp_name
        address = message.to[0]  # a plain addr-spec (mime_copies), as Anymail would format it
        username, domain = address.rsplit("@", 1)
        self.all_recipients = [EmailAddress(username=username, domain=domain)]
        self.params = copy.deepcopy(filled.extra)
        self.params["Destination"] = {"ToAddresses": [address]}
        self.raw = filled.raw

    def generate_raw_message(self):
        return self.raw


def _is_batch(message) -> bool:
    return any(
        getattr(message, name, UNSET) not in (UNSET, None)
        for name in ("merge_data", "merge_headers", "merge_metadata")
    )


def _header_fits(name: str, value: object) -> bool:
    return bool(_HEADER_NAME.match(name)) and bool(_HEADER_VALUE.match(str(value)))


def bulk_carries(message) -> bool:
    """Whether one SendBulkEmail call carries this batch message exactly as the preview shows
    each reader: Handlebars reads its subject and bodies as meant (newsletter/composition.py),
    it has no attachments or other parts, every header fits SES's rules, and it is to plain
    destinations (no cc/bcc) of at most BULK_LIMIT. The others go as filled copies."""
    alternatives = getattr(message, "alternatives", None) or []
    if message.attachments or message.cc or message.bcc or len(message.to) > BULK_LIMIT:
        return False
    if [mimetype for _, mimetype in alternatives] not in ([], ["text/html"]):
        return False
    if message.content_subtype != "plain":
        return False
    if not reads_as_meant(message.subject, html=False):
        return False
    if not reads_as_meant(message.body, html=False):
        return False
    if alternatives and not reads_as_meant(alternatives[0][0], html=True):
        return False
    shared = dict(message.extra_headers)
    merge_headers = getattr(message, "merge_headers", None) or {}
    tags = getattr(message, "tags", None) or []
    metadata = getattr(message, "metadata", None) or {}
    merge_metadata = getattr(message, "merge_metadata", None) or {}
    if len(shared) + len(tags) + 2 > MAX_HEADERS:
        return False
    if not all(_header_fits(n, v) for n, v in shared.items()) or not all(
        _header_fits("X-Tag", t) for t in tags
    ):
        return False
    for address in merge_headers:
        if not all(_header_fits(n, v) for n, v in merge_headers[address].items()):
            return False
    return all(
        _header_fits("X-Metadata", json.dumps({**metadata, **merge_metadata.get(a, {})}))
        for a in merge_metadata or [""]
    )


class DeferredStatus(AnymailRecipientStatus):
    """A destination SES did not take for now (throttled, a temporary failure): not sent, so
    the claim's retry sends it again (newsletter/services/sending.py)."""

    transient = True

    def __init__(self, reason: str) -> None:
        super().__init__(message_id=None, status="failed")
        self.reason = reason


class QuotaExhaustedStatus(DeferredStatus):
    """A destination SES did not take because the account's daily quota is used up: not
    sent, and nothing more is sent to SES until the quota can have renewed."""

    quota_exhausted = True


class RefusedStatus(AnymailRecipientStatus):
    """A destination SES refused (its status, and its reason, kept in the row's error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(message_id=None, status="failed")
        self.reason = reason


class BulkTemplatePayload(AmazonSESV2SendBulkEmailPayload):
    """SendBulkEmail with the content as an inline template: Anymail's bulk payload, which it
    builds only for stored templates, given the subject and bodies, and the shared headers
    once instead of in every destination."""

    def init_payload(self):
        super().init_payload()
        self.content = {}

    def set_subject(self, subject):
        self.content["Subject"] = subject

    def set_text_body(self, body):
        self.content["Text"] = body

    def set_html_body(self, body):
        self.content["Html"] = body

    def set_merge_global_data(self, merge_global_data):
        self.merge_global_data = merge_global_data

    def finalize_payload(self):
        template = {
            "TemplateContent": self.content,
            # Every destination carries all its values (ReplacementTemplateData); SES wants
            # the default data too.
            "TemplateData": self.serialize_json(getattr(self, "merge_global_data", {}) or {}),
        }
        shared = [{"Name": name, "Value": str(value)} for name, value in self.headers.items()]
        shared += [{"Name": "X-Tag", "Value": tag} for tag in self.tags]
        if shared:
            template["Headers"] = shared
        self.params["DefaultContent"] = {"Template": template}
        self.params["BulkEmailEntries"] = [self._entry(to) for to in self.recipients["to"]]

    def _entry(self, to) -> dict:
        address = to.addr_spec
        headers = [
            {"Name": name, "Value": str(value)}
            for name, value in (self.merge_headers.get(address) or {}).items()
        ]
        metadata = {**(self.metadata or {}), **(self.merge_metadata.get(address) or {})}
        if metadata:
            headers.append({"Name": "X-Metadata", "Value": self.serialize_json(metadata)})
        entry = {
            "Destination": {
                "ToAddresses": [to.format(use_rfc2047=True, idna_encode=self.backend.idna_encode)]
            },
            "ReplacementEmailContent": {
                "ReplacementTemplate": {
                    "ReplacementTemplateData": self.serialize_json(
                        recipient_merge_data(self.message, address)
                    )
                }
            },
        }
        if headers:
            entry["ReplacementHeaders"] = headers
        return entry

    def parse_recipient_status(self, response):
        """Each destination's answer, in the order sent: SES documents BulkEmailEntryResults
        as one result per BulkEmailEntries item, in its order."""
        addresses = [to.addr_spec for to in self.recipients["to"]]
        try:
            results = response["BulkEmailEntryResults"]
            statuses = [_entry_status(result) for result in results]
        except (KeyError, TypeError) as error:
            raise AnymailAPIError(
                f"{error!s} parsing Amazon SES bulk result {response!r}",
                backend=self.backend,
                email_message=self.message,
                payload=self,
            ) from None
        if len(statuses) != len(addresses):
            raise AnymailAPIError(
                f"sent {len(addresses)} destinations, got {len(statuses)} results",
                backend=self.backend,
                email_message=self.message,
                payload=self,
            )
        return dict(zip(addresses, statuses, strict=True))


def _entry_status(result: dict) -> AnymailRecipientStatus:
    status = result["Status"]
    if status == "SUCCESS":
        return AnymailRecipientStatus(message_id=result.get("MessageId"), status="queued")
    reason = f"{status}: {result.get('Error') or ''}".rstrip(": ")
    if status == QUOTA_STATUS:
        return QuotaExhaustedStatus(reason)
    if status in TRANSIENT_STATUSES:
        return DeferredStatus(reason)
    return RefusedStatus(reason)
