"""A file on disk in either upstream format: the API's JSON array or the papers page's HTML.

For the demo (the bundled sample) and for editors importing a day by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from digests.sources import decoding, hf_api, hf_page
from digests.sources.base import FetchResult, ParseResult

NAME = "file"


def parse(body: str) -> ParseResult:
    # JSON starts with "[" or "{" (after whitespace or a BOM); anything else is treated as HTML.
    if body.lstrip("\ufeff \t\r\n")[:1] in {"[", "{"}:
        return hf_api.parse(body.lstrip("\ufeff"))
    return hf_page.parse(body)


def fetch(
    day: dt.date, *, path: str | Path | None = None, progress: Callable[[str], None] | None = None
) -> FetchResult:
    path = Path(path or settings.DIGEST_SOURCE_FILE)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FetchResult(fatal=f"cannot read {path}: {exc.strerror or exc}")
    body = decoding.decode(data)
    result = FetchResult.of_body(parse, body, url=path.resolve().as_uri(), status=0)
    if progress:
        progress(f"  {path.name}: {len(result.items)} papers, {len(result.errors)} errors")
    return result
