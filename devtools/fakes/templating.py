"""The template languages of SparkPost, Brevo, Mailjet and Amazon SES (Handlebars), as far as
the fakes need them.

Each provider runs its language over the subject and bodies of every message (Mailjet only when
the call sets ``TemplateLanguage``), so a fake must too: a field is filled from the recipient's
values, a literal written the documented way prints as the delimiter it stands for, and what
the provider would not accept (an unclosed delimiter, syntax Paperboy never sends) is refused,
as a reader would otherwise get a broken or emptied copy. Statements (``{{if}}``, ``{% if %}``,
loops) exist in the real languages; Paperboy sends none, so here they are refused: a title
that reached a fake as a statement is a bug the tests must see.
"""

from __future__ import annotations

import html
import re


class TemplateError(ValueError):
    """What the provider would refuse (or, for Mailjet, block) the message for."""


def _escaped(value: object, html_body: bool) -> str:
    text = "" if value is None else str(value)
    return html.escape(text) if html_body else text


_SPARKPOST_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SPARKPOST_FUNCTIONS = {"opening_double_curly()": "{{", "closing_double_curly()": "}}"}


def render_sparkpost(text: str, values: dict, *, html_body: bool) -> str:
    """SparkPost's substitution: ``{{name}}`` (HTML-escaped in the HTML body), ``{{{name}}}``
    (never escaped), an unknown name printing nothing, and the two functions for literal
    braces."""
    out, position = [], 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            out.append(text[position:])
            return "".join(out)
        out.append(text[position:start])
        raw = text.startswith("{{{", start)
        opener, closer = ("{{{", "}}}") if raw else ("{{", "}}")
        end = text.find(closer, start + len(opener))
        if end < 0:
            raise TemplateError(f"unclosed {opener} at {start}")
        expression = text[start + len(opener) : end].strip()
        if expression in _SPARKPOST_FUNCTIONS and not raw:
            out.append(_SPARKPOST_FUNCTIONS[expression])
        elif _SPARKPOST_NAME.match(expression):
            out.append(_escaped(values.get(expression, ""), html_body and not raw))
        else:
            raise TemplateError(f"unsupported substitution {opener}{expression}{closer}")
        position = end + len(closer)


_BREVO_PARAM = re.compile(r"^params\.([A-Za-z0-9_]+)$")
_VERBATIM, _END_VERBATIM = "{% verbatim %}", "{% endverbatim %}"


def render_brevo(text: str, params: dict, *, html_body: bool) -> str:
    """Brevo's language: ``{{ params.name }}`` (HTML-escaped in the HTML body, Brevo
    autoescaping), ``{% verbatim %}...{% endverbatim %}`` printed as written, ``{# ... #}``
    a comment (printing nothing)."""
    out, position = [], 0
    delimiters = re.compile(r"\{\{|\{%|\{#")
    while True:
        found = delimiters.search(text, position)
        if found is None:
            out.append(text[position:])
            return "".join(out)
        start = found.start()
        out.append(text[position:start])
        opener = found.group()
        if opener == "{%":
            if not text.startswith(_VERBATIM, start):
                raise TemplateError(f"unknown tag at {start}: {text[start : start + 30]!r}")
            end = text.find(_END_VERBATIM, start + len(_VERBATIM))
            if end < 0:
                raise TemplateError("verbatim without endverbatim")
            out.append(text[start + len(_VERBATIM) : end])
            position = end + len(_END_VERBATIM)
            continue
        closer = "}}" if opener == "{{" else "#}"
        end = text.find(closer, start + 2)
        if end < 0:
            raise TemplateError(f"unclosed {opener} at {start}")
        if opener == "{{":
            param = _BREVO_PARAM.match(text[start + 2 : end].strip())
            if param is None:
                raise TemplateError(f"unknown variable {text[start : end + 2]!r}")
            out.append(_escaped(params.get(param.group(1), ""), html_body))
        position = end + 2


_MAILJET_VAR = re.compile(r"^var:([A-Za-z0-9_]+)(?::(.*))?$", re.S)


def render_mailjet(text: str, variables: dict, *, html_body: bool) -> str:
    """Mailjet's language: ``{{var:name}}`` or ``{{var:name:default}}``; a variable with no
    value and no default is an error (Mailjet blocks the message)."""
    out, position = [], 0
    delimiters = re.compile(r"\{\{|\{%")
    while True:
        found = delimiters.search(text, position)
        if found is None:
            out.append(text[position:])
            return "".join(out)
        start = found.start()
        out.append(text[position:start])
        if found.group() == "{%":
            raise TemplateError(f"unsupported statement at {start}: {text[start : start + 30]!r}")
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"unclosed {{{{ at {start}")
        variable = _MAILJET_VAR.match(text[start + 2 : end].strip())
        if variable is None:
            raise TemplateError(f"unknown expression {text[start : end + 2]!r}")
        name, default = variable.groups()
        if name in variables:
            out.append(_escaped(variables[name], html_body))
        elif default is not None:
            out.append(_escaped(default, html_body))
        else:
            raise TemplateError(f"variable {name} has no value")
        position = end + 2


# Handlebars' escapeExpression: what {{name}} makes of a value, in every part (SES renders
# subject, text and HTML with the same language, so the text part is escaped too).
_HANDLEBARS_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#x27;",
        "`": "&#x60;",
        "=": "&#x3D;",
    }
)
_HANDLEBARS_ID = re.compile(r"\s*([A-Za-z0-9_]+)\s*$")


class MissingValue(TemplateError):
    """A template variable the destination's data has no value for (SES: a rendering
    failure; the message is accepted, then not delivered)."""


def render_handlebars(text: str, values: dict) -> str:
    """An SES inline template, read as Handlebars' lexer reads it: before a "{{", one
    backslash makes the "{{" and what follows it up to the next "{{" text (the backslash
    dropped), two or more print one less and leave the "{{" an expression; ``{{name}}``
    prints the value HTML-escaped, ``{{{name}}}`` as it is. SES takes only simple
    substitution in an inline template: blocks, comments, partials and helpers are refused
    (SES: "Template contains unsupported operations")."""
    out, position = [], 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            out.append(text[position:])
            return "".join(out)
        run = start
        while run > position and text[run - 1] == "\\":
            run -= 1
        slashes = start - run
        out.append(text[position:run])
        if slashes == 1:
            following = text.find("{{", start + 2)
            end = len(text) if following < 0 else following
            while following >= 0 and end > start + 2 and text[end - 1] == "\\":
                end -= 1
            out.append(text[start:end])
            position = end
            continue
        out.append("\\" * max(slashes - 1, 0))
        if text.startswith("{{{{", start):
            raise TemplateError(f"unsupported raw block at {start}")
        raw = text.startswith("{{{", start)
        opener, closer = ("{{{", "}}}") if raw else ("{{", "}}")
        end = text.find(closer, start + len(opener))
        if end < 0:
            raise TemplateError(f"unclosed {opener} at {start}")
        if not raw and text.startswith("}}}", end):
            raise TemplateError(f"{{{{ closed by }}}}}} at {end}")
        name = _HANDLEBARS_ID.match(text[start + len(opener) : end])
        if name is None:
            raise TemplateError(f"unsupported operation {text[start : end + len(closer)]!r}")
        if name.group(1) not in values:
            raise MissingValue(f"Attribute '{name.group(1)}' is not present in the rendering data")
        value = "" if values[name.group(1)] is None else str(values[name.group(1)])
        out.append(value if raw else value.translate(_HANDLEBARS_ESCAPES))
        position = end + len(closer)
