"""What every source returns: cleaned items, per-item errors, the raw responses.

Parsers never raise on bad input. A document that cannot be read at all sets ``fatal``; an
item that cannot be used becomes an entry in ``errors`` while the others go through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from digests import text
from digests.sources.decoding import Body

HF_BASE = "https://huggingface.co"


@dataclass
class PaperItem:
    arxiv_id: str
    title: str
    arxiv_version: int | None = None
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    published_at: dt.datetime | None = None
    hf_url: str = ""
    arxiv_url: str = ""
    pdf_url: str = ""
    project_url: str = ""
    code_url: str = ""
    thumbnail_url: str = ""
    upvotes: int = 0
    comment_count: int = 0
    ai_summary: str = ""
    ai_keywords: list[str] = field(default_factory=list)


@dataclass
class ParseResult:
    items: list[PaperItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fatal: str = ""


@dataclass
class FetchResult(ParseResult):
    """A ParseResult plus each response as received (decoded and cleaned, see
    decoding.Body.raw) and notes on what cleaning changed."""

    raw: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def keep(self, body: Body, *, url: str, status: int, label: str = "") -> None:
        """Keep one response for audit; a refused body makes the result fatal."""
        self.raw.append(body.raw(url=url, status=status))
        if body.note:
            self.notes.append(f"{label}{body.note}")
        if body.refused:
            self.fatal = f"{label}{body.refused}"

    @classmethod
    def of_body(
        cls, parse: Callable[[str], ParseResult], body: Body, *, url: str, status: int
    ) -> FetchResult:
        """What parsing one fetched body gave, with the body kept."""
        result = cls()
        result.keep(body, url=url, status=status)
        if not body.refused:
            parsed = parse(body.text)
            result.items, result.errors, result.fatal = parsed.items, parsed.errors, parsed.fatal
        return result


def parse_datetime(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def item_from_hf(entry: object) -> PaperItem | str:
    """One daily-papers item (the API's and the page's data-props share the shape) to a
    PaperItem, or a string saying why it cannot be used."""
    if not isinstance(entry, dict):
        return f"item is a {type(entry).__name__}, not an object"
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        return "item has no 'paper' object"
    raw_id = paper.get("id")
    parsed_id = text.parse_arxiv_id(raw_id)
    if parsed_id is None:
        return f"paper id {str(raw_id)[:40]!r} is not an arXiv id"
    arxiv_id, version = parsed_id
    # paper.title and the outer title differ only by whitespace when both exist.
    title = text.plain_text(paper.get("title"), max_length=text.TITLE_MAX) or text.plain_text(
        entry.get("title"), max_length=text.TITLE_MAX
    )
    if not title:
        return f"{arxiv_id}: no title"
    authors = paper.get("authors")
    names = []
    if isinstance(authors, list):
        names = text.clean_list(
            [a.get("name") if isinstance(a, dict) else a for a in authors],
            max_items=text.MAX_AUTHORS,
            max_length=text.NAME_MAX,
        )
    abstract = paper.get("summary")
    if not isinstance(abstract, str):
        abstract = entry.get("summary")
    return PaperItem(
        arxiv_id=arxiv_id,
        arxiv_version=version,
        title=title,
        abstract=text.plain_text(abstract, max_length=text.ABSTRACT_MAX),
        authors=names,
        published_at=parse_datetime(paper.get("publishedAt")),
        hf_url=f"{HF_BASE}/papers/{arxiv_id}",
        arxiv_url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        project_url=text.clean_url(paper.get("projectPage")),
        code_url=text.clean_url(paper.get("githubRepo")),
        thumbnail_url=text.clean_url(entry.get("thumbnail"), base=HF_BASE),
        upvotes=text.non_negative_int(paper.get("upvotes")),
        comment_count=text.non_negative_int(entry.get("numComments")),
        ai_summary=text.plain_text(paper.get("ai_summary"), max_length=text.SUMMARY_MAX),
        ai_keywords=text.clean_list(
            paper.get("ai_keywords"), max_items=text.MAX_KEYWORDS, max_length=text.KEYWORD_MAX
        ),
    )


def items_from_hf_list(entries: object) -> ParseResult:
    result = ParseResult()
    if not isinstance(entries, list):
        result.fatal = f"expected a JSON array of papers, got {type(entries).__name__}"
        return result
    for index, entry in enumerate(entries):
        item = item_from_hf(entry)
        if isinstance(item, str):
            result.errors.append(f"item {index}: {item}")
        else:
            result.items.append(item)
    return result
