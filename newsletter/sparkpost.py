"""SparkPost batch sending: Anymail's SparkPost backend, a refused address failing alone and
each reader's unsubscribe URL sent once.

SparkPost merges on its side: one transmission carries a body once and each recipient with
their ``substitution_data`` (their links) and ``metadata`` (their delivery id), as Anymail
sends it. SparkPost runs its template language over the subject, headers and both bodies:
the fields are spelled ``{{name}}`` (HTML-escaped in the HTML body, as
``merge_fields_apply`` escapes them), and literal braces in our text are written
``{{opening_double_curly()}}``/``{{closing_double_curly()}}`` (newsletter/providers.py,
``literals``).

Anymail sends each recipient's ``List-Unsubscribe`` as a substitution value of its own
(``Header__List_Unsubscribe``), the unsubscribe URL a second time. Where every recipient's
header is exactly ``<their unsubscribe_url>``, the header is written once for the
transmission as ``<{{unsubscribe_url}}>``, filled by SparkPost from the value each recipient
already carries.

SparkPost documents that a transmission of many recipients accepts them all at first: a
suppressed address among them is rejected afterwards, reported by a ``policy_rejection``
event (the tracking webhook), not in the answer. A transmission of one suppressed address is
refused in the answer (420). A 400 refusing the whole call is split as newsletter/refusals.py
does.
"""

from __future__ import annotations

from anymail.backends.sparkpost import EmailBackend as AnymailSparkPostBackend
from anymail.backends.sparkpost import SparkPostPayload

from newsletter.composition import LIST_UNSUBSCRIBE, UNSUBSCRIBE_URL, list_unsubscribe_is_merged
from newsletter.refusals import RefusalSplittingMixin


class SparkPostLeanPayload(SparkPostPayload):
    def set_merge_headers(self, merge_headers):
        if not list_unsubscribe_is_merged(self.message, merge_headers):
            return super().set_merge_headers(merge_headers)
        headers = self.data["content"].setdefault("headers", {})
        headers[LIST_UNSUBSCRIBE] = "<{{" + UNSUBSCRIBE_URL + "}}>"


class SparkPostEmailBackend(RefusalSplittingMixin, AnymailSparkPostBackend):
    def build_message_payload(self, message, defaults):
        return SparkPostLeanPayload(message, defaults, self)
