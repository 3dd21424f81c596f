"""SparkPost batch sending: Anymail's SparkPost backend, with a refused address failing alone.

SparkPost merges on its side: one transmission carries a body once and each recipient with
their ``substitution_data`` (their links, and their ``List-Unsubscribe`` header through
Anymail's ``{{Header__List_Unsubscribe}}``) and ``metadata`` (their delivery id), as Anymail
sends it. SparkPost runs its template language over the subject, headers and both bodies:
the fields are spelled ``{{name}}`` (HTML-escaped in the HTML body, as
``merge_fields_apply`` escapes them), and literal braces in our text are written
``{{opening_double_curly()}}``/``{{closing_double_curly()}}`` (newsletter/providers.py,
``literals``).

SparkPost documents that a transmission of many recipients accepts them all at first: a
suppressed address among them is rejected afterwards, reported by a ``policy_rejection``
event (the tracking webhook), not in the answer. A transmission of one suppressed address is
refused in the answer (420). A 400 refusing the whole call is split as newsletter/refusals.py
does.
"""

from __future__ import annotations

from anymail.backends.sparkpost import EmailBackend as AnymailSparkPostBackend

from newsletter.refusals import RefusalSplittingMixin


class SparkPostEmailBackend(RefusalSplittingMixin, AnymailSparkPostBackend):
    pass
