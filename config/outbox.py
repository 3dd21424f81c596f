"""A local outbox: every outgoing message is written to ``var/outbox/`` as one ``.eml`` file.

It is the default email backend for a newcomer (no provider needed). Files open in any mail
client, and in DEBUG the site lists and shows them at ``/outbox/``.
"""

from __future__ import annotations

import copy
import email
import functools
import html
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage as ParsedMessage
from email.policy import default as default_policy
from pathlib import Path

from anymail.message import AnymailRecipientStatus, AnymailStatus
from anymail.utils import UNSET
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

MERGE_FIELD = re.compile(r"(\{\{\s*([A-Za-z0-9_]+)\s*\}\})")


@functools.lru_cache(maxsize=64)
def _merge_parts(text: str) -> tuple[str, ...]:
    """``text`` split around its merge fields: literal, (field as written, name, literal)*.

    Cached because one body is filled for every recipient of a batch message: the scan for
    fields then happens once per body instead of once per recipient.
    """
    return tuple(MERGE_FIELD.split(text))


def merge_fields_apply(text: str, data: dict[str, str], *, html_escape: bool) -> str:
    """Replace ``{{name}}`` merge fields with a recipient's values (escaped for HTML bodies).

    Unknown fields are left as they are, as a provider would.
    """
    parts = _merge_parts(text)
    if len(parts) == 1:
        return text
    filled = [parts[0]]
    for index in range(1, len(parts), 3):
        written, name, literal = parts[index : index + 3]
        if name in data:
            value = str(data[name])
            written = html.escape(value) if html_escape else value
        filled += (written, literal)
    return "".join(filled)


def outbox_dir() -> Path:
    return Path(settings.EMAIL_OUTBOX_DIR)


def messages_per_recipient(message: EmailMessage) -> list[tuple[str, EmailMessage]]:
    """Expand a batch message (Anymail merge_data/merge_headers) into one message per recipient.

    Like a provider's batch send: each To recipient gets their own copy, sees only their own
    address, and has their merge fields filled in.
    """
    merge_data = _anymail_attr(message, "merge_data")
    merge_headers = _anymail_attr(message, "merge_headers")
    if merge_data is None and not merge_headers:
        return [("", message)]
    copies = []
    for recipient in message.to:
        address = _addr_spec(recipient)
        data = {**(_anymail_attr(message, "merge_global_data") or {})}
        data.update((merge_data or {}).get(address, {}))
        one = copy.copy(message)
        one.to, one.cc, one.bcc = [recipient], [], []
        one.body = merge_fields_apply(message.body, data, html_escape=False)
        one.extra_headers = {**message.extra_headers, **(merge_headers or {}).get(address, {})}
        if isinstance(message, EmailMultiAlternatives):
            one.alternatives = []
            for content, mimetype in message.alternatives:
                html_escape = mimetype == "text/html"
                one.attach_alternative(
                    merge_fields_apply(content, data, html_escape=html_escape), mimetype
                )
        copies.append((address, one))
    return copies


def _anymail_attr(message: EmailMessage, name: str):
    value = getattr(message, name, None)
    return None if value is UNSET else value


def _addr_spec(address: str) -> str:
    match = re.search(r"<([^>]*)>\s*$", address)
    return (match.group(1) if match else address).strip()


class OutboxEmailBackend(BaseEmailBackend):
    """Writes each message, or each recipient's copy of a batch message, to var/outbox/."""

    def send_messages(self, email_messages: list[EmailMessage]) -> int:
        directory = outbox_dir()
        directory.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            statuses = {}
            for address, one in messages_per_recipient(message):
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
                path = directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
                # Write then rename, so a reader never sees half a message.
                partial = path.with_suffix(".part")
                partial.write_bytes(one.message().as_bytes(linesep="\r\n"))
                partial.rename(path)
                for recipient in [address] if address else map(_addr_spec, one.recipients()):
                    statuses[recipient] = AnymailRecipientStatus(
                        message_id=path.name, status="sent"
                    )
            # The same per-recipient status Anymail's real backends report.
            message.anymail_status = AnymailStatus()
            message.anymail_status.set_recipient_status(statuses)
            sent += 1
        return sent


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    parsed: ParsedMessage

    @property
    def subject(self) -> str:
        return str(self.parsed.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.parsed.get("To", ""))

    @property
    def date(self) -> str:
        return str(self.parsed.get("Date", ""))

    def body(self, subtype: str) -> str:
        part = self.parsed.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""


def outbox_read(name: str) -> OutboxMessage | None:
    path = outbox_dir() / name
    # Only plain file names from the listing: no paths, nothing outside the outbox.
    if path.name != name or path.suffix != ".eml" or not path.is_file():
        return None
    parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    return OutboxMessage(name=name, parsed=parsed)  # type: ignore[arg-type]


def outbox_list(limit: int = 200) -> list[OutboxMessage]:
    directory = outbox_dir()
    if not directory.is_dir():
        return []
    names = sorted((p.name for p in directory.glob("*.eml")), reverse=True)[:limit]
    return [m for m in (outbox_read(n) for n in names) if m is not None]
