"""The spellings an email body is assembled with, and filling them in.

Two kinds of gap are left in a rendered digest:

- Placeholders (``%%INTRO%%``, ``<!--PAPERS-->``, ...) that the templates leave in the issue's
  shell and paper blocks. ``IssueRenderer`` fills them per distinct content.
- Merge fields (``{{unsubscribe_url}}``, spelled as the provider wants) for what differs per
  recipient. The provider fills them, or, where it cannot fill a body it did not render (our
  Postmark backend, the local outbox, the editor's preview), ``merge_fields_apply`` here.

Providers that run a template language over the body and subject (SparkPost, Brevo, Mailjet)
would also read text that is not ours to fill ("{{" in a LaTeX title) as their syntax: every
piece is escaped the provider's way here (``literal_escape``), and ``merge_fields_apply``
reads a body as the provider prints it, so the preview stays what the reader gets.

Why string substitution rather than rendering a template for each: templates and CSS inlining
run once per issue (the shell, each paper block), then each distinct content is a join of
pieces already split around their merge fields (``MergeBody``), and each recipient's copy a
fill of three values into those slots. Rendering a template per content or per recipient
would make cost grow with subscribers, not contents.
"""

from __future__ import annotations

import copy
import functools
import re

from anymail.utils import UNSET
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import EmailMessage
from django.utils.safestring import mark_safe

from newsletter.providers import provider

# --- Placeholders, filled per distinct content by IssueRenderer ---------------------------------

PREHEADER = "%%PREHEADER%%"  # shell.html: the inbox preview line
INTRO = "%%INTRO%%"  # shell.html and shell.txt: "N trending papers picked for your topics."
PAPERS_HTML = "<!--PAPERS-->"  # shell.html: the paper blocks (a comment: survives CSS inlining)
PAPERS_TEXT = "%%PAPERS%%"  # shell.txt: the paper blocks
REASON = "%%REASON%%"  # paper.html and paper.txt: why this paper is in this email
REASON_TEXT = "%%TEXT%%"  # inside the HTML reason line: the reason's words

# What the templates write them as (``{{ placeholder.intro }}``); safe, so autoescaping leaves
# the HTML comment alone.
TEMPLATE_PLACEHOLDERS = {
    "preheader": mark_safe(PREHEADER),  # noqa: S308 - constants
    "intro": mark_safe(INTRO),  # noqa: S308
    "papers_html": mark_safe(PAPERS_HTML),  # noqa: S308
    "papers_text": mark_safe(PAPERS_TEXT),  # noqa: S308
    "reason": mark_safe(REASON),  # noqa: S308
}

# --- Merge fields, filled per recipient ----------------------------------------------------------

UNSUBSCRIBE_URL = "unsubscribe_url"
PREFERENCES_URL = "preferences_url"
# The start of a recipient's "More/Less like this" links (their signed reader token); each
# paper block writes its paper and vote after it (subscriptions.links.feedback_path), so a
# block is rendered once per issue and a recipient has one value for all of their links.
FEEDBACK_URL = "feedback_url"
MORE, LESS = 1, -1  # the two feedback values, as subscriptions' Feedback stores them
# The recipient's "View in browser" token (subscriptions.links.view_token): the shell writes the
# day's URL around it, so the link shows this reader's own email of that day.
VIEW_TOKEN = "view_token"  # noqa: S105 - a merge field name
# The recipient's schedule in words ("weekdays at 07:00 (Europe/Paris)"), for the footer.
SCHEDULE = "schedule"


# How the templates write a merge field: its name between two private-use characters, which
# no upstream text carries (digests.text drops them) and nobody types, so a field written by
# a template is never confused with text that merely looks like one (a title with
# "{{unsubscribe_url}}" in it). ``merge_split`` writes each as the provider spells it; in the
# HTML pieces, turned to ASCII first, the mark is its character reference.
_MARK = "\ue000"
_MARKED = re.compile(r"(?:\ue000|&#57344;)([A-Za-z0-9_]+)(?:\ue000|&#57344;)")


def merge_field(name: str) -> str:
    """A merge field as the templates write it (``merge_split`` spells it for the provider)."""
    return f"{_MARK}{name}{_MARK}"


def merge_field_spelled(name: str, *, html: bool = True) -> str:
    """A merge field as the configured provider spells it in an HTML body (or, html=False,
    in a text body or subject)."""
    return _field_format(html).format(name)


