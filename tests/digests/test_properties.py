"""Property-based: whatever upstream sends, parsers return a result and stored titles are clean."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digests.models import Paper
from digests.services import batch_ingest
from digests.sources import hf_api, hf_page, local_file
from digests.text import TITLE_MAX
from tests.digests.conftest import api_items

# Text that includes what breaks naive code: controls, NUL, CR/LF, bidi overrides, lone
# surrogates, markup.
nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, categories=None),
        st.sampled_from(["\r", "\n", "\x00", "\x1b", "\u202e", "\u2028", "\ud800", "<", ">", "&"]),
    ),
    max_size=80,
) | st.sampled_from(["<b>bold</b>", "<script>x</script>", "&lt;", "  \n  ", ""])

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), nasty_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=12,
)
PAPER_KEYS = [
    "id", "title", "summary", "authors", "publishedAt", "upvotes", "githubRepo", "projectPage",
    "ai_summary", "ai_keywords",
]  # fmt: skip
OUTER_KEYS = ["paper", "title", "summary", "thumbnail", "numComments"]


@st.composite
def mangled_items(draw) -> list:
    """Real items from the sample with fields replaced, dropped or retyped at random."""
    items = api_items()[: draw(st.integers(0, 4))]
    for item in items:
        if draw(st.booleans()):
            item["paper"]["title"] = draw(nasty_text)
            item["paper"]["id"] = draw(st.sampled_from(["2605.00001", "2605.00002v2", "x"]))
        for key in draw(st.lists(st.sampled_from(PAPER_KEYS), max_size=4)):
            if draw(st.booleans()):
                item["paper"][key] = draw(json_value)
            else:
                item["paper"].pop(key, None)
        for key in draw(st.lists(st.sampled_from(OUTER_KEYS), max_size=2)):
            item[key] = draw(json_value)
    return items + draw(st.lists(json_value, max_size=3))


def assert_clean_title(title: str) -> None:
    assert title
    assert len(title) <= TITLE_MAX
    assert title == title.strip()
    for ch in title:
        assert unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Zl", "Zp"}, repr(title)


fast = settings(max_examples=150, deadline=None)


@fast
@given(body=st.one_of(nasty_text, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_parsers_never_raise_on_arbitrary_text(body):
    for parse in (hf_api.parse, hf_page.parse, local_file.parse):
        result = parse(body)
        for item in result.items:
            assert_clean_title(item.title)


@fast
@given(data=json_value)
def test_the_api_parser_never_raises_on_arbitrary_json(data):
    result = hf_api.parse(json.dumps(data))
    assert result.fatal or isinstance(data, list)
    for item in result.items:
        assert_clean_title(item.title)


@fast
@given(items=mangled_items())
def test_mangled_items_give_clean_items_or_errors(items):
    result = hf_api.parse(json.dumps(items))

    assert len(result.items) + len(result.errors) == len(items)
    for item in result.items:
        assert_clean_title(item.title)
        assert isinstance(item.upvotes, int) and item.upvotes >= 0
        assert all(isinstance(name, str) and name for name in item.authors)


@fast
@given(items=mangled_items(), props=st.booleans())
def test_the_page_parser_survives_mangled_data_props_and_cards(items, props):
    from html import escape

    def card(item) -> str:
        paper = item.get("paper") if isinstance(item, dict) else None
        arxiv_id = str(paper.get("id", "")) if isinstance(paper, dict) else ""
        title = str(item.get("title", "")) if isinstance(item, dict) else ""
        return f'<article><h3><a href="/papers/{escape(arxiv_id)}">{title}</a></h3></article>'

    payload = escape(json.dumps({"dailyPapers": items}), quote=True)
    cards = "".join(card(item) for item in items)
    attr = f' data-props="{payload}"' if props else ""
    html = f'<html><div data-target="DailyPapers"{attr}></div>{cards}</html>'

    result = hf_page.parse(html)

    for item in result.items:
        assert_clean_title(item.title)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=mangled_items())
def test_no_stored_title_ever_has_control_characters(items, tmp_path):
    path = tmp_path / "day.json"
    path.write_text(json.dumps(items), encoding="utf-8")

    report = batch_ingest(day=dt.date(2026, 5, 8), path=path)

    assert report.fatal == ""  # a JSON array is always readable; bad items are per-item errors
    for title in Paper.objects.values_list("title", flat=True):
        assert_clean_title(title)
