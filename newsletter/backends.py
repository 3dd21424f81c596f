"""Postmark batch sending with per-recipient merge fields in the bodies.

Postmark's ``/email/batch`` takes up to 500 separate messages in one call and answers with a
status and message id for each, which is what exactly-once bookkeeping wants. Anymail sends
``merge_data`` to Postmark only through server-side templates; the digest is rendered here,
so this backend fills the ``{{field}}`` merge fields into each recipient's copy of the bodies
itself (HTML-escaped in the HTML part), and otherwise is Anymail's Postmark backend unchanged.
"""

from __future__ import annotations

from anymail.backends.postmark import EmailBackend as PostmarkBackend
from anymail.backends.postmark import PostmarkPayload

from config.outbox import merge_fields_apply


class PostmarkBatchPayload(PostmarkPayload):
    def _uses_template(self) -> bool:
        return "TemplateAlias" in self.data or "TemplateId" in self.data

    def get_api_endpoint(self) -> str:
        if self.merge_data and not self._uses_template() and not self.backend.use_bulk_api:
            return "email/batch"
        return super().get_api_endpoint()

    def data_for_recipient(self, to):
        data = super().data_for_recipient(to)
        if self._uses_template():
            return data
        fields = data.pop("TemplateModel", None) or {}
        if fields:
            if "HtmlBody" in data:
                data["HtmlBody"] = merge_fields_apply(data["HtmlBody"], fields, html_escape=True)
            if "TextBody" in data:
                data["TextBody"] = merge_fields_apply(data["TextBody"], fields, html_escape=False)
        return data


class PostmarkBatchEmailBackend(PostmarkBackend):
    def build_message_payload(self, message, defaults):
        return PostmarkBatchPayload(message, defaults, self)
