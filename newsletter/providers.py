"""What each email provider can do, in one table, and the questions only a provider answers.

Anymail abstracts how to send; what it does not say is what the send code must plan around:
how many recipients one API call may carry (batches are cut to it), how a per-recipient merge
field is spelled in a body, how its template language is told that text is literal, and
whether the provider can be asked, after a worker died mid-call, which messages of that call
it accepted (so the sweeper marks them sent instead of sending them twice). Every provider
listed takes one call of separate recipients (Anymail ``merge_data``, so nobody sees anyone
else's address).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    batch_limit: int  # recipients per API call, as the provider documents it
    # Where one claim holds more rows than one call may carry: recipients per call (a claim's
    # readers of one content then go in several calls). Mailjet's calls carry at most 50
    # messages; claims of 50 cost a worker more in claiming and recording than in sending.
    call_limit: int = 0
    merge_field_format: str = "{{{{{}}}}}"  # str.format pattern of a body merge field: {{name}}
    # The spelling in the text body and subject, where it differs: a language that HTML-escapes
    # its plain fields everywhere (Handlebars) is given its unescaped ones there, so a reader
    # of the text part sees "&", not "&amp;". Empty: merge_field_format.
    text_field_format: str = ""
    # How a value is escaped where it fills an HTML body: as the provider's language escapes
    # it, so the preview and the copies filled here are byte for byte what it sends.
    html_escape: Callable[[str], str] = html.escape
    # How the provider's template language writes each of its delimiters as literal text, for
    # the providers that run one over our bodies and subjects: a paper title with "{{" (LaTeX
    # has them) must reach the reader as written, not be read as template syntax. Empty: the
    # provider only replaces its merge fields (Mailgun, SendGrid) or fills nothing.
    literals: tuple[tuple[str, str], ...] = ()
    # A character that, right before a field, makes the language print the field as written
    # (Handlebars: "\{{x}}" prints "{{x}}"), so a field found after it is literal text.
    field_escape: str = ""
    message_search_page: int = 0  # messages per page of its outbound search; 0: cannot search
    # Whether one call carries per-recipient merge fields for bodies rendered here. Where it
    # cannot, each recipient gets a copy with the fields filled in, one call per copy
    # (newsletter/services/single_sends.py), over one reused connection.
    merges: bool = True
    # Where a merging call cannot carry every message exactly (SES's inline templates take
    # only simple substitution): the dotted path of a function saying whether it carries one;
    # the messages it does not are sent as filled copies, one call each.
    carries: str = ""
    # True where one chunk goes in one HTTP call (our Postmark backend shares /email/batch
    # calls, our Resend backend posts a claim's filled copies to /emails/batch); otherwise one
    # call per message. The send rate paces each call, as many emails as it carries.
    one_call_per_chunk: bool = False
    # Whether the provider answers that its own daily quota is used up (SES's
    # ACCOUNT_DAILY_QUOTA_EXCEEDED): then each chunk first looks whether such an answer holds
    # every worker off it (newsletter/services/provider_quota.py).
    reports_daily_quota: bool = False


# SparkPost's template language (handlebars-like: {{name}}, {{{raw}}}, {{if}}...) documents two
# functions for literal braces; it has no {% %} syntax.
SPARKPOST_LITERALS = (
    ("{{", "{{opening_double_curly()}}"),
    ("}}", "{{closing_double_curly()}}"),
)
# Brevo's template language (Django-like: {{ params.x }}, {% tag %}, {# comment #}) documents
# the verbatim tag for text it must not interpret.
BREVO_LITERALS = tuple(
    (delimiter, "{% verbatim %}" + delimiter + "{% endverbatim %}")
    for delimiter in ("{{", "}}", "{%", "%}", "{#", "#}")
)
# Mailjet's template language ({{ expression }}, {% statement %}) documents no escape for its
# delimiters, so each is printed as a variable whose value is the delimiter: Paperboy's
# Mailjet backend sends these values with every message that needs them
# (newsletter/mailjet.py, MAILJET_LITERAL_VARIABLES).
MAILJET_LITERAL_VARIABLES = {
    "literal_open_curly": "{{",
    "literal_close_curly": "}}",
    "literal_open_percent": "{%",
    "literal_close_percent": "%}",
}
MAILJET_LITERALS = tuple(
    (value, "{{var:" + name + "}}") for name, value in MAILJET_LITERAL_VARIABLES.items()
)
# Amazon SES templates are Handlebars, and inline ones (the template sent with the call) take
# only simple substitution: {{name}} (HTML-escaped) and {{{name}}} (not). Handlebars documents
# "\{{" for a literal "{{" (the text after it, up to the next "{{", is printed as written);
# "}}" outside an expression is plain text. A backslash right before a "{{" changes what it
# means (two print one and make the "{{" an expression), which no simple substitution can
# write: a content that has one is sent as filled copies (newsletter/amazon_ses.py).
HANDLEBARS_LITERALS = (("{{", "\\{{"),)
_HANDLEBARS_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#x27;",
    "`": "&#x60;",
    "=": "&#x3D;",
}
_HANDLEBARS_SPECIAL = str.maketrans(_HANDLEBARS_ESCAPES)


def handlebars_escape(value: str) -> str:
    """A value as Handlebars' ``{{name}}`` writes it in HTML (its escapeExpression)."""
    return value.translate(_HANDLEBARS_SPECIAL)