def _field_format(html: bool) -> str:
    current = provider()
    if html or not current.text_field_format:
        return current.merge_field_format
    return current.text_field_format


def html_value(value: str) -> str:
    """A merge field's value as it fills an HTML body: escaped the way the provider's
    language escapes it (Handlebars escapes "=" and "`" too), so what is filled here is what
    the provider prints."""
    return provider().html_escape(value)


# The {{name}} spelling (the providers' default format).
MERGE_FIELD = re.compile(r"(\{\{\s*([A-Za-z0-9_]+)\s*\}\})")


@functools.lru_cache(maxsize=8)
def _field_pattern(field_format: str) -> re.Pattern:
    """How a provider's merge fields are found in a body (written, name): the bodies are
    sent with its spelling (Mailgun's ``%recipient.name%``), so the copies filled here
    (preview, outbox, single sends) find that spelling too."""
    if field_format == "{{{{{}}}}}":
        return MERGE_FIELD
    before, after = field_format.format("\0").split("\0")
    return re.compile(f"({re.escape(before)}([A-Za-z0-9_]+){re.escape(after)})")


# --- Literal template syntax ---------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _literal_patterns(literals: tuple[tuple[str, str], ...]) -> tuple[re.Pattern, re.Pattern]:
    # Matched left to right, each match taking its two characters: "{{{" is "{{" then "{", so
    # a brace left over is never the start of a delimiter.
    delimiters = sorted((d for d, _ in literals), key=len, reverse=True)
    spellings = sorted((s for _, s in literals), key=len, reverse=True)
    return (
        re.compile("|".join(re.escape(d) for d in delimiters)),
        re.compile("|".join(re.escape(s) for s in spellings)),
    )


def literal_escape(text: str) -> str:
    """`text` with every delimiter of the provider's template language written the way that
    language documents for literal text; unchanged for providers without one.

    Every piece of a body (``merge_split``) and the subject go through here, so whatever a
    paper, an editor or a template puts in them reaches the reader as written.
    """
    literals = provider().literals
    if not literals:
        return text
    delimiters, _ = _literal_patterns(literals)
    spelled = dict(literals)
    return delimiters.sub(lambda m: spelled[m.group()], text)


def _literal_unescape(text: str, literals: tuple[tuple[str, str], ...]) -> str:
    """What the provider's template language prints for literal text written so."""
    if not literals:
        return text
    _, spellings = _literal_patterns(literals)
    printed = {s: d for d, s in literals}
    return spellings.sub(lambda m: printed[m.group()], text)


class MergeBody(str):
    """A body as the provider gets it, which knows what each recipient reads of it:
    ``merge_parts`` is literal, (field as written, name, literal)*, each literal as printed
    (its escaped template syntax back to what it stands for).

    A digest's body is joined from pieces (shell, paper blocks) split once per issue, so
    filling it for a recipient needs no scan of its 30 KB; with every selection distinct,
    that scan ran once per email (a twelfth of a worker's time). Anymail hands the very
    string object on to the backend, where ``merge_fields_apply`` finds the parts.
    """

    merge_parts: tuple[str, ...]


def merge_split(text: str, *, html: bool) -> MergeBody:
    """``text`` (fields as the templates write them) as the provider gets it: its fields in
    the provider's spelling for an HTML body (`html`) or a text one, the rest escaped
    (``literal_escape``); split around its fields."""
    current = provider()
    pieces = _MARKED.split(text)
    literal = pieces[0::2]
    for i in range(0, len(pieces), 2):
        pieces[i] = literal_escape(pieces[i])
    for i in range(1, len(pieces), 2):
        pieces[i] = merge_field_spelled(pieces[i], html=html)
    wire = "".join(pieces)
    body = MergeBody(wire)
    if current.field_escape:
        # What the reader is meant to read, from the pieces themselves (each field as written
        # and its name, the literal text between them): where the language would read the
        # wire otherwise (a backslash right before a field), the backend sees that the two
        # differ (``reads_as_meant``) and fills the copies here instead.
        names = _MARKED.split(text)[1::2]
        parts = [literal[0]]
        for written, name, after in zip(pieces[1::2], names, literal[1:], strict=True):
            parts += [written, name, after]
        body.merge_parts = tuple(parts)
    else:
        body.merge_parts = _merge_parts(wire, _field_format(html), current.literals)
    return body


# Between two joined pieces: an empty "field" with no name (no merge field has an empty
# name, so nothing fills it), so their parts need no literal merged across the joint.
_JOINT = ("", "")


