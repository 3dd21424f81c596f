"""An editor's words as safe HTML and as plain text: the batch's intro and the papers' notes.

Editors write a small subset of Markdown, nothing more:

    A blank line starts a new paragraph; a single line break stays a line break.
    **bold**, *emphasis*, [a link](https://example.org) (http, https and mailto only).

Everything else is text. The input is escaped first and only these few tags are added back,
so nothing an editor types (or pastes) can add a script, an attribute or a ``javascript:``
link. No sanitizer library is needed for that: nothing is parsed as HTML at all.
"""

from __future__ import annotations

import html
import re

from django.utils.safestring import SafeString, mark_safe

# A link's target: http(s) or mailto, no spaces, quotes, angle brackets or parentheses (so
# "[x](https://a) more)" ends the link at the first ")").
LINK = re.compile(r"\[([^\[\]\n]+)\]\(((?:https?://|mailto:)[^\s()<>\"'`]+)\)", re.IGNORECASE)
STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
EMPHASIS = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
INTRO_MAX_CHARS = 4000  # "a few paragraphs"; also what the model's form allows


def _inline(escaped: str) -> str:
    """Bold and emphasis on already escaped text (which holds no <, >, " or ')."""
    return EMPHASIS.sub(r"<em>\1</em>", STRONG.sub(r"<strong>\1</strong>", escaped))


def _paragraph_html(raw: str) -> str:
    parts, last = [], 0
    for match in LINK.finditer(raw):
        parts.append(_inline(html.escape(raw[last : match.start()])))
        label, url = match.groups()
        parts.append(f'<a href="{html.escape(url, quote=True)}">{_inline(html.escape(label))}</a>')
        last = match.end()
    parts.append(_inline(html.escape(raw[last:])))
    return "<br>".join(line.strip() for line in "".join(parts).split("\n"))


def _paragraphs(text: str) -> list[str]:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    return [p.strip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]


def editorial_html(text: str, *, paragraph_class: str = "") -> SafeString:
    """The editor's text as <p> paragraphs with the subset above; "" for blank text."""
    attrs = f' class="{html.escape(paragraph_class, quote=True)}"' if paragraph_class else ""
    markup = "".join(f"<p{attrs}>{_paragraph_html(p)}</p>" for p in _paragraphs(text))
    return mark_safe(markup)  # noqa: S308 - every piece of input above went through html.escape


def editorial_text(text: str) -> str:
    """The editor's text for a plain-text email: links as "label (url)", markers removed."""
    paragraphs = []
    for paragraph in _paragraphs(text):
        paragraph = LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", paragraph)
        paragraph = EMPHASIS.sub(r"\1", STRONG.sub(r"\1", paragraph))
        paragraphs.append("\n".join(line.strip() for line in paragraph.split("\n")))
    return "\n\n".join(paragraphs)
