"""The editor's intro and notes: a small Markdown subset, and nothing an editor types can add
markup of its own."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from digests.editorial import editorial_html, editorial_text


def test_it_makes_paragraphs_line_breaks_emphasis_and_links():
    markup = editorial_html(
        "Hello **all** of *you*.\nA second line, [our paper](https://example.org/p?a=1&b=2).\n\n"
        "A new paragraph."
    )
    assert markup == (
        "<p>Hello <strong>all</strong> of <em>you</em>.<br>A second line, "
        '<a href="https://example.org/p?a=1&amp;b=2">our paper</a>.</p><p>A new paragraph.</p>'
    )


def test_blank_text_is_no_markup():
    assert editorial_html("  \n\n ") == ""
    assert editorial_text("") == ""


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        '[click](https://example.org/"onmouseover="alert(1))',
        "[click](https://example.org/'onmouseover='alert(1))",
        "**<b onclick=alert(1)>x</b>**",
        "[<i>label</i>](https://example.org)",
        '<a href="https://evil.example">x</a>',
        "&lt;script&gt; already escaped",
    ],
)
def test_nothing_typed_becomes_markup_of_its_own(hostile):
    soup = BeautifulSoup(str(editorial_html(hostile)), "html.parser")
    allowed = {"p", "br", "strong", "em", "a"}
    for tag in soup.find_all(True):
        assert tag.name in allowed, tag
        assert set(tag.attrs) <= ({"href"} if tag.name == "a" else set()), tag
        if tag.name == "a":
            assert tag["href"].startswith(("https://", "http://", "mailto:")), tag
            assert '"' not in tag["href"] and "'" not in tag["href"]
    # What was typed is still all there, as text.
    assert soup.get_text().replace("\n", "") != ""


def test_a_hostile_link_stays_text_and_a_good_one_does_not_take_the_rest():
    markup = editorial_html("[x](javascript:alert(1)) and [ok](https://a.example) (aside)")
    soup = BeautifulSoup(str(markup), "html.parser")
    assert [a["href"] for a in soup.find_all("a")] == ["https://a.example"]
    assert "[x](javascript:alert(1))" in soup.get_text()
    assert soup.get_text().endswith("ok (aside)")


def test_plain_text_keeps_the_words_and_spells_out_links():
    text = editorial_text("Read **this**:\n[the paper](https://example.org/x)\n\n\n*Thanks*")
    assert text == "Read this:\nthe paper (https://example.org/x)\n\nThanks"


def test_snake_case_and_arithmetic_are_left_alone():
    assert editorial_html("use snake_case_names and 2*3*4") == (
        "<p>use snake_case_names and 2*3*4</p>"
    )
