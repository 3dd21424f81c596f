from __future__ import annotations

import email
from email.policy import default as policy
from pathlib import Path

import pytest

from config.outbox import OutboxEmailBackend
from digests.models import DailyBatch
from newsletter.models import Delivery
from newsletter.rendering import IssueRenderer
from newsletter.services.sending import digest_message
from tests.factories import (
    BatchEntryFactory,
    DailyBatchFactory,
    PaperFactory,
    SubscriberFactory,
    TopicFactory,
)
from tests.newsletter.conftest import tag

pytestmark = pytest.mark.django_db
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "trending-papers-page.txt"


def longest_papers(count: int) -> list[tuple[str, str]]:
    """The corpus's (title, abstract) pairs with the longest abstracts."""
    blocks = [b.strip() for b in CORPUS.read_text().split("\n\n") if b.strip()]
    papers = blocks[blocks.index("Mar 12") + 1 :]  # after the page's header lines
    pairs = list(zip(papers[0::2], papers[1::2], strict=True))
    return sorted(pairs, key=lambda p: len(p[1]), reverse=True)[:count]


def test_it_keeps_the_largest_realistic_digest_under_90_kb(settings):
    topic = None
    batch = DailyBatchFactory(status=DailyBatch.Status.APPROVED)
    selection = []
    for rank, (title, abstract) in enumerate(longest_papers(settings.DIGEST_MAX_PAPERS), 1):
        paper = PaperFactory(
            title=title[:300],
            abstract=abstract,
            authors=[f"Author Number {i} With A Long Name" for i in range(40)],
            code_url="https://github.com/example/" + "x" * 80,
            project_url="https://example.org/project/" + "y" * 80,
        )
        BatchEntryFactory(batch=batch, paper=paper, rank=rank)
        topic = topic or TopicFactory()
        tag(paper, topic)
        selection.append([paper.pk, [topic.pk]])
    rendered = IssueRenderer(batch).render(selection)

    size = len(rendered.html.encode())
    assert len(selection) == settings.DIGEST_MAX_PAPERS
    assert size < 90 * 1024, f"{size / 1024:.1f} KB"
    assert size > 10 * 1024  # it really holds ten papers
    assert "<link" not in rendered.html and "<script" not in rendered.html  # no external assets
    assert 'style="' in rendered.html  # CSS inlined for clients that drop <style>


def test_it_escapes_markup_and_never_lets_a_title_add_a_header(settings, day_batch):
    hostile = PaperFactory(
        title="<img src=x onerror=alert(1)> Attention\r\nBcc: victim@example.org",
        abstract="<script>alert('x')</script> plain words",
    )
    tag(hostile, day_batch.topics["vision"])
    BatchEntryFactory(batch=day_batch.batch, paper=hostile, rank=0)
    reader = SubscriberFactory(topics=[day_batch.topics["vision"]])
    delivery = Delivery(subscriber=reader, content_key="", pk=1)

    message = digest_message(
        IssueRenderer(day_batch.batch), [delivery], selection=[[hostile.pk, []]]
    )
    OutboxEmailBackend().send_messages([message])

    [path] = settings.EMAIL_OUTBOX_DIR.glob("*.eml")
    raw = path.read_bytes()
    parsed = email.message_from_bytes(raw, policy=policy)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert parsed["Bcc"] is None and b"\nBcc:" not in header_block
    assert "\n" not in parsed["Subject"] and "Bcc: victim" in parsed["Subject"]
    html = parsed.get_body(("html",)).get_content()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_it_writes_the_html_part_in_ascii_and_the_text_part_as_is(day_batch):
    paper = PaperFactory(title="Schrödinger Bridges — Ünïcode ∑", abstract="Ωmega naïve café")
    tag(paper, day_batch.topics["vision"])
    BatchEntryFactory(batch=day_batch.batch, paper=paper, rank=0)

    rendered = IssueRenderer(day_batch.batch).render([[paper.pk, []]])

    assert rendered.html.isascii()
    assert "Schr&#246;dinger Bridges &#8212; &#220;n&#239;code &#8721;" in rendered.html
    assert "&#937;mega na&#239;ve caf&#233;" in rendered.html
    assert (
        "Schrödinger Bridges — Ünïcode ∑" in rendered.text and "Ωmega naïve café" in rendered.text
    )
    assert rendered.subject.endswith("Schrödinger Bridges — Ünïcode ∑")


def test_it_renders_each_paper_block_once_per_issue(day_batch, django_assert_max_num_queries):
    renderer = IssueRenderer(day_batch.batch)
    papers = day_batch.papers
    first = renderer.render([[papers["r1"].pk, []], [papers["r2"].pk, []]], "a")
    second = renderer.render([[papers["r2"].pk, []], [papers["r1"].pk, []]], "b")
    assert first.html != second.html  # different order, different email
    with django_assert_max_num_queries(0):
        again = renderer.render([[papers["r1"].pk, []], [papers["r2"].pk, []]], "a")
    assert again is first


def test_its_bodies_carry_their_merge_fields_split_as_a_scan_finds_them(day_batch):
    from newsletter.composition import MERGE_FIELD, merge_fields_apply

    papers = day_batch.papers
    rendered = IssueRenderer(day_batch.batch).render([[papers["r1"].pk, []], [papers["r2"].pk, []]])
    data = {"unsubscribe_url": "https://x/u/a&b", "feedback_url": "https://x/f/t/"}
    for body, escape in ((rendered.html, True), (rendered.text, False)):
        scanned = tuple(MERGE_FIELD.split(str(body)))
        assert len(body.merge_parts) > 3 and "".join(body.merge_parts[2::3]) != ""
        filled = merge_fields_apply(body, data, html_escape=escape)
        assert filled == merge_fields_apply(str(body) + "", data, html_escape=escape)
        assert len(scanned) > 3 and "{{feedback_url}}" not in filled
