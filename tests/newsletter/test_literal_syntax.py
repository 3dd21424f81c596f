"""Text that looks like template syntax, through each provider's spelling (composition).

For the providers that run a template language over our bodies, a piece is written with its
fields in the provider's spelling and everything else escaped; what their fakes print of it
(devtools/fakes/templating.py) and what ``merge_fields_apply`` (previews, outbox) makes of
it must be the same text, the delimiters in it as written.
"""

from __future__ import annotations

import pytest

from devtools.fakes.templating import render_brevo, render_mailjet, render_sparkpost
from newsletter.composition import (
    literal_escape,
    merge_field,
    merge_fields_apply,
    merge_join,
    merge_split,
)

RENDER = {"sparkpost": render_sparkpost, "brevo": render_brevo, "mailjet": render_mailjet}
LITERAL = (
    "$\\frac{{a}}{b}$ {{{x}}} {%raw%} 100%} {#c#} }} {{unsubscribe_url}} {{var:x}} {{ params.y }}"
)
VALUES = {"unsubscribe_url": "https://x.test/u/a&b", "schedule": "weekdays at 07:00"}


@pytest.fixture(params=["sparkpost", "brevo", "mailjet", "sendgrid", "mailgun"])
def esp(request, settings):
    settings.ANYMAIL_ESP = request.param
    return request.param


@pytest.mark.parametrize("html_body", [True, False])
def test_a_body_reads_as_the_provider_prints_it(esp, html_body):
    text = f"<p>{LITERAL}</p><a href='{merge_field('unsubscribe_url')}'>{merge_field('schedule')}"
    body = merge_join([merge_split(text), merge_split(f" {LITERAL}")])
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
