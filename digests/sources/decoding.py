"""Upstream bytes to text that can be parsed and stored, or a reason why they cannot.

Every body, from the API, the page or a file, comes through here before anything reads it.
The encoding is, in this order: a byte order mark; UTF-16/UTF-32 recognised from where the
zero bytes fall (JSON and HTML are mostly ASCII, so every other byte of UTF-16 is zero);
the charset the server declared; an HTML ``<meta charset>``; UTF-8. The text is then cleaned
of NUL and other control characters, which PostgreSQL refuses (U+0000 in text and jsonb) or
which have no business in a paper listing. A body in which control characters or undecodable
bytes are a large share is binary and is refused with that reason rather than guessed at.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

from digests import text

# Byte order marks, longest first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
SNIFF_BYTES = 4096
# Above this share of control characters and undecodable bytes, a body is not text. A few
# stray NULs in a page are cleaned; random bytes are about half control or undecodable.
BINARY_SHARE = 0.10
# What is kept of one body for audit. A day's API page is about 300 KB; a listing of
# thousands of papers is parsed whole (the batch keeps its top ones) but not stored whole,
# or the run's page would carry it.
RAW_KEEP_CHARS = 2_000_000
_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


@dataclass
class Body:
    """A decoded body: ``text`` is what parsers read and what is kept for audit."""

    text: str
    encoding: str
    size: int
    removed: int = 0
    refused: str = ""

    @property
    def note(self) -> str:
        """What cleaning changed, for the run's record; "" when nothing."""
        if not self.removed:
            return ""
        return f"removed {self.removed} NUL or control character(s) from the {self.encoding} body"

    def raw(self, *, url: str, status: int) -> dict[str, Any]:
        """The response as kept in IngestRun.raw_payload."""
        raw = {
            "url": text.storable(url),
            "status": status,
            "encoding": self.encoding,
            "size": self.size,
            "body": self.text[:RAW_KEEP_CHARS],
        }
        if len(self.text) > RAW_KEEP_CHARS:
            raw["truncated_from_chars"] = len(self.text)
        return raw


def decode(data: bytes, *, content_type: str = "") -> Body:
    encoding, skip = _encoding(data, content_type)
    try:
        decoded = data[skip:].decode(encoding)
        undecodable = 0
    except UnicodeDecodeError:
        decoded = data[skip:].decode(encoding, errors="replace")
        undecodable = decoded.count("\ufffd")
    cleaned, removed = text.without_controls(decoded.removeprefix("\ufeff"))
    body = Body(text=cleaned, encoding=encoding, size=len(data), removed=removed)
    if decoded and (removed + undecodable) > BINARY_SHARE * len(decoded):
        share = (removed + undecodable) / len(decoded)
        body.text, body.removed = "", 0
        body.refused = (
            f"the body is binary, not text ({len(data)} bytes, {share:.0%} of them control "
            f"characters or not {encoding})"
        )
    return body


def _encoding(data: bytes, content_type: str) -> tuple[str, int]:
    """The codec to read data with, and how many leading bytes (a BOM) to skip."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    sniffed = _sniff_wide(data[:SNIFF_BYTES])
    if sniffed:
        return sniffed, 0
    for declared in (_CHARSET.search(content_type.encode("ascii", "ignore")), _meta(data)):
        name = _codec(declared.group(1)) if declared else ""
        # Without a BOM or the zero-byte pattern, a declared UTF-16/32 is wrong: the bytes
        # are ASCII-compatible (HTML's rule for <meta charset=utf-16>, applied to both).
        if name and not name.startswith(("utf-16", "utf-32")):
            return name, 0
    return "utf-8", 0


def _meta(data: bytes) -> re.Match[bytes] | None:
    head = data[:2048]
    return _META_CHARSET.search(head) if b"<" in head else None


def _codec(label: bytes) -> str:
    try:
        return codecs.lookup(label.decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return ""


def _sniff_wide(sample: bytes) -> str:
    """UTF-16 or UTF-32 (either byte order) from where the zero bytes are, or ""."""
    quads = len(sample) // 4
    if quads == 0:
        return ""
    zeros = [sample[i : quads * 4 : 4].count(0) / quads for i in range(4)]
    if zeros[2] > 0.9 and zeros[3] > 0.9 and zeros[0] < 0.5:
        return "utf-32-le"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[3] < 0.5:
        return "utf-32-be"
    odd, even = (zeros[1] + zeros[3]) / 2, (zeros[0] + zeros[2]) / 2
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return ""