PROVIDERS = {
    # /email/batch; fields filled by our backend; messages searchable by metadata.
    "postmark": Provider(batch_limit=500, message_search_page=500, one_call_per_chunk=True),
    "mailgun": Provider(batch_limit=1000, merge_field_format="%recipient.{}%"),
    "sendgrid": Provider(batch_limit=1000),
    # One transmission: each recipient's substitution_data and metadata beside one body.
    # SparkPost names no cap (a transmission "can send to a single recipient or thousands"):
    # 1,000 keeps its calls the size of Mailgun's and SendGrid's.
    "sparkpost": Provider(batch_limit=1000, literals=SPARKPOST_LITERALS),
    # One call: messageVersions (each recipient's params and headers), the body once; Brevo
    # takes up to 1,000 versions a call.
    "brevo": Provider(
        batch_limit=1000, merge_field_format="{{{{ params.{} }}}}", literals=BREVO_LITERALS
    ),
    # Send API v3.1: Globals (the body once) and one message per recipient (its Variables);
    # at most 50 messages a call, so a claim of 500 goes in calls of 50.
    "mailjet": Provider(
        batch_limit=500,
        call_limit=50,
        merge_field_format="{{{{var:{}}}}}",
        literals=MAILJET_LITERALS,
    ),
    # SESv2 SendBulkEmail: the body once as an inline Handlebars template, each of up to 50
    # destinations with its own values and headers (newsletter/amazon_ses.py). Claims of 500
    # in calls of 50, as Mailjet's: with claims of 50 a worker spent more in claiming,
    # rendering and recording than in sending.
    "amazon_ses": Provider(
        batch_limit=500,
        call_limit=50,
        text_field_format="{{{{{{{}}}}}}}",
        html_escape=handlebars_escape,
        literals=HANDLEBARS_LITERALS,
        field_escape="\\",
        carries="newsletter.amazon_ses.bulk_carries",
        reports_daily_quota=True,
    ),
    # One copy per recipient (merge fields filled here): Resend only merges into its own
    # stored templates. The batch limit is then only how many rows one claim holds. None of
    # the providers but Postmark can search sent mail by our metadata, so a claim whose
    # worker died mid-call is marked "unknown" for an operator, never re-sent blindly.
    # Resend's /emails/batch takes up to 100 emails, each its own filled copy: a claim is one
    # call (newsletter/resend.py).
    "resend": Provider(batch_limit=100, merges=False, one_call_per_chunk=True),
    "smtp": Provider(batch_limit=100, merges=False),
}
# The local outbox has no limit, but takes Postmark's so development sends in the same shape as
# production.
PROVIDERS["outbox"] = Provider(batch_limit=PROVIDERS["postmark"].batch_limit)


