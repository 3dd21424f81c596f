"""Mailjet batch sending: Anymail's Mailjet backend, told to run Mailjet's template language.

Mailjet merges on its side with its Send API v3.1: ``Globals`` carry the body once, and one
message per recipient carries their ``Variables`` (their links), ``Headers``
(``List-Unsubscribe``) and ``EventPayload`` (their delivery id), as Anymail sends it. Mailjet
fills ``{{var:name}}`` only when the call asks for its template language, which Anymail does
only with a stored template: the payload here sets ``TemplateLanguage``. Mailjet's language
documents no escape for its own delimiters, so literal ``{{``, ``}}``, ``{%`` and ``%}`` in our
text are printed as variables whose values are those delimiters
(newsletter/providers.py, ``MAILJET_LITERALS``); each message whose body needs them carries
them. (Anymail's payload also lost a lone recipient's Variables and Headers: fixed here.)
Mailjet answers a message it refuses in the answer (``"Status": "error"``), so that recipient
fails alone; a 400 refusing the whole call is split as newsletter/refusals.py does.
"""

from __future__ import annotations

from anymail.backends.mailjet import EmailBackend as AnymailMailjetBackend
from anymail.backends.mailjet import MailjetPayload

from newsletter.providers import MAILJET_LITERAL_VARIABLES, MAILJET_LITERALS
from newsletter.refusals import RefusalSplittingMixin

_PARTS = ("Subject", "TextPart", "HTMLPart")


class MailjetTemplatePayload(MailjetPayload):
    _burst = False

    def _burst_for_batch_send(self):
        # Anymail's bursts again whenever Messages holds one message, which for a batch of one
        # recipient rebuilds it from its To and drops the Variables and Headers set before.
        if not self._burst:
            super()._burst_for_batch_send()
            self._burst = True

    def serialize_data(self):
        shared = self.data["Globals"]
        shared["TemplateLanguage"] = True
        needed = any(
            spelled in (shared.get(part) or "")
            for part in _PARTS
            for _, spelled in MAILJET_LITERALS
        )
        if needed:
            for message in self.data["Messages"]:
                message["Variables"] = {**MAILJET_LITERAL_VARIABLES, **message.get("Variables", {})}
        return super().serialize_data()


class MailjetEmailBackend(RefusalSplittingMixin, AnymailMailjetBackend):
    def build_message_payload(self, message, defaults):
        return MailjetTemplatePayload(message, defaults, self)
