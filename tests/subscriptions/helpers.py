from __future__ import annotations

import re


def link_in(message, pattern: str = r"https?://\S+/confirm/\S+/") -> str:
    """The first link matching pattern in the text part of an email."""
    found = re.search(pattern, message.body)
    assert found, f"no link matching {pattern} in:\n{message.body}"
    return found.group(0)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]
