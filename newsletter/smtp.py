"""Sending through the operator's own mail server, answered the way the Anymail backends answer.

Django's SMTP backend sends a list of messages over one connection (kept open for the whole
chunk), but raises smtplib's errors and records nothing per recipient. The send code decides
what an answer means from Anymail's vocabulary (newsletter/services/sending.py,
``send_outcome``), so this backend translates:

- accepted: each recipient the server took is "sent", with the Message-ID we generated (SMTP
  gives no id of its own); recipients refused at RCPT are "rejected", the others still go.
- a 4xx reply or a server that cannot be reached before the message is handed over: certainly
  not taken, retried later (reported as the HTTP 503 of the API providers).
- a connection lost while the message was being handed over: the server may have taken it, so
  the outcome is unknown and it is never re-sent blindly.
- any other 5xx reply: refused for good.

Each copy's MAIL, RCPT and DATA go to the server together where it advertises PIPELINING
(newsletter/smtp_connection.py): two round trips a copy instead of four.

An SMTP server cannot be asked afterwards what it took, so a crashed claim's rows are marked
"unknown" for an operator to settle (README, "Providers").
"""

from __future__ import annotations

import functools
import smtplib

from anymail.exceptions import AnymailAPIError, AnymailRequestsAPIError
from anymail.message import AnymailRecipientStatus, AnymailStatus
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend
from django.core.mail.message import make_msgid, sanitize_address
from django.core.mail.utils import DNS_NAME

from newsletter import mime_copies
from newsletter.composition import addr_spec
from newsletter.smtp_connection import PipeliningSMTP, PipeliningSMTP_SSL

TEMPORARY = 503  # what a temporary SMTP failure is reported as
MIME_KEY = "smtp"  # this backend's templates of a content (newsletter/mime_copies.py)


@functools.lru_cache(maxsize=16)
def _sender(address: str, encoding: str) -> str:
    # Every message of a send has the same sender: parsed once, not once per copy.
    return sanitize_address(address, encoding)


class SmtpOutcomeUnknown(AnymailRequestsAPIError):
    """The connection broke while the server had the message: it may have been taken.
    (A status-less requests error is what the send code reads as "unknown".)"""


class SmtpEmailBackend(DjangoSmtpBackend):
    esp_name = "SMTP"  # named in the errors raised, as Anymail's backends are
    # The send rate's (pace_with), for the backend's life: one chunk. Not dropped by close(),
    # which send_messages calls after each call it opened the connection for.
    pacer = None

    @property
    def connection_class(self):
        # MAIL, RCPT and DATA in one round trip where the server allows it.
        return PipeliningSMTP_SSL if self.use_ssl else PipeliningSMTP

    def pace_with(self, pacer) -> None:
        """Take the send rate's turn of each message right before its bytes are written."""
        self.pacer = pacer

    def open(self):
        try:
            return super().open()
        except (OSError, smtplib.SMTPException) as error:
            raise AnymailAPIError(
                f"SMTP server unreachable: {error}", status_code=TEMPORARY, backend=self
            ) from error

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        message_id = self._headers_add(email_message)
        # A status of this copy's own, as Anymail's backends give each message they send:
        # copies made from one message share its status object, and copies sent at once
        # (newsletter/services/concurrent_sends.py) would record into each other's.
        email_message.anymail_status = AnymailStatus()
        try:
            refused = self._sendmail(email_message)
        except smtplib.SMTPRecipientsRefused as error:
            refused = error.recipients
        except smtplib.SMTPResponseException as error:
            raise AnymailAPIError(
                f"SMTP server answered {error.smtp_code}: {error.smtp_error!r}",
                status_code=TEMPORARY if 400 <= error.smtp_code < 500 else None,
                email_message=email_message,
                backend=self,
            ) from error
        except (smtplib.SMTPServerDisconnected, OSError) as error:  # timeouts included
            self.connection = None  # reopened for the next message
            raise SmtpOutcomeUnknown(
                f"SMTP connection lost while sending: {error}",
                email_message=email_message,
                backend=self,
            ) from error
        refused = {addr_spec(str(a)).lower() for a in refused}
        email_message.anymail_status.set_recipient_status(
            {
                addr_spec(r): AnymailRecipientStatus(
                    message_id=None if addr_spec(r).lower() in refused else message_id,
                    status="rejected" if addr_spec(r).lower() in refused else "sent",
                )
                for r in email_message.recipients()
            }
        )
        return len(refused) < len(email_message.recipients())

    @staticmethod
    def _headers_add(email_message) -> str:
        """The headers this backend adds to a message; returns its Message-ID."""
        metadata = getattr(email_message, "metadata", None) or {}
        # What the provider APIs carry as metadata goes into headers, for the server's logs.
        for name in ("issue", "claim", "delivery"):
            if metadata.get(name):
                email_message.extra_headers[f"X-Paperboy-{name.capitalize()}"] = metadata[name]
        return email_message.extra_headers.setdefault("Message-ID", make_msgid(domain=DNS_NAME))

    @staticmethod
    def _mime(email_message):
        """The message as Django's backend writes it on the wire: (MIME message, bytes, line
        separator)."""
        mime = email_message.message()
        return mime, mime.as_bytes(linesep="\r\n"), "\r\n", None

    def _mime_probe(self, probe):
        # The template's copy (newsletter/mime_copies.py) gets the headers each copy gets.
        self._headers_add(probe)
        return self._mime(probe)

    def _sendmail(self, email_message) -> dict:
        """Django's own _send, returning the recipients the server refused at RCPT."""
        if self.connection is None:
            self.open()
        encoding = email_message.encoding or "utf-8"
        from_email = _sender(email_message.from_email, encoding)
        # A copy of a content is filled into the content's template; any other message, or a
        # copy the template cannot make exactly, is built whole.
        filled = mime_copies.copy_filled(email_message, key=MIME_KEY, build=self._mime_probe)
        if filled is not None:
            # Its one recipient is a plain addr-spec (mime_copies), which sanitize_address
            # gives back as it is.
            recipients = email_message.recipients()
            data = filled.raw
        else:
            recipients = [sanitize_address(a, encoding) for a in email_message.recipients()]
            data = self._mime(email_message)[1]
        if self.pacer is not None:
            self.pacer.turn()  # built: the turn is taken as it goes on the wire
        return self.connection.sendmail(from_email, recipients, data)
