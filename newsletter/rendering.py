"""Rendering the digest: each paper's block once per issue, each distinct email once.

A subscriber's email is the issue's shell (header, footer) around the blocks of their selected
papers. Blocks and the shell are rendered and CSS-inlined once per issue; assembling an email
is string joining, cached by content: the templates leave placeholders that are filled here
(their spellings, and why, are in ``newsletter.composition``). What differs per person
(unsubscribe, preference and feedback links) is left as merge fields, filled in per recipient.

With every selection distinct, an email is assembled for nearly every recipient, so the work
per email is kept to joining cached pieces: each paper's block with its reason is rendered,
turned to ASCII and split around its merge fields once per issue (per reason it is shown
with), and so is the shell; an email only adds its subject, preheader and intro.
"""

from __future__ import annotations

import functools
import html
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import css_inline
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator

from config.postal import postal_address_lines
from digests.editorial import editorial_html, editorial_text
from digests.models import BatchEntry, DailyBatch, Topic
from newsletter import ranking
from newsletter.composition import (
    FEEDBACK_URL,
    INTRO,
    LESS,
    MORE,
    PAPERS_HTML,
    PAPERS_TEXT,
    PREFERENCES_URL,
    PREHEADER,
    REASON,
    REASON_TEXT,
    SCHEDULE,
    TEMPLATE_PLACEHOLDERS,
    UNSUBSCRIBE_URL,
    VIEW_TOKEN,
    MergeBody,
    literal_escape,
    merge_field,
    merge_join,
    merge_split,
)
from subscriptions import schedule
from subscriptions.links import FeedbackLinks, feedback_path

CSS_TEMPLATE = "newsletter/email/digest.css"
SUMMARY_CHARS = 480  # keeps ten papers well under Gmail's 102 KB clipping limit
SUBJECT_TITLE_CHARS = 90
REASON_TOPICS = 2  # topics named in "Because you follow ..."; more become "and N more"
LIKED_TITLE_CHARS = 70  # "Because you liked <title>": long titles cut
CONTENTS_CACHED = 256  # rendered emails an IssueRenderer keeps (about 10 MB)
BLOCKS_CACHED = 4096  # (paper, reason) blocks an IssueRenderer keeps (about 3 KB each)


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: MergeBody
    text: MergeBody


def archive_path(batch: DailyBatch) -> str:
    """The batch's public page: the day's, or the week's for a weekly batch."""
    name = "newsletter:archive-week" if batch.is_weekly else "newsletter:archive-day"
    return reverse(name, args=[batch.date.isoformat()])


def archive_url(batch: DailyBatch) -> str:
    return settings.SITE_URL + archive_path(batch)


_VIEW_TOKEN_SPOT = "TOKEN"  # noqa: S105 - stands where the merge field goes


def view_url_field(batch: DailyBatch) -> str:
    """The batch's "View in browser" URL around the recipient's view token merge field."""
    name = "newsletter:archive-week-yours" if batch.is_weekly else "newsletter:archive-yours"
    path = reverse(name, args=[batch.date.isoformat(), _VIEW_TOKEN_SPOT])
    return settings.SITE_URL + path.replace(_VIEW_TOKEN_SPOT, merge_field(VIEW_TOKEN))