def merge_join(pieces: list[MergeBody]) -> MergeBody:
    """The body of these pieces, one after the other."""
    parts = list(pieces[0].merge_parts)
    for piece in pieces[1:]:
        parts += _JOINT
        parts += piece.merge_parts
    body = MergeBody("".join(pieces))
    body.merge_parts = tuple(parts)
    return body


@functools.lru_cache(maxsize=64)
def _merge_parts(
    text: str, field_format: str, literals: tuple[tuple[str, str], ...], field_escape: str = ""
) -> tuple[str, ...]:
    """The parts of a body as the provider reads it: its fields, found as the provider finds
    them, and between them the literal text it prints.

    Cached because one body is filled for every recipient of a batch message: the scan for
    fields then happens once per body instead of once per recipient.
    """
    if field_escape:
        # The text body's and subject's fields are the unescaped "{{{name}}}".
        read = handlebars_parts(text, raw_fields=field_format.format("").startswith("{{{"))
        if read is not None:
            return read
        # Not simple substitution (a backslash before an escaped "{{" that SES would read
        # otherwise): the copies filled here print the literal text as it was meant.
    split = _field_pattern(field_format).split(text)
    escapes = {s for _, s in literals}
    parts = [split[0]]
    rest = iter(split[1:])
    for written, name, literal in zip(rest, rest, rest, strict=True):
        if written in escapes:  # a delimiter printed as a variable (Mailjet's): literal text
            parts[-1] += written + literal
        else:
            parts += [written, name, literal]
    for i in range(0, len(parts), 3):
        parts[i] = _literal_unescape(parts[i], literals)
    return tuple(parts)


def _parts_read(text: str, *, html: bool = True) -> tuple[str, ...]:
    """The parts of a body or subject (an HTML body's, or with html=False a text body's or a
    subject's) as the configured provider reads it: those a MergeBody carries, else found by
    scanning it (cached)."""
    current = provider()
    return getattr(text, "merge_parts", None) or _merge_parts(
        str(text), _field_format(html), current.literals, current.field_escape
    )


# Handlebars' simple substitution, as its lexer reads it: a "{{" after one backslash starts
# literal text (the backslash dropped) up to the next "{{"; after two or more, one backslash
# is dropped and the "{{" opens an expression; "{{name}}" is a value HTML-escaped,
# "{{{name}}}" one printed as it is.
_HANDLEBARS_FIELD = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_HANDLEBARS_RAW_FIELD = re.compile(r"\{\{\{\s*([A-Za-z0-9_]+)\s*\}\}\}")


def handlebars_parts(text: str, *, raw_fields: bool) -> tuple[str, ...] | None:
    """What Handlebars reads in `text`, as ``_merge_parts`` gives it: literal, (field as
    written, name, literal)*; None where it holds anything but literal text and fields
    spelled ``{{{name}}}`` (`raw_fields`) or ``{{name}}`` (a block, a comment, a partial,
    the other spelling, an unclosed or stray delimiter): what an inline SES template may
    not hold, or not what Paperboy writes."""
    parts = [""]
    position = 0
    field = _HANDLEBARS_RAW_FIELD if raw_fields else _HANDLEBARS_FIELD
    while True:
        start = text.find("{{", position)
        if start < 0:
            parts[-1] += text[position:]
            return tuple(parts)
        run = start
        while run > position and text[run - 1] == "\\":
            run -= 1
        slashes = start - run
        if slashes == 1:
            # Escaped: the braces and what follows them, up to the next "{{", are text.
            following = text.find("{{", start + 2)
            end = len(text) if following < 0 else following
            while following >= 0 and end > start + 2 and text[end - 1] == "\\":
                end -= 1  # a backslash run before the next "{{" is that one's to read
            parts[-1] += text[position:run] + text[start:end]
            position = end
            continue
        found = field.match(text, start)
        if (
            found is None
            or (not raw_fields and text.startswith("{{{", start))
            or text.startswith("}", found.end())
        ):
            return None
        parts[-1] += text[position:run] + "\\" * max(slashes - 1, 0)
        parts += [found.group(), found.group(1), ""]
        position = found.end()


def reads_as_meant(text: str, *, html: bool) -> bool:
    """Whether the configured provider's language reads `text` (a MergeBody, or a subject)
    as what the preview shows: its fields where they were written, its literal text as
    written."""
    current = provider()
    if not current.field_escape:
        return True
    # A plain string (a subject) holds no fields: it is meant as its literal text.
    meant = getattr(text, "merge_parts", None) or (_literal_unescape(text, current.literals),)
    return handlebars_parts(str(text), raw_fields=not html) == _without_joints(meant)


