"""One message per recipient, for providers that cannot merge fields into our bodies.

The digest is built as one message per distinct content with Anymail ``merge_data`` (each
recipient's links). Postmark (through newsletter/backends.py), Mailgun, SendGrid, SparkPost,
Brevo, Mailjet and Amazon SES fill those in on their side. Where a provider cannot
(``Provider.merges`` false), or its merging call cannot carry a message exactly
(``Provider.carries``: an SES content Handlebars cannot write), each recipient gets a copy
with its fields filled in here, exactly as the outbox and the preview fill them, and its
per-recipient headers and metadata made the copy's own; the send code then sees one group of
one row per copy, so a refused, failed or unanswered copy concerns that row alone. The
copies are sent one per call, except through Resend, whose backend (newsletter/resend.py)
posts a claim's copies in one /emails/batch call.
"""

from __future__ import annotations

from collections.abc import Callable

from anymail.message import AnymailMessage
from anymail.utils import UNSET

from newsletter import mime_copies
from newsletter.composition import messages_per_recipient
from newsletter.models import Delivery


def message_single(message: AnymailMessage) -> list[tuple[str, AnymailMessage]]:
    """The message's copies, one per recipient: (address, copy) with nothing left to merge.

    Backends that build a whole MIME message per copy (SMTP, Amazon SES) build the copies of
    one message from one template of it (newsletter/mime_copies.py), not each from scratch.
    """
    copies = _copies(message)
    if len(copies) > 1:
        mime_copies.content_share(message, [one for _, one in copies], copies_of=_copies)
    return copies


def _copies(message: AnymailMessage) -> list[tuple[str, AnymailMessage]]:
    merge_metadata = message.merge_metadata or {}
    copies = []
    for address, one in messages_per_recipient(message):
        one.metadata = {**(message.metadata or {}), **merge_metadata.get(address, {})}
        one.merge_data = one.merge_headers = one.merge_metadata = UNSET
        copies.append((address, one))
    return copies


def chunk_single(
    groups: list[list[Delivery]],
    messages: list[AnymailMessage],
    *,
    keep: Callable[[AnymailMessage], bool] | None = None,
) -> tuple[list[list[Delivery]], list[AnymailMessage]]:
    """The chunk's (groups, messages) as one single-row group and one copy per recipient;
    with `keep`, the messages it says the provider's merging call carries stay as they are."""
    single_groups, single_messages = [], []
    for group, message in zip(groups, messages, strict=True):
        if keep is not None and keep(message):
            single_groups.append(group)
            single_messages.append(message)
            continue
        by_address = {d.subscriber.email.lower(): d for d in group}
        for address, one in message_single(message):
            single_groups.append([by_address[address.lower()]])
            single_messages.append(one)
    return single_groups, single_messages
