"""The Hugging Face daily-papers JSON API: GET /api/daily_papers?date=YYYY-MM-DD.

The body is a bare JSON array (``[]`` on weekends). Pages are read with ``p``/``limit`` until
an empty page; a page that brings no new ids also ends the loop, in case the server ignores
``p`` for date queries and answers every page with the same list.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from django.conf import settings

from digests.sources import decoding, http
from digests.sources.base import FetchResult, ParseResult, items_from_hf_list

NAME = "hf_api"


def parse(body: str | bytes) -> ParseResult:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and undecodable bytes.
        return ParseResult(fatal=f"invalid JSON: {str(exc)[:200]}")
    return items_from_hf_list(data)


def fetch(
    day: dt.date, *, progress: Callable[[str], None] | None = None, client=None
) -> FetchResult:
    result = FetchResult()
    limit = int(settings.DIGEST_API_PAGE_SIZE)
    seen: set[str] = set()
    own_client = client is None
    client = client or http.make_client()
    try:
        for page in range(int(settings.DIGEST_API_MAX_PAGES)):
            params = {"date": day.isoformat(), "p": str(page), "limit": str(limit)}
            try:
                response = http.get(client, settings.DIGEST_HF_API_URL, params=params)
            except http.FetchError as exc:
                result.fatal = str(exc)
                return result
            body = decoding.decode(response.content, content_type=response.content_type)
            result.keep(body, url=response.url, status=response.status, label=f"page {page}: ")
            if result.fatal:
                return result
            parsed = parse(body.text)
            if parsed.fatal:
                result.fatal = f"page {page}: {parsed.fatal}"
                return result
            fresh = [item for item in parsed.items if item.arxiv_id not in seen]
            if progress:
                progress(f"  page {page}: {len(parsed.items)} papers, {len(parsed.errors)} errors")
            if not parsed.items and not parsed.errors:
                break
            result.items.extend(fresh)
            result.errors.extend(f"page {page} {error}" for error in parsed.errors)
            seen.update(item.arxiv_id for item in fresh)
            if not fresh and not parsed.errors:
                break
    finally:
        if own_client:
            client.close()
    return result
