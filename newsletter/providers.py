"""What Paperboy needs to know about each email provider beyond what Anymail abstracts.

- how many recipients one API call may carry (we cut batches to it);
- after a worker died mid-call, which messages of that call the provider did accept, so the
  sweeper can mark them sent instead of sending them twice.
"""

from __future__ import annotations

import logging

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

# Per-call recipient limits documented by each provider. The local outbox has none, but
# uses Postmark's so development sends in the same shape as production.
BATCH_LIMITS = {"postmark": 500, "mailgun": 1000, "sendgrid": 1000, "outbox": 500}

# How each provider spells a per-recipient merge field in a body.
MERGE_FIELD_FORMATS = {"mailgun": "%recipient.{}%"}
DEFAULT_MERGE_FIELD_FORMAT = "{{{{{}}}}}"  # {{name}}: Postmark (our backend), SendGrid, outbox


def provider_name() -> str:
    return settings.ANYMAIL_ESP or "outbox"


def merge_field(name: str) -> str:
    return MERGE_FIELD_FORMATS.get(provider_name(), DEFAULT_MERGE_FIELD_FORMAT).format(name)


def batch_limit() -> int:
    configured = settings.DIGEST_BATCH_SIZE
    limit = BATCH_LIMITS[provider_name()]
    return min(configured, limit) if configured else limit


def accepted_messages(claim: str) -> dict[str, str] | None:
    """Deliveries of a claim the provider accepted: {delivery id: provider message id}.

    None means the provider cannot tell us; the caller must then not resend blindly.
    """
    if provider_name() != "postmark":
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
                    params={"count": 500, "offset": offset, "metadata_claim": claim},
                    headers={"Accept": "application/json", "X-Postmark-Server-Token": token},
                )
                response.raise_for_status()
                page = response.json()
                for message in page.get("Messages", []):
                    delivery = (message.get("Metadata") or {}).get("delivery")
                    if delivery:
                        found[str(delivery)] = message["MessageID"]
                offset += 500
                if offset >= page.get("TotalCount", 0):
                    return found
    except (httpx.HTTPError, ValueError, KeyError):
        logger.exception("could not ask Postmark which messages of claim %s it accepted", claim)
        return None


def bounce_is_permanent(event) -> bool:
    """Whether a "bounced" tracking event means the address must not be mailed again.

    Anymail reports Postmark's SoftBounce (a full mailbox, say) as "bounced" too; Postmark
    itself keeps such an address active, and so do we.
    """
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if raw.get("RecordType") == "Bounce":
        return raw.get("Type") != "SoftBounce" and raw.get("Inactive", True) is not False
    return True