def _without_joints(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Parts with the joints of merge_join taken out: the literals either side joined."""
    joined = [parts[0]]
    rest = iter(parts[1:])
    for written, name, literal in zip(rest, rest, rest, strict=True):
        if (written, name) == _JOINT:
            joined[-1] += literal
        else:
            joined += [written, name, literal]
    return tuple(joined)


def merge_fields_apply(text: str, data: dict[str, str], *, html_escape: bool) -> str:
    """What a recipient reads of a body or subject: the provider's merge fields
    (``{{name}}``) replaced with their values (escaped for HTML bodies), literal template
    syntax as it prints.

    Unknown fields are left as they are, as a provider would.
    """
    parts = _parts_read(text, html=html_escape)
    if len(parts) == 1:
        return parts[0]
    # Each value escaped once, not at each of its slots (a digest has 22 slots, 3 values).
    values = {k: html_value(str(v)) if html_escape else str(v) for k, v in data.items() if k}
    filled = [parts[0]]
    rest = iter(parts[1:])
    for written, name, literal in zip(rest, rest, rest, strict=True):
        filled.append(values.get(name, written))
        filled.append(literal)
    return "".join(filled)


def messages_per_recipient(message: EmailMessage) -> list[tuple[str, EmailMessage]]:
    """Expand a batch message (Anymail merge_data/merge_headers) into one message per recipient.

    Like a provider's batch send: each To recipient gets their own copy, sees only their own
    address, and has their merge fields filled in. A message without merge data is one
    message, for everyone on it (the address is then "").
    """
    merge_data = _anymail_attr(message, "merge_data")
    merge_headers = _anymail_attr(message, "merge_headers")
    if merge_data is None and not merge_headers:
        return [("", message)]
    copies = []
    for recipient in message.to:
        address = addr_spec(recipient)
        data = recipient_merge_data(message, address)
        one = copy.copy(message)
        one.to, one.cc, one.bcc = [recipient], [], []
        # The provider reads the subject as a template too (literal_escape).
        one.subject = merge_fields_apply(message.subject, data, html_escape=False)
        one.body = merge_fields_apply(message.body, data, html_escape=False)
        one.extra_headers = {**message.extra_headers, **(merge_headers or {}).get(address, {})}
        if isinstance(message, EmailMultiAlternatives):
            one.alternatives = []
            for content, mimetype in message.alternatives:
                html_escape = mimetype == "text/html"
                one.attach_alternative(
                    merge_fields_apply(content, data, html_escape=html_escape), mimetype
                )
        copies.append((address, one))
    return copies


def recipient_merge_data(message: EmailMessage, address: str) -> dict:
    """The merge fields' values for one recipient (``address``, an addr-spec) of a batch
    message: the global ones, overridden by the recipient's own."""
    data = {**(_anymail_attr(message, "merge_global_data") or {})}
    data.update((_anymail_attr(message, "merge_data") or {}).get(address, {}))
    return data


def merge_field_names(text: str) -> set[str]:
    """The names of the merge fields written in ``text``."""
    return {name for name in _parts_read(text)[2::3] if name}


LIST_UNSUBSCRIBE = "List-Unsubscribe"


def list_unsubscribe_is_merged(message: EmailMessage, merge_headers: dict) -> bool:
    """Whether every recipient's own headers are only ``List-Unsubscribe`` and it is exactly
    ``<their unsubscribe_url>``: a provider that fills merge fields in headers (Mailgun,
    SparkPost) can then be sent one header for the call, written with that field, instead of
    each recipient's URL a second time."""
    merge_data = getattr(message, "merge_data", None) or {}
    return bool(merge_headers) and all(
        set(headers) == {LIST_UNSUBSCRIBE}
        and UNSUBSCRIBE_URL in merge_data.get(address, {})
        and headers[LIST_UNSUBSCRIBE] == f"<{merge_data[address][UNSUBSCRIBE_URL]}>"
        for address, headers in merge_headers.items()
    )


def _anymail_attr(message: EmailMessage, name: str):
    value = getattr(message, name, None)
    return None if value is UNSET else value


def addr_spec(address: str) -> str:
    """``reader@example.org`` of ``Reader <reader@example.org>`` (or of itself)."""
    match = re.search(r"<([^>]*)>\s*$", address)
    return (match.group(1) if match else address).strip()