def provider_name() -> str:
    return settings.ANYMAIL_ESP or "outbox"


def provider() -> Provider:
    """The configured provider's row of the table."""
    return PROVIDERS[provider_name()]


def batch_limit() -> int:
    """Recipients per chunk: the provider's per-call limit, DIGEST_BATCH_SIZE if smaller, and
    never more than the per-second send rate (one call must fit in a second's budget)."""
    limit = provider().batch_limit
    for cap in (settings.DIGEST_BATCH_SIZE, getattr(settings, "SEND_RATE_PER_SECOND", 0)):
        if cap:
            limit = min(limit, cap)
    return limit


def accepted_messages(claim: str) -> dict[str, str] | None:
    """Deliveries of a claim the provider accepted: {delivery id: provider message id}.

    None means the provider cannot tell us; the caller must then not resend blindly.
    """
    page_size = provider().message_search_page
    if not page_size:
        return None
    base = settings.ANYMAIL.get("POSTMARK_API_URL") or "https://api.postmarkapp.com/"
    token = settings.ANYMAIL["POSTMARK_SERVER_TOKEN"]
    found: dict[str, str] = {}
    offset = 0
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            while True:
                response = client.get(
                    "messages/outbound",
                    params={"count": page_size, "offset": offset, "metadata_claim": claim},
                    headers={"Accept": "application/json", "X-Postmark-Server-Token": token},
                )
                response.raise_for_status()
                page = response.json()
                for message in page.get("Messages", []):
                    delivery = (message.get("Metadata") or {}).get("delivery")
                    if delivery:
                        found[str(delivery)] = message["MessageID"]
                offset += page_size
                if offset >= page.get("TotalCount", 0):
                    return found
    except (httpx.HTTPError, ValueError, KeyError):
        logger.exception("could not ask Postmark which messages of claim %s it accepted", claim)
        return None


def crash_recovery_note() -> str:
    """What happens to a send a worker died in the middle of, with the configured provider
    (shown to editors beside an issue's statistics)."""
    name = provider_name()
    if name == "outbox":
        return "outbox (development): every message is written to var/outbox/"
    if provider().message_search_page:
        return (
            f"{name}: after a worker dies mid-send, {name} is asked which messages it accepted; "
            "the rest are sent again"
        )
    if provider().merges and provider().call_limit:
        # A claim's calls are recorded together, once all of them are answered.
        return (
            f"{name} cannot say which messages it accepted when a worker dies mid-send: the "
            f"deliveries of the claim it died in (up to {batch_limit()}, in calls of "
            f"{provider().call_limit}) are marked unknown, never re-sent; check them in the "
            "provider's own log"
        )
    if provider().one_call_per_chunk:
        # Resend: a claim's filled copies are one /emails/batch call.
        return (
            f"{name} cannot say which messages it accepted when a worker dies mid-send: the "
            f"deliveries of the call it died in (up to {batch_limit()}, one claim) are marked "
            "unknown, never re-sent; check them in the provider's own log"
        )
    if provider().merges:
        return (
            f"{name} cannot say which messages it accepted when a worker dies mid-send: the "
            "deliveries of the call it died in are marked unknown, never re-sent; check them "
            "in the provider's own log"
        )
    # One call per copy, and a claim's answers are recorded once all its copies are sent: a
    # worker dying mid-claim leaves nothing here saying which of them went out.
    return (
        f"{name} cannot say which messages it accepted when a worker dies mid-send: the "
        f"deliveries of the claim it died in (up to {batch_limit()}, one call each) are marked "
        "unknown, never re-sent; check them in the provider's own log"
    )
