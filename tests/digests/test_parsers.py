from __future__ import annotations

import json
import re

from bs4 import BeautifulSoup

from digests import text
from digests.sources import hf_api, hf_page, local_file
from tests.digests.conftest import api_body, api_items, page_body

PAGE_IDS = [
    "2407.21783",
    "2407.21705",
    "2407.21770",
    "2407.21646",
    "2407.21772",
    "2407.21630",
    "2407.21721",
    "2407.21530",
    "2407.20229",
    "2407.21781",
    "2407.21686",
    "2407.21475",
    "2404.01300",
]


def test_it_reads_the_37_papers_of_the_api_sample_in_upvote_order():
    result = hf_api.parse(api_body())

    assert result.fatal == ""
    assert result.errors == []
    assert len(result.items) == 37
    assert [i.arxiv_id for i in result.items] == [x["paper"]["id"] for x in api_items()]
    assert result.items[0].arxiv_id == "2605.05242"
    assert result.items[-1].arxiv_id == "2602.00095"
    upvotes = [i.upvotes for i in result.items]
    assert upvotes == sorted(upvotes, reverse=True)
    assert upvotes[:3] == [86, 68, 67]


def test_it_maps_the_fields_of_an_api_item():
    first = hf_api.parse(api_body()).items[0]

    assert first.title == (
        "Beyond Semantic Similarity: Rethinking Retrieval for Agentic Search via Direct "
        "Corpus Interaction"
    )
    assert first.abstract.startswith("Modern retrieval systems, whether lexical or semantic")
    assert first.authors[:3] == ["Zhuofeng Li", "Haoxiang Zhang", "Cong Wei"]
    assert len(first.authors) == 19
    assert first.published_at.isoformat() == "2026-05-03T00:00:00+00:00"
    assert first.hf_url == "https://huggingface.co/papers/2605.05242"
    assert first.arxiv_url == "https://arxiv.org/abs/2605.05242"
    assert first.pdf_url == "https://arxiv.org/pdf/2605.05242"
    assert first.code_url == "https://github.com/DCI-Agent/DCI-Agent-Lite"
    assert first.project_url == ""
    assert first.thumbnail_url.endswith("/papers/2605.05242.png")
    assert first.comment_count == 3
    assert first.ai_summary.startswith("Direct corpus interaction enables")
    assert "agentic search" in first.ai_keywords


def test_titles_and_abstracts_come_out_whitespace_normalized():
    for item in hf_api.parse(api_body()).items + hf_page.parse(page_body()).items:
        for value in (item.title, item.abstract):
            assert value == " ".join(value.split())
            assert "\n" not in value


def test_it_reads_the_13_papers_of_the_page_through_data_props():
    result = hf_page.parse(page_body())

    assert result.fatal == ""
    assert result.errors == []
    assert [i.arxiv_id for i in result.items] == PAGE_IDS
    # data-props carries the abstract (the cards do not): proof of which path was taken.
    assert all(i.abstract for i in result.items)
    moma = result.items[2]
    assert moma.title == (
        "MoMa: Efficient Early-Fusion Pre-training with Mixture of Modality-Aware Experts"
    )
    assert result.items[0].upvotes == 94
    assert result.items[0].comment_count == 5


def page_without_props() -> str:
    soup = BeautifulSoup(page_body(), "html.parser")
    node = soup.select_one('div[data-target="DailyPapers"]')
    del node["data-props"]
    return str(soup)


def test_it_falls_back_to_the_cards_when_data_props_is_gone():
    result = hf_page.parse(page_without_props())

    assert result.fatal == ""
    assert [i.arxiv_id for i in result.items] == PAGE_IDS
    assert all(i.abstract == "" for i in result.items)
    assert result.items[0].title == "The Llama 3 Herd of Models"
    assert result.items[0].upvotes == 94
    assert result.items[0].comment_count == 5
    assert result.items[0].thumbnail_url == (
        "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2407.21783.png"
    )
    assert [i.upvotes for i in result.items] == [
        i.upvotes for i in hf_page.parse(page_body()).items
    ]


