"""The Hugging Face Daily Papers web page, for when the API is unavailable.

The JSON in ``data-props`` of ``div[data-target="DailyPapers"]`` is the reliable part: it
carries the same items as the API. The card markup (``article`` with an ``h3 a`` title link)
uses utility classes that change often, so it is only the fallback.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

from bs4 import BeautifulSoup
from django.conf import settings

from digests import text
from digests.sources import decoding, http
from digests.sources.base import (
    HF_BASE,
    FetchResult,
    PaperItem,
    ParseResult,
    items_from_hf_list,
)

NAME = "hf_page"
_PAPER_HREF = re.compile(r"^/papers/([^/?#]+)$")


def parse(body: str | bytes) -> ParseResult:
    try:
        soup = BeautifulSoup(body, "html.parser")
    except Exception as exc:
        # html.parser has raised assorted errors on hostile markup over the years; any of them
        # means "unreadable page", which is a result, not a crash.
        return ParseResult(fatal=f"unreadable HTML: {exc.__class__.__name__}")
    from_props = _parse_props(soup)
    if from_props is not None and (from_props.items or not from_props.fatal):
        return from_props
    from_cards = _parse_cards(soup)
    if from_cards.items or from_cards.errors:
        if from_props is not None:
            from_cards.errors.insert(0, f"data-props unusable ({from_props.fatal}); read the cards")
        return from_cards
    if from_props is not None:
        return from_props
    return ParseResult(fatal="the page has neither DailyPapers data-props nor paper cards")


def _parse_props(soup: BeautifulSoup) -> ParseResult | None:
    node = soup.select_one('div[data-target="DailyPapers"][data-props]')
    if node is None:
        return None
    try:
        props = json.loads(node.get("data-props", ""))
    except (ValueError, RecursionError, TypeError) as exc:
        return ParseResult(fatal=f"data-props is not JSON: {str(exc)[:200]}")
    if not isinstance(props, dict) or "dailyPapers" not in props:
        return ParseResult(fatal="data-props has no dailyPapers list")
    return items_from_hf_list(props["dailyPapers"])


def _parse_cards(soup: BeautifulSoup) -> ParseResult:
    result = ParseResult()
    for index, article in enumerate(soup.find_all("article")):
        link = article.select_one("h3 a[href]")
        href = link.get("href", "") if link else ""
        match = _PAPER_HREF.match(href if isinstance(href, str) else "")
        parsed_id = text.parse_arxiv_id(match.group(1)) if match else None
        if parsed_id is None:
            result.errors.append(f"card {index}: no paper link in 'h3 a'")
            continue
        arxiv_id, version = parsed_id
        title = text.plain_text(link.get_text(" "), max_length=text.TITLE_MAX)
        if not title:
            result.errors.append(f"card {index}: {arxiv_id}: no title")
            continue
        image = article.find("img")
        result.items.append(
            PaperItem(
                arxiv_id=arxiv_id,
                arxiv_version=version,
                title=title,
                hf_url=f"{HF_BASE}/papers/{arxiv_id}",
                arxiv_url=f"https://arxiv.org/abs/{arxiv_id}",
                pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
                thumbnail_url=text.clean_url(image.get("src") if image else "", base=HF_BASE),
                # Logged out, the upvote box is a link to /login; comments link to #community.
                upvotes=_first_number(article, lambda href: href.startswith("/login")),
                comment_count=_first_number(article, lambda href: href.endswith("#community")),
            )
        )
    return result


def _first_number(article, predicate) -> int:
    for anchor in article.find_all("a", href=True):
        href = anchor.get("href")
        if isinstance(href, str) and predicate(href):
            found = re.search(r"\d[\d,]*", anchor.get_text(" "))
            if found:
                return int(found.group(0).replace(",", ""))
    return 0


def page_url(day: dt.date) -> str:
    return settings.DIGEST_HF_PAGE_URL.replace("{date}", day.isoformat())


def fetch(
    day: dt.date, *, progress: Callable[[str], None] | None = None, client=None
) -> FetchResult:
    own_client = client is None
    client = client or http.make_client()
    try:
        response = http.get(client, page_url(day))
    except http.FetchError as exc:
        return FetchResult(fatal=str(exc))
    finally:
        if own_client:
            client.close()
    body = decoding.decode(response.content, content_type=response.content_type)
    result = FetchResult.of_body(parse, body, url=response.url, status=response.status)
    if progress:
        progress(f"  page: {len(result.items)} papers, {len(result.errors)} errors")
    return result
