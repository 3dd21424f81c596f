"""Brevo batch sending: Anymail's Brevo backend, with a refused address failing alone.

Brevo merges on its side: one call carries the body once (top-level ``htmlContent`` and
``textContent``) and one ``messageVersions`` entry per recipient with their ``params`` (their
links) and ``headers`` (``List-Unsubscribe``, and ``X-Mailin-custom`` carrying their delivery
id), as Anymail sends it; Brevo answers one message id per version. Brevo runs its template
language over the subject and bodies: the fields are spelled ``{{ params.name }}`` and
literal delimiters in our text are wrapped in ``{% verbatim %}`` (newsletter/providers.py,
``literals``). Brevo refuses a whole call (400) for an address it will not take (a blocked
contact, an invalid address): the call is split as newsletter/refusals.py does.
"""

from __future__ import annotations

from anymail.backends.brevo import EmailBackend as AnymailBrevoBackend

from newsletter.refusals import RefusalSplittingMixin


class BrevoEmailBackend(RefusalSplittingMixin, AnymailBrevoBackend):
    pass
