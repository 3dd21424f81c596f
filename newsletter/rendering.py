"""Rendering the digest: each paper's block once per issue, each distinct email once.

A subscriber's email is the issue's shell (header, footer) around the blocks of their selected
papers. Blocks and the shell are rendered and CSS-inlined once per issue; assembling an email
is string joining, cached by content: the templates leave placeholders that are filled here
(their spellings, and why, are in ``newsletter.composition``). What differs per person
(unsubscribe and preference links) is left as merge fields, filled in per recipient.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import css_inline
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator

from digests.editorial import editorial_html, editorial_text
from digests.models import BatchEntry, DailyBatch, Topic
from newsletter import ranking
from newsletter.composition import (
    INTRO,
    LESS,
    MORE,
    PAPERS_HTML,
    PAPERS_TEXT,
    PREFERENCES_URL,
    PREHEADER,
    REASON,
    REASON_TEXT,
    TEMPLATE_PLACEHOLDERS,
    UNSUBSCRIBE_URL,
    feedback_field,
    merge_field,
)
from subscriptions.links import FeedbackLinks

CSS_TEMPLATE = "newsletter/email/digest.css"
SUMMARY_CHARS = 480  # keeps ten papers well under Gmail's 102 KB clipping limit
SUBJECT_TITLE_CHARS = 90
REASON_TOPICS = 2  # topics named in "Because you follow ..."; more become "and N more"
LIKED_TITLE_CHARS = 70  # "Because you liked <title>": long titles cut
CONTENTS_CACHED = 256  # rendered emails an IssueRenderer keeps (about 10 MB)


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str


def archive_url(day: date) -> str:
    return settings.SITE_URL + reverse("newsletter:archive-day", args=[day.isoformat()])


def _authors_line(authors: list[str]) -> str:
    if len(authors) > 3:
        return ", ".join(authors[:3]) + " et al."
    return ", ".join(authors)


def _links(paper) -> list[tuple[str, str]]:
    candidates = [
        ("Paper page", paper.hf_url),
        ("arXiv", paper.arxiv_url),
        ("PDF", paper.pdf_url),
        ("Code", paper.code_url),
        ("Project", paper.project_url),
    ]
    return [(label, url) for label, url in candidates if url]


def _ascii_html(markup: str) -> str:
    """The markup with every non-ASCII character as a numeric character reference.

    Every mail client shows a reference the same, whatever the transfer encoding on the way.
    And a Python string of ASCII takes one byte a character instead of two or four: each
    recipient's copy of the body is copied, filled and encoded for the provider, so a single
    "▲" in the markup otherwise doubles that work for the whole email.
    """
    return markup.encode("ascii", "xmlcharrefreplace").decode("ascii")


class IssueRenderer:
    """Renders the emails of one batch. Holds per-issue caches; build one per task run."""

    def __init__(self, batch: DailyBatch) -> None:
        self.batch = batch
        entries = (
            BatchEntry.objects.filter(batch=batch, hidden=False)
            .select_related("paper")
            .order_by("rank")
        )
        self.papers = {e.paper_id: e.paper for e in entries}
        self.notes = {e.paper_id: e.editor_note.strip() for e in entries if e.editor_note.strip()}
        self.topic_names = dict(Topic.objects.values_list("id", "name"))
        self._inliner = css_inline.CSSInliner(keep_style_tags=True)
        # Emails by content key, the most recently used last. Bounded: an issue can have tens
        # of thousands of distinct contents, and chunks come in content order, so a worker
        # needs only the few it is on.
        self._contents: OrderedDict[str, RenderedDigest] = OrderedDict()

    @cached_property
    def feedback_links(self) -> FeedbackLinks:
        """Signs the recipients' feedback links; one per renderer (it derives its key once)."""
        return FeedbackLinks()

    @cached_property
    def css(self) -> str:
        return render_to_string(CSS_TEMPLATE)

    @cached_property
    def _shells(self) -> tuple[str, str]:
        context = {
            "day": self.batch.date,
            "css": self.css,
            "archive_url": archive_url(self.batch.date),
            # The same for everyone, so part of the shell rendered once per issue.
            "editorial_html": editorial_html(self.batch.intro, paragraph_class="editorial"),
            "editorial_text": editorial_text(self.batch.intro),
            "placeholder": TEMPLATE_PLACEHOLDERS,
            # Merge fields, filled per recipient.
            "unsubscribe_field": merge_field(UNSUBSCRIBE_URL),
            "preferences_field": merge_field(PREFERENCES_URL),
        }
        shell_html = self._inliner.inline(render_to_string("newsletter/email/shell.html", context))
        shell_text = render_to_string("newsletter/email/shell.txt", context)
        return shell_html, shell_text

    @cached_property
    def _blocks(self) -> dict[int, tuple[str, str]]:
        """Each visible paper's (html, text) block, rendered and inlined once."""
        blocks = {}
        for paper_id, paper in self.papers.items():
            context = {
                "paper": paper,
                "url": paper.hf_url or paper.arxiv_url,
                "authors": _authors_line(paper.authors),
                "summary": Truncator(paper.ai_summary or paper.abstract).chars(SUMMARY_CHARS),
                "links": _links(paper),
                "note": self.notes.get(paper_id, ""),
                "placeholder": TEMPLATE_PLACEHOLDERS,
                # Merge fields, filled per recipient: their own signed feedback links.
                "more_field": merge_field(feedback_field(paper_id, MORE)),
                "less_field": merge_field(feedback_field(paper_id, LESS)),
            }
            # Each block is a whole <table>: parsed alone, bare <tr>/<td> tags would be dropped.
            block_html = css_inline.inline_fragment(
                render_to_string("newsletter/email/paper.html", context), self.css
            )
            blocks[paper_id] = (block_html, render_to_string("newsletter/email/paper.txt", context))
        return blocks

    @cached_property
    def _reason_html(self) -> str:
        return css_inline.inline_fragment(f'<p class="reason">{REASON_TEXT}</p>', self.css)

    def _reason(self, reason: list) -> str:
        """The words for a reason the ranking recorded (newsletter.ranking's codes)."""
        if reason and all(isinstance(t, int) for t in reason):
            return self._topics_reason(reason)  # a selection planned before personal ranking
        code, *args = reason or [ranking.TRENDING]
        if code == ranking.PINNED:
            return "Editor's pick"
        if code == ranking.AUTHOR:
            return f"By an author you follow: {args[0]}"
        if code == ranking.TOPIC_REASON:
            name = self.topic_names.get(args[0])
            return f"You follow {name}" if name else "Close to the topics you follow"
        if code == ranking.TEXT_REASON:
            return "Matches what you work on"
        if code == ranking.LIKED_REASON:
            title = Truncator(args[1] if len(args) > 1 else "").chars(LIKED_TITLE_CHARS)
            return f"Because you liked \u201c{title}\u201d" if title else "Like papers you liked"
        return "Trending today"

    def _topics_reason(self, topic_ids: list[int]) -> str:
        names = [self.topic_names[t] for t in topic_ids if t in self.topic_names]
        if not names:
            return "Top paper of the day"
        shown = ", ".join(names[:REASON_TOPICS])
        more = f" and {len(names) - REASON_TOPICS} more" if len(names) > REASON_TOPICS else ""
        return f"Because you follow {shown}{more}"

    def render(self, selection: list[list], content_key: str = "") -> RenderedDigest:
        """The email for one selection ([[paper_id, reason], ...]); cached by content_key."""
        if content_key and content_key in self._contents:
            self._contents.move_to_end(content_key)
            return self._contents[content_key]
        chosen = [(pid, reason) for pid, reason in selection if pid in self.papers]
        if not chosen:
            raise ValueError("a digest needs at least one visible paper")
        html_parts, text_parts = [], []
        for paper_id, why in chosen:
            block_html, block_text = self._blocks[paper_id]
            reason = self._reason(why)
            reason_html = self._reason_html.replace(REASON_TEXT, html.escape(reason), 1)
            html_parts.append(block_html.replace(REASON, reason_html, 1))
            text_parts.append(block_text.replace(REASON, f"[{reason}]\n"))
        titles = [self.papers[pid].title for pid, _ in chosen]
        subject = self._subject(titles)
        preheader = " · ".join(titles[1:4]) or titles[0]
        intro = f"{len(chosen)} trending paper{'s' if len(chosen) != 1 else ''} picked for you."
        shell_html, shell_text = self._shells
        rendered = RenderedDigest(
            subject=subject,
            html=_ascii_html(
                shell_html.replace(PREHEADER, html.escape(preheader), 1)
                .replace(INTRO, html.escape(intro), 1)
                .replace(PAPERS_HTML, "\n".join(html_parts), 1)
            ),
            text=shell_text.replace(INTRO, intro, 1).replace(
                PAPERS_TEXT, "\n\n".join(part.strip() + "\n" for part in text_parts), 1
            ),
        )
        if content_key:
            self._contents[content_key] = rendered
            if len(self._contents) > CONTENTS_CACHED:
                self._contents.popitem(last=False)
        return rendered

    def _subject(self, titles: list[str]) -> str:
        # "Tue 12 Mar: <top title> + 9 more". Titles are stored without CR/LF or control
        # characters, so nothing from upstream can add a header line.
        top = Truncator(" ".join(titles[0].split())).chars(SUBJECT_TITLE_CHARS)
        more = f" + {len(titles) - 1} more" if len(titles) > 1 else ""
        return f"{self.batch.date:%a %-d %b}: {top}{more}"
