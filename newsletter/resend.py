"""Resend: a claim's filled copies go out in calls of up to 100, through ``/emails/batch``.

Resend cannot merge per-recipient fields into a body rendered here, so each reader gets a
filled copy of their own (newsletter/services/single_sends.py). Anymail's Resend backend posts
each message on its own (``/emails``), and its batch path is only for one message to many
recipients sharing one body: no use for copies that each have their own links. Resend's
``POST /emails/batch`` takes up to 100 separate emails in one JSON list, so ``send_messages``
here builds each copy's payload with Anymail (the very object it would post to ``/emails``:
its own ``to``, headers with List-Unsubscribe, metadata and tags as Anymail's X-Metadata and
X-Tags headers) and posts up to 100 of them in one call. One call per claim instead of one
per reader: Resend's default limit is 2 requests per second, 2 emails/s one copy per call and
up to 200 this way.

The call asks for permissive validation (``x-batch-validation: permissive``): an email Resend
will not take (a bad address) is listed in the answer's ``errors`` by its index and fails
alone, the others are created; the answer's ``data`` holds the created emails' ids in the
order they were sent. Without it one such email refuses the whole call (Resend's strict
default). A message that does not fit a batch (attachments, a send time, cc/bcc, several To:
Resend's batch endpoint takes no attachments or ``scheduled_at``) goes out Anymail's way on
its own. As with Anymail, messages are answered in order; on an error the messages answered
before it keep their ``anymail_status``, every message of the failed call is listed in the
error's ``email_messages``, and later messages are not attempted.
"""

from __future__ import annotations

import orjson
from anymail.backends.resend import EmailBackend as AnymailResendBackend
from anymail.backends.resend import ResendPayload
from anymail.exceptions import AnymailError, AnymailRequestsAPIError, AnymailSerializationError
from anymail.message import AnymailRecipientStatus, AnymailStatus
from anymail.utils import UNSET

from newsletter.providers import PROVIDERS

BATCH_LIMIT = PROVIDERS["resend"].batch_limit  # emails per /emails/batch call
BATCH_ENDPOINT = "emails/batch"


class RefusedStatus(AnymailRecipientStatus):
    """A copy Resend would not create, with its reason (kept in the row's last_error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(None, "rejected")
        self.reason = reason


def batchable(message) -> bool:
    """Whether the message can be one email of a batch call: one To, nothing to merge, no
    attachment or send time (which /emails/batch does not take)."""
    return (
        len(message.to) == 1
        and not (message.cc or message.bcc or message.attachments)
        and getattr(message, "send_at", UNSET) in (UNSET, None)
        and getattr(message, "merge_data", UNSET) in (UNSET, None, {})
    )


class _BatchCall:
    """The request of one /emails/batch call, in the shape Anymail's post_to_esp posts."""

    def __init__(self, payloads: list[ResendPayload]) -> None:
        self.payloads = payloads

    def get_request_params(self, api_url: str) -> dict:
        first = self.payloads[0]
        try:
            # orjson: a full call is about 4 MB of JSON, which json.dumps is slow to encode.
            data = orjson.dumps([p.data for p in self.payloads], default=first._json_default)
        except TypeError as err:  # orjson.JSONEncodeError is a TypeError
            raise AnymailSerializationError(
                orig_err=err, email_message=first.message, backend=first.backend, payload=first
            ) from None
        return {
            "method": "POST",
            "url": api_url + BATCH_ENDPOINT,
            "data": data,
            "headers": {**first.headers, "x-batch-validation": "permissive"},
        }


class ResendBatchEmailBackend(AnymailResendBackend):
    def send_messages(self, email_messages) -> int:
        if len(email_messages) < 2:
            return super().send_messages(email_messages)
        created_session = self.open()
        try:
            return self._send_batched(email_messages)
        finally:
            if created_session:
                self.close()

    def _send_batched(self, email_messages) -> int:
        sent = 0
        call: list[tuple[object, ResendPayload]] = []
        for message in email_messages:
            if not batchable(message):
                sent += self._post_batch(call)
                call = []
                sent += bool(self._send(message))
                continue
            message.anymail_status = AnymailStatus()
            if not self.run_pre_send(message) or not message.recipients():
                continue
            call.append((message, self.build_message_payload(message, self.send_defaults)))
            if len(call) == BATCH_LIMIT:
                sent += self._post_batch(call)
                call = []
        return sent + self._post_batch(call)

    def _post_batch(self, call: list[tuple[object, ResendPayload]]) -> int:
        if not call:
            return 0
        first_message, first_payload = call[0]
        try:
            response = self.post_to_esp(_BatchCall([p for _, p in call]), first_message)
            answer = self.deserialize_json_response(response, first_payload, first_message)
            statuses = _statuses(answer, len(call))
            if statuses is None:
                raise AnymailRequestsAPIError(
                    "Invalid Resend batch response: one id or error per email expected",
                    email_message=first_message,
                    payload=first_payload,
                    response=response,
                    backend=self,
                )
        except AnymailError as error:
            error.email_messages = [message for message, _ in call]
            raise
        refused = None
        for (message, payload), status in zip(call, statuses, strict=True):
            message.anymail_status.esp_response = response
            address = payload.to_recipients[0].addr_spec
            message.anymail_status.set_recipient_status({address: status})
            self.run_post_send(message)
            try:
                self.raise_for_recipient_status(message.anymail_status, response, payload, message)
            except AnymailError as error:
                # The others of the call were created: all are answered first, and the first
                # refusal is raised at the end.
                refused = refused or error
        if refused is not None:
            raise refused
        return len(call)


def _statuses(answer, count: int) -> list[AnymailRecipientStatus] | None:
    """Each email's status from a permissive batch answer, in the order they were sent; None
    when the answer does not account for every email exactly once."""
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        return None
    reasons: dict[int, str] = {}
    for error in answer.get("errors") or []:
        index = error.get("index") if isinstance(error, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or index in reasons:
            return None
        reasons[index] = str(error.get("message") or "refused")
    ids = iter(answer["data"])
    statuses: list[AnymailRecipientStatus] = []
    for index in range(count):
        if index in reasons:
            statuses.append(RefusedStatus(reasons[index]))
            continue
        created = next(ids, None)
        if not isinstance(created, dict) or not created.get("id"):
            return None
        statuses.append(AnymailRecipientStatus(created["id"], "queued"))
    if next(ids, None) is not None:
        return None
    return statuses
