"""Turning untrusted upstream strings into the plain text we store.

Titles reach email subjects, so a title leaves here as one line with no control, format or
separator characters. Everything is plain text: templates escape it when rendering.
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

TITLE_MAX = 300
ABSTRACT_MAX = 5000
SUMMARY_MAX = 1000
NAME_MAX = 200
KEYWORD_MAX = 100
URL_MAX = 500
MAX_AUTHORS = 100
MAX_KEYWORDS = 50

# Only strings that contain real-looking HTML tags are parsed as HTML: abstracts are full of
# "x<y" and "a <b> c" style math that an HTML parser would swallow.
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|u|p|br|hr|em|strong|span|div|sub|sup|code|pre|ul|ol|li|h[1-6]|img|table|tr|"
    r"td|th|script|style|iframe|font|small|big|blockquote|math|mi|mo|mn)\b[^<>]*>",
    re.IGNORECASE,
)

# Unicode categories dropped outright: controls (Cc; whitespace ones are handled first),
# format characters (Cf: bidi overrides, zero-width joiners that can spoof a subject),
# surrogates (Cs: lone ones from JSON "\ud800" escapes cannot be encoded), unassigned
# (Cn) and private use (Co).
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Cn", "Co"}

# What a stored string may not contain: PostgreSQL refuses U+0000 (text and jsonb) and lone
# surrogates (not encodable as UTF-8); the other C0 and C1 controls are refused with them.
# Tab, LF and CR stay: raw bodies keep their layout.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

_ARXIV_NEW = re.compile(r"^(\d{4}\.\d{4,5})(?:v(\d{1,4}))?$")
_ARXIV_OLD = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(\d{1,4}))?$")


def strip_html(value: str) -> str:
    if _HTML_TAG.search(value):
        soup = BeautifulSoup(value, "html.parser")
        for node in soup(["script", "style"]):
            node.decompose()
        return soup.get_text(" ")
    return html.unescape(value)


def plain_text(value: object, *, max_length: int) -> str:
    """One line of plain text: HTML stripped, whitespace collapsed, invisible characters gone,
    capped at max_length characters (cut at a word boundary, with an ellipsis)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else ""
    text = strip_html(value)
    text = unicodedata.normalize("NFC", text)
    # str.split() with no argument splits on every Unicode whitespace, including CR, LF, NEL
    # and U+2028/U+2029, so joining its parts collapses every kind of line break.
    text = " ".join(text.split())
    # isprintable() is False exactly when a character of the categories dropped (or a
    # separator other than the space, gone with split()) is left: the per-character pass,
    # the slowest part of reading a large listing, runs only then.
    if not text.isprintable():
        text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROP_CATEGORIES)
        text = " ".join(text.split())
    return truncate(text, max_length)


def without_controls(value: str) -> tuple[str, int]:
    """The value without NUL, other control characters and lone surrogates; and how many
    characters were removed."""
    return _CONTROLS.subn("", value)


def storable(value: str) -> str:
    """The value as it can be stored: see without_controls."""
    return _CONTROLS.sub("", value)


def truncate(text: str, max_length: int) -> str:
    if len(text) <= max_length:
        return text
    cut = text[: max_length - 1]
    space = cut.rfind(" ")
    if space > max_length // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def clean_url(value: object, *, base: str = "") -> str:
    """An absolute http(s) URL, or "" when the value is anything else."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if base and url.startswith("/") and not url.startswith("//"):
        url = base.rstrip("/") + url
    if len(url) > URL_MAX or any(
        ch.isspace() or unicodedata.category(ch) in _DROP_CATEGORIES for ch in url
    ):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return ""
    return url


def clean_list(values: object, *, max_items: int, max_length: int) -> list[str]:
    if not isinstance(values, list):
        return []
    cleaned = []
    for value in values:
        text = plain_text(value, max_length=max_length) if isinstance(value, str) else ""
        if text:
            cleaned.append(text)
        if len(cleaned) >= max_items:
            break
    return cleaned


def parse_arxiv_id(value: object) -> tuple[str, int | None] | None:
    """("2503.02130", 2) from "2503.02130v2"; None when the value is not an arXiv id.

    Ids stay strings: "2503.02130" and "2503.0213" are different papers.
    """
    if not isinstance(value, str):
        return None
    value = value.strip()
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        match = pattern.match(value)
        if match:
            version = int(match.group(2)) if match.group(2) else None
            return match.group(1), version
    return None


def non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    try:
        return max(0, min(int(value), 2_000_000_000))
    except (ValueError, OverflowError):  # NaN, infinity
        return 0
