"""A local outbox: every outgoing message is written to ``var/outbox/`` as one ``.eml`` file.

It is the default email backend for a newcomer (no provider needed). Files open in any mail
client, and in DEBUG the site lists and shows them at ``/outbox/``. A batch message is
expanded per recipient, merge fields filled, by the same code as the production backend
(``newsletter.composition``).
"""

from __future__ import annotations

import email
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage as ParsedMessage
from email.policy import default as default_policy
from pathlib import Path

from anymail.message import AnymailRecipientStatus, AnymailStatus
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from newsletter.composition import addr_spec, messages_per_recipient


def outbox_dir() -> Path:
    return Path(settings.EMAIL_OUTBOX_DIR)


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
                for recipient in [address] if address else map(addr_spec, one.recipients()):
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
