"""SendGrid batch sending: Anymail's SendGrid backend, with a refused address failing alone.

SendGrid merges on its side: one call carries a body once and one personalization per
recipient (their ``substitutions``, ``headers`` and ``custom_args``), as Anymail sends it. A
call carries one body, so each distinct content is one call. SendGrid's "sections" (blocks
sent once per call that a substitution could pull in) would have let readers with distinct
selections share paper blocks; SendGrid has removed them from the API, so a reader whose
selection nobody shares costs a call carrying their whole body (README, "Providers").
"""

from __future__ import annotations

from anymail.backends.sendgrid import EmailBackend as AnymailSendGridBackend

from newsletter.refusals import RefusalSplittingMixin


class SendGridEmailBackend(RefusalSplittingMixin, AnymailSendGridBackend):
    pass
