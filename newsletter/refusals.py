"""A recipient the provider's API refuses fails alone, not with everyone on its call.

Mailgun and SendGrid refuse a whole call (400) for one address they will not take, and
Mailgun's answer does not say which. A digest call carries every reader of one content, so
one such address would fail all of them. A 400 means the provider took nothing, so sending
again is safe: the call is split in halves, each sent on its own, down to the refused
address, which gets the status "rejected" (recorded as failed for that row alone). One bad
address among n costs about 2 log2(n) extra calls; none are made when nothing is refused.
"""

from __future__ import annotations

import copy

from anymail.exceptions import AnymailError, AnymailRequestsAPIError
from anymail.message import AnymailRecipientStatus, AnymailStatus
from anymail.utils import UNSET

from newsletter.composition import addr_spec

REFUSED = 400  # the provider refused the request: nothing of it was taken


def _part(message, recipients: list[str]):
    """A copy of the batch message for some of its To recipients, with their merge data."""
    part = copy.copy(message)
    part.to = recipients
    wanted = {addr_spec(r) for r in recipients}
    for name in ("merge_data", "merge_headers", "merge_metadata"):
        values = getattr(message, name, None)
        if values and values is not UNSET:
            setattr(part, name, {k: v for k, v in values.items() if k in wanted})
    return part


class RefusalSplittingMixin:
    """For an Anymail backend whose batch message carries many To recipients."""

    def _send(self, message) -> bool:
        try:
            return super()._send(message)
        except AnymailRequestsAPIError as error:
            if error.status_code != REFUSED or len(message.to) < 2 or message.cc or message.bcc:
                raise
            refused = error
        statuses: dict[str, AnymailRecipientStatus] = {}
        try:
            self._send_halves(message, statuses)
        except AnymailError:
            # Halves sent before this error were taken: their statuses go with the error, so
            # they are recorded and never sent again; recipients not reached get no status
            # (recorded as failed, for "Retry failed"), never a blind re-send of the message.
            message.anymail_status = AnymailStatus()
            message.anymail_status.set_recipient_status(statuses)
            raise
        if all(s.status == "rejected" for s in statuses.values()):
            raise refused  # the call itself is unacceptable, not one of its addresses
        message.anymail_status = AnymailStatus()
        message.anymail_status.set_recipient_status(statuses)
        return True

    def _send_halves(self, message, statuses: dict[str, AnymailRecipientStatus]) -> None:
        """Send `message` in two halves, each split again while refused; fills `statuses`."""
        middle = len(message.to) // 2
        for recipients in (message.to[:middle], message.to[middle:]):
            part = _part(message, recipients)
            try:
                super()._send(part)
            except AnymailRequestsAPIError as error:
                if error.status_code != REFUSED:
                    raise
                if len(recipients) == 1:
                    statuses[addr_spec(recipients[0])] = AnymailRecipientStatus(None, "rejected")
                else:
                    self._send_halves(part, statuses)
                continue
            statuses.update(part.anymail_status.recipients)
