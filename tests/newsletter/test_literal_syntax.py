"""Text that looks like template syntax, through each provider's spelling (composition).

For the providers that run a template language over our bodies, a piece is written with its
fields in the provider's spelling and everything else escaped; what their fakes print of it
(devtools/fakes/templating.py) and what ``merge_fields_apply`` (previews, outbox) makes of
it must be the same text, the delimiters in it as written.
"""

from __future__ import annotations

import pytest

from devtools.fakes.templating import (
    render_brevo,
    render_handlebars,
    render_mailjet,
    render_sparkpost,
)
from newsletter.composition import (
    literal_escape,
    merge_field,
    merge_fields_apply,
    merge_join,
    merge_split,
    reads_as_meant,
)

RENDER = {
    "sparkpost": render_sparkpost,
    "brevo": render_brevo,
    "mailjet": render_mailjet,
    # SES renders every part with Handlebars; the text part's fields are spelled {{{name}}}.
    "amazon_ses": lambda text, values, html_body: render_handlebars(text, values),
}
LITERAL = (
    "$\\frac{{a}}{b}$ {{{x}}} {%raw%} 100%} {#c#} }} {{unsubscribe_url}} {{var:x}} {{ params.y }}"
)
VALUES = {"unsubscribe_url": "https://x.test/u/a&b", "schedule": "weekdays at 07:00"}


@pytest.fixture(params=["sparkpost", "brevo", "mailjet", "amazon_ses", "sendgrid", "mailgun"])
def esp(request, settings):
    settings.ANYMAIL_ESP = request.param
    return request.param


@pytest.mark.parametrize("html_body", [True, False])
def test_a_body_reads_as_the_provider_prints_it(esp, html_body):
    text = f"<p>{LITERAL}</p><a href='{merge_field('unsubscribe_url')}'>{merge_field('schedule')}"
    body = merge_join(
        [merge_split(text, html=html_body), merge_split(f" {LITERAL}", html=html_body)]
    )
    expected_values = {k: v.replace("&", "&amp;") if html_body else v for k, v in VALUES.items()}
    expected = (
        f"<p>{LITERAL}</p><a href='{expected_values['unsubscribe_url']}'>"
        f"{expected_values['schedule']} {LITERAL}"
    )
    if esp == "sendgrid":
        # No template language: SendGrid replaces its tags wherever they are, and the preview
        # with it (text spelled exactly like a field is filled, as before).
        expected = expected.replace("{{unsubscribe_url}}", expected_values["unsubscribe_url"])
    assert merge_fields_apply(body, VALUES, html_escape=html_body) == expected
    # A plain string of the same body (a subject, a copy Anymail rebuilt) reads the same.
    assert merge_fields_apply(str(body), VALUES, html_escape=html_body) == expected
    if esp in RENDER:
        assert RENDER[esp](str(body), _provider_values(esp), html_body=html_body) == expected


def _provider_values(esp: str) -> dict:
    if esp == "mailjet":
        from newsletter.providers import MAILJET_LITERAL_VARIABLES

        return {**MAILJET_LITERAL_VARIABLES, **VALUES}
    return VALUES


def test_a_subject_is_escaped_and_read_back(esp):
    subject = "Tue 10 Mar: {{x}} and {%y%}"
    escaped = literal_escape(subject)
    assert merge_fields_apply(escaped, {}, html_escape=False) == subject
    if esp in RENDER:
        assert escaped != subject
        assert RENDER[esp](escaped, _provider_values(esp), html_body=False) == subject
    else:
        assert escaped == subject  # nothing to escape for a provider without a language


@pytest.mark.parametrize("html_body", [True, False])
def test_handlebars_reads_every_brace_as_written_but_a_backslash_before_one(settings, html_body):
    settings.ANYMAIL_ESP = "amazon_ses"
    field = merge_field("unsubscribe_url")
    plain = merge_split(f"{LITERAL} \\frac {{{{{{{{x}}}}}}}} {field}", html=html_body)
    assert reads_as_meant(plain, html=html_body)
    assert RENDER["amazon_ses"](str(plain), VALUES, html_body) == merge_fields_apply(
        plain, VALUES, html_escape=html_body
    )
    # A backslash right before "{{" (a LaTeX "\{{") or before a field: Handlebars would read
    # an expression, or the field as text; no simple substitution can write either.
    for text in ("set \\{{a}}", f"C:\\{field}"):
        body = merge_split(text, html=html_body)
        assert not reads_as_meant(body, html=html_body)
        meant = merge_fields_apply(body, VALUES, html_escape=html_body)
        assert meant in (
            "set \\{{a}}",
            "C:\\https://x.test/u/a" + ("&amp;b" if html_body else "&b"),
        )
        try:
            printed = RENDER["amazon_ses"](str(body), VALUES, html_body)
        except ValueError:
            continue  # refused: a missing value, or no longer simple substitution
        assert printed != meant
    assert not reads_as_meant(literal_escape("a \\{{b"), html=False)
    assert reads_as_meant(literal_escape("a {{b}} {{{c}}} }}"), html=False)
