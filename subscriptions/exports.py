"""Sections other apps add to a subscriber's data export.

subscriptions must not import the apps that hold more personal data (newsletter keeps the
delivery history), so those apps register a section from their AppConfig.ready():

    register_export_section("delivery_history", lambda subscriber: [...])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ExportSection = Callable[[Any], Any]

_SECTIONS: dict[str, ExportSection] = {}

# Keys the export itself writes; a section may not shadow them.
RESERVED = frozenset(
    {"format", "exported_at", "profile", "topics", "personalization", "feedback", "consent_records"}
)


def register_export_section(name: str, fn: ExportSection) -> None:
    """Add fn(subscriber) -> JSON-able data to every export, under `name`."""
    if name in RESERVED:
        raise ValueError(f"export section name {name!r} is reserved")
    existing = _SECTIONS.get(name)
    if existing is not None and existing is not fn:
        raise ValueError(f"export section {name!r} is already registered")
    _SECTIONS[name] = fn


def export_sections() -> dict[str, ExportSection]:
    return dict(_SECTIONS)
