"""What each email provider can do, in one table, and the questions only a provider answers.

Anymail abstracts how to send; what it does not say is what the send code must plan around:
how many recipients one API call may carry (batches are cut to it), how a per-recipient merge
field is spelled in a body, and whether the provider can be asked, after a worker died
mid-call, which messages of that call it accepted (so the sweeper marks them sent instead of
sending them twice). Every provider listed takes one call of separate recipients (Anymail
``merge_data``, so nobody sees anyone else's address).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    batch_limit: int  # recipients per API call, as the provider documents it
    merge_field_format: str = "{{{{{}}}}}"  # str.format pattern of a body merge field: {{name}}
    message_search_page: int = 0  # messages per page of its outbound search; 0: cannot search
    # Whether one call carries per-recipient merge fields for bodies rendered here. Where it
    # cannot, each recipient gets a copy with the fields filled in, one call per copy
    # (newsletter/services/single_sends.py), over one reused connection.
    merges: bool = True
    # True where one chunk goes in one HTTP call (our Postmark backend shares /email/batch
    # calls, our Resend backend posts a claim's filled copies to /emails/batch); otherwise one
    # call per message. The send rate paces each call, as many emails as it carries.
    one_call_per_chunk: bool = False


PROVIDERS = {
    # /email/batch; fields filled by our backend; messages searchable by metadata.
    "postmark": Provider(batch_limit=500, message_search_page=500, one_call_per_chunk=True),
    "mailgun": Provider(batch_limit=1000, merge_field_format="%recipient.{}%"),
    "sendgrid": Provider(batch_limit=1000),
    # One copy per recipient (merge fields filled here): Resend and Amazon SES only merge into
    # their own stored templates, and Anymail's Brevo, Mailjet and SparkPost merge data needs
    # the provider's template language in the body. The batch limit is then how many rows one
    # claim holds. None of them can search sent mail by our metadata, so a claim whose worker
    # died mid-call is marked "unknown" for an operator, never re-sent blindly.
    "amazon_ses": Provider(batch_limit=50, merges=False),
    # Resend's /emails/batch takes up to 100 emails, each its own filled copy: a claim is one
    # call (newsletter/resend.py).
    "resend": Provider(batch_limit=100, merges=False, one_call_per_chunk=True),
    "brevo": Provider(batch_limit=100, merges=False),
    "mailjet": Provider(batch_limit=100, merges=False),
    "sparkpost": Provider(batch_limit=100, merges=False),
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