@functools.lru_cache(maxsize=4096)
def schedule_words(zone: str, hour: int, frequency: str, weekday: int) -> str:
    """A recipient's schedule as the footer says it; a few thousand distinct ones at most."""
    return schedule.describe(
        schedule.Rhythm(zone=zone, hour=hour, frequency=frequency, weekday=weekday)
    )


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
        # Each paper's block with a reason filled in, ready to join: (html, text) split around
        # their merge fields, the HTML as ASCII. By (paper id, reason's words).
        self._reasoned: dict[tuple[int, str], tuple[MergeBody, MergeBody]] = {}
        # The same blocks by (paper id, the ranking's reason as recorded): an email looks its
        # blocks up without putting each reason into words again (2.6 us a paper, a tenth of
        # assembling an email with every selection distinct).
        self._recorded: dict[tuple, tuple[MergeBody, MergeBody]] = {}
        self._subject_titles: dict[int, str] = {}

    @cached_property
    def feedback_links(self) -> FeedbackLinks:
        """Signs the recipients' feedback tokens; one per renderer (it derives its key once)."""
        return FeedbackLinks()

    @cached_property
    def css(self) -> str:
        return render_to_string(CSS_TEMPLATE)

    @cached_property
    def _shells(self) -> tuple[str, str]:
        context = {
            "day": self.batch.date,
            "weekly": self.batch.is_weekly,
            "css": self.css,
            "archive_url": archive_url(self.batch),
            "view_url_field": view_url_field(self.batch),
            # The same for everyone, so part of the shell rendered once per issue.
            "editorial_html": editorial_html(self.batch.intro, paragraph_class="editorial"),
            "editorial_text": editorial_text(self.batch.intro),
            "placeholder": TEMPLATE_PLACEHOLDERS,
            "postal_address": postal_address_lines(),
            # Merge fields, filled per recipient.
            "unsubscribe_field": merge_field(UNSUBSCRIBE_URL),
            "preferences_field": merge_field(PREFERENCES_URL),
            "schedule_field": merge_field(SCHEDULE),
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
                # A merge field, filled per recipient with their signed feedback base URL.
                "more_field": merge_field(FEEDBACK_URL) + feedback_path(paper_id, MORE),
                "less_field": merge_field(FEEDBACK_URL) + feedback_path(paper_id, LESS),
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
        return "Trending this week" if self.batch.is_weekly else "Trending today"

    def _topics_reason(self, topic_ids: list[int]) -> str:
        names = [self.topic_names[t] for t in topic_ids if t in self.topic_names]
        if not names:
            return "Top paper of the day"
        shown = ", ".join(names[:REASON_TOPICS])
        more = f" and {len(names) - REASON_TOPICS} more" if len(names) > REASON_TOPICS else ""
        return f"Because you follow {shown}{more}"

    @cached_property
    def _shell_pieces(self) -> tuple[list[MergeBody], list[MergeBody]]:
        """The shells cut at their placeholders, each cut piece ASCII (HTML) and split around
        its merge fields; between the pieces go preheader, intro, papers (HTML) and intro,
        papers (text)."""
        shell_html, shell_text = self._shells
        html_cuts = _cut(shell_html, (PREHEADER, INTRO, PAPERS_HTML))
        text_cuts = _cut(shell_text, (INTRO, PAPERS_TEXT))
        return (
            [merge_split(_ascii_html(cut), html=True) for cut in html_cuts],
            [merge_split(cut, html=False) for cut in text_cuts],
        )

    def _reasoned_block(self, paper_id: int, reason: str):
        """The paper's (html, text) block with this reason, ready to join."""
        key = (paper_id, reason)
        block = self._reasoned.get(key)
        if block is None:
            if len(self._reasoned) >= BLOCKS_CACHED:
                self._reasoned.clear()  # many liked titles as reasons: start over, stay small
            block_html, block_text = self._blocks[paper_id]
            reason_html = self._reason_html.replace(REASON_TEXT, html.escape(reason), 1)
            block = self._reasoned[key] = (
                merge_split(_ascii_html(block_html.replace(REASON, reason_html, 1)), html=True),
                merge_split(block_text.replace(REASON, f"[{reason}]\n").strip() + "\n", html=False),
            )
        return block

    def _block_for(self, paper_id: int, why) -> tuple[MergeBody, MergeBody]:
        """``_reasoned_block`` of the paper with the words of the recorded reason `why`."""
        key = (paper_id, *why) if isinstance(why, list) else None
        try:
            block = self._recorded.get(key)
        except TypeError:  # a reason with an unhashable part: put in words each time
            key = block = None
        if block is None:
            block = self._reasoned_block(paper_id, self._reason(why))
            if key is not None:
                if len(self._recorded) >= BLOCKS_CACHED:
                    self._recorded.clear()
                self._recorded[key] = block
        return block

    def render(self, selection: list[list], content_key: str = "") -> RenderedDigest:
        """The email for one selection ([[paper_id, reason], ...]); cached by content_key."""
        if content_key and content_key in self._contents:
            self._contents.move_to_end(content_key)
            return self._contents[content_key]
        chosen = [(pid, reason) for pid, reason in selection if pid in self.papers]
        if not chosen:
            raise ValueError("a digest needs at least one visible paper")
        html_blocks: list[MergeBody] = []
        text_blocks: list[MergeBody] = []
        for paper_id, why in chosen:
            block_html, block_text = self._block_for(paper_id, why)
            html_blocks += (block_html, _NEWLINE)
            text_blocks += (block_text, _PARAGRAPH)
        titles = [self.papers[pid].title for pid, _ in chosen]
        preheader = " · ".join(titles[1:4]) or titles[0]
        plural = "s" if len(chosen) != 1 else ""
        if self.batch.is_weekly:
            intro = f"{len(chosen)} paper{plural} of the week picked for you."
        else:
            intro = f"{len(chosen)} trending paper{plural} picked for you."
        (h_start, h_preheader, h_intro, h_end), (t_start, t_intro, t_end) = self._shell_pieces
        rendered = RenderedDigest(
            # Providers with a template language read the subject as one (composition).
            subject=literal_escape(self._subject(chosen[0][0], len(chosen))),
            html=merge_join(
                [
                    h_start,
                    merge_split(_ascii_html(html.escape(preheader)), html=True),
                    h_preheader,
                    merge_split(_ascii_html(html.escape(intro)), html=True),
                    h_intro,
                    *html_blocks[:-1],
                    h_end,
                ]
            ),
            text=merge_join(
                [t_start, merge_split(intro, html=False), t_intro, *text_blocks[:-1], t_end]
            ),
        )
        if content_key:
            self._contents[content_key] = rendered
            if len(self._contents) > CONTENTS_CACHED:
                self._contents.popitem(last=False)
        return rendered

    def _subject(self, top_paper_id: int, papers: int) -> str:
        # "Tue 12 Mar: <top title> + 9 more" ("Week to Fri 15 Mar: ..." for a weekly). Titles
        # are stored without CR/LF or control characters, so nothing from upstream can add a
        # header line. The cut title is kept
        # per paper: Truncator took a third of the time of assembling an email.
        top = self._subject_titles.get(top_paper_id)
        if top is None:
            title = self.papers[top_paper_id].title
            top = Truncator(" ".join(title.split())).chars(SUBJECT_TITLE_CHARS)
            self._subject_titles[top_paper_id] = top
        more = f" + {papers - 1} more" if papers > 1 else ""
        week = "Week to " if self.batch.is_weekly else ""
        return f"{week}{self.batch.date:%a %-d %b}: {top}{more}"


_NEWLINE = merge_split("\n", html=True)  # between two HTML blocks
_PARAGRAPH = merge_split("\n\n", html=False)  # between two text blocks


def _cut(shell: str, placeholders: tuple[str, ...]) -> list[str]:
    """The shell's text before, between and after its placeholders, which must each appear
    once and in this order (the templates are ours: a changed template fails loudly here)."""
    cuts, rest = [], shell
    for placeholder in placeholders:
        if rest.count(placeholder) != 1 or shell.count(placeholder) != 1:
            raise ValueError(f"the email shell must hold {placeholder} once, after the others")
        before, rest = rest.split(placeholder)
        cuts.append(before)
    return [*cuts, rest]
