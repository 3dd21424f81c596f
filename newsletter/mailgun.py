"""Mailgun batch sending with fewer bytes per email: Anymail's Mailgun backend, two changes.

Mailgun merges on its side (``recipient-variables``): one call carries a body once and each
recipient's values beside it, and Anymail already sends it so. What it sends more than needed:

- The form URL-encoded. Anymail posts a message without attachments as
  ``application/x-www-form-urlencoded``, where every ``<``, ``>``, ``"``, ``=``, ``;``, ``:``,
  ``/`` and space of the HTML body becomes three bytes. Mailgun documents
  ``multipart/form-data`` for the same fields, which carries each body as it is: the form
  is sent that way.
- Each recipient's unsubscribe URL twice: once as the ``unsubscribe_url`` merge value and
  again, whole, as their ``List-Unsubscribe`` header. Mailgun fills ``%recipient.*%`` in
  ``h:`` headers too, so where a recipient's header is exactly ``<their unsubscribe_url>``
  the header is written once for the call as ``<%recipient.unsubscribe_url%>``.

What stays per email: the distinct body. Mailgun's only per-recipient mechanism is text
substitution into the one body of a call (values cannot bring in shared blocks), so a reader
whose selection nobody shares costs a call carrying their whole body (README, "Providers").
A refused address fails alone (newsletter/refusals.py).
"""

from __future__ import annotations

from anymail.backends.mailgun import EmailBackend as AnymailMailgunBackend
from anymail.backends.mailgun import MailgunPayload

from newsletter.composition import LIST_UNSUBSCRIBE, UNSUBSCRIBE_URL, list_unsubscribe_is_merged
from newsletter.refusals import RefusalSplittingMixin


class MailgunLeanPayload(MailgunPayload):
    def set_merge_headers(self, merge_headers):
        self.merge_headers = merge_headers
        if list_unsubscribe_is_merged(self.message, merge_headers):
            # Filled by Mailgun from the recipient's own unsubscribe_url value.
            self.merge_headers = {}
            self.data[f"h:{LIST_UNSUBSCRIBE}"] = f"<%recipient.{UNSUBSCRIBE_URL}%>"

    def get_request_params(self, api_url):
        params = super().get_request_params(api_url)
        if not params.get("files"):
            # Every field as a form-data part with no file name: multipart without files.
            fields = []
            for name, value in params.pop("data").items():
                for one in value if isinstance(value, list) else [value]:
                    fields.append((name, (None, str(one).encode())))
            params["files"] = fields
        return params


class MailgunLeanEmailBackend(RefusalSplittingMixin, AnymailMailgunBackend):
    def build_message_payload(self, message, defaults):
        return MailgunLeanPayload(message, defaults, self)