def test_it_falls_back_to_the_cards_when_data_props_is_broken():
    soup = BeautifulSoup(page_body(), "html.parser")
    soup.select_one('div[data-target="DailyPapers"]')["data-props"] = '{"dailyPapers": [{"pa'
    result = hf_page.parse(str(soup))

    assert len(result.items) == 13
    assert "data-props unusable" in result.errors[0]


def test_a_page_whose_structure_changed_is_a_fatal_result_not_an_exception():
    result = hf_page.parse("<html><body><h1>We moved things around</h1></body></html>")

    assert result.items == []
    assert "neither DailyPapers data-props nor paper cards" in result.fatal


def test_truncated_json_is_a_fatal_result():
    result = hf_api.parse(api_body()[:5000])

    assert result.items == []
    assert result.fatal.startswith("invalid JSON")


def test_a_json_object_instead_of_an_array_is_a_fatal_result():
    assert "expected a JSON array" in hf_api.parse('{"error": "Invalid date"}').fatal


def test_broken_items_are_reported_and_the_good_ones_kept():
    items = api_items()[:3]
    del items[1]["paper"]["title"]
    del items[1]["title"]
    items.append({"paper": {"id": 2503.0213, "title": "Numeric id"}})
    items.append("not an object")
    items.append({"paper": {"id": "2605.99999", "title": "  \n "}})
    result = hf_api.parse(json.dumps(items))

    assert [i.arxiv_id for i in result.items] == ["2605.05242", "2605.06130"]
    assert result.errors == [
        "item 1: 2605.06548: no title",
        "item 3: paper id '2503.0213' is not an arXiv id",
        "item 4: item is a str, not an object",
        "item 5: 2605.99999: no title",
    ]


def test_a_version_suffix_is_kept_apart_from_the_id():
    items = api_items()[:1]
    items[0]["paper"]["id"] = "2605.05242v3"
    item = hf_api.parse(json.dumps(items)).items[0]

    assert (item.arxiv_id, item.arxiv_version) == ("2605.05242", 3)


def test_the_local_file_source_reads_either_format():
    assert len(local_file.parse("\ufeff\n" + api_body()).items) == 37
    assert len(local_file.parse(page_body()).items) == 13


def test_plain_text_strips_html_but_not_math():
    assert text.plain_text("<p>Hello <b>world</b></p><script>alert(1)</script>", max_length=99) == (
        "Hello world"
    )
    assert text.plain_text("for n<k and k>m, x < y", max_length=99) == "for n<k and k>m, x < y"
    assert text.plain_text("Q&amp;A &lt;3", max_length=99) == "Q&A <3"


def test_titles_lose_line_breaks_controls_and_bidi_overrides():
    dirty = "A\r\nTitle\x00 with\u2028 \u202eevil\u200b\tparts\x1b[31m\u0085end"
    assert text.plain_text(dirty, max_length=300) == "A Title with evil parts[31m end"


def test_long_text_is_capped_at_a_word_boundary():
    capped = text.plain_text("word " * 100, max_length=50)

    assert len(capped) <= 50
    assert capped.endswith("word…")


def test_only_absolute_http_urls_are_kept():
    assert text.clean_url("javascript:alert(1)") == ""
    assert text.clean_url("https://ok.example/x") == "https://ok.example/x"
    assert text.clean_url("/avatars/a.svg", base="https://huggingface.co") == (
        "https://huggingface.co/avatars/a.svg"
    )
    assert text.clean_url("https://evil.example/\r\nX-Header: 1") == ""


def test_arxiv_ids_stay_strings():
    assert text.parse_arxiv_id("2503.02130") == ("2503.02130", None)
    assert text.parse_arxiv_id("2503.02130v12") == ("2503.02130", 12)
    assert text.parse_arxiv_id(2503.0213) is None  # a number lost its trailing zero already
    assert text.parse_arxiv_id("25030213") is None
    assert text.parse_arxiv_id("hep-th/9901001v2") == ("hep-th/9901001", 2)
    assert text.parse_arxiv_id("../../etc/passwd") is None
    assert re.fullmatch(r"\d{4}\.\d{5}", text.parse_arxiv_id(" 2412.00001 ")[0])
