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
"""

from __future__ import annotations

import copy
import os
import threading

import boto3
from anymail.backends.amazon_ses import AmazonSESV2SendEmailPayload
from anymail.backends.amazon_ses import EmailBackend as AnymailSesBackend
from anymail.exceptions import AnymailAPIError, AnymailRequestsAPIError
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
SEND_EVENT = "before-send.sesv2.SendEmail"
MIME_KEY = "amazon_ses"  # this backend's templates of a content (newsletter/mime_copies.py)


def _turn_at_the_wire(**_: object) -> None:
    """boto3's before-send handler: the call is built and signed; wait for its turn. (Returns
    None: a value would be taken as the answer.)"""
    pacer = getattr(_calling, "pacer", None)
    if pacer is not None:
        pacer.turn()


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
                client.meta.events.register(SEND_EVENT, _turn_at_the_wire)
                _clients[key] = client
        self.client = client
        return True

    def close(self):
        # The client (and its connections) stays for the process's next chunk.
        self.client = None

    def pace_with(self, pacer) -> None:
        self.pacer = pacer

    def build_message_payload(self, message, defaults):
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
