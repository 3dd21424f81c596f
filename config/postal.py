"""The sender's postal address for email footers (anti-spam law asks every email to carry it)."""

from __future__ import annotations

import re

from django.conf import settings


def postal_address_lines() -> list[str]:
    """SENDER_POSTAL_ADDRESS split into its lines, at line breaks or semicolons."""
    parts = re.split(r"[;\n]", settings.SENDER_POSTAL_ADDRESS)
    return [part.strip() for part in parts if part.strip()]
