"""The consent text shown on the signup form, by version.

A consent record stores the version the person saw (the form posts it back), so changing the
wording means adding a new version here, never editing an old one.
"""

from __future__ import annotations

CONSENT_TEXTS: dict[str, str] = {
    "2026-11-27": (
        "By subscribing you agree that Paperboy emails you one digest of trending research "
        "papers on the topics you chose, about once a day. We keep your address, your topics, "
        "and this consent (time, IP address, browser) until you unsubscribe or ask us to erase "
        "them; every email has a link to change your topics, pause, download your data or "
        "unsubscribe with one click."
    ),
}
CONSENT_VERSION = "2026-11-27"
IMPORT_VERSION = "import"  # records made by an operator's import carry no form text
