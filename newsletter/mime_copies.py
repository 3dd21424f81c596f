"""The MIME bytes of one content's copies, built once and filled in for each reader.

SMTP takes a whole MIME message per reader (``Provider.merges`` false), and so does Amazon SES
for a content its SendBulkEmail call cannot carry (newsletter/amazon_ses.py). Built
from scratch by Python's ``email`` package (Django's ``message()``, header folding, the
generator, and for SES quoted-printable bodies), a copy of a 38 KB digest cost about 2 ms,
most of a send's CPU. Yet the copies of one content differ in few places: the To header,
Message-ID and Date, the reader's own headers (List-Unsubscribe, the delivery's id in the
metadata headers) and the merge fields' values in the text and html bodies.

So per content and per backend, one *probe* copy is built the backend's normal way, with a
unique sentinel string for each of a reader's values, and its bytes are kept in pieces:

- each header holding a sentinel (and Date, Message-ID) is folded again for each copy, from the
  value the normal build would have stored, by the very policy call the generator makes;
- each body line holding a merge field is filled and encoded again for each copy (7bit/8bit:
  as it is; quoted-printable: by the same encoder, which encodes line by line), with values
  html-escaped in html parts as ``merge_fields_apply`` does (``html_value``); every other
  byte is the probe's.

The pieces are exact for a copy only while every choice the ``email`` package made for the
probe holds for the copy too. Where one might not, ``copy_filled`` returns None and the
backend builds that copy the normal way: a value that is not plain ASCII (a header would be
RFC 2047-encoded, a part's 7bit/8bit choice could change), an address with a display name, a
filled body line over 998 bytes (Django would have chosen quoted-printable for the part), a
charset other than UTF-8, base64, attachments, a body or headers changed after the copy was
made. A probe that the normal build cannot make, or whose bytes are not what this module
expects of it, serves no copy at all. A content with one reader has no template: its probe
would cost more than the copy (newsletter/services/single_sends.py).

A backend may keep more of its probe (``Build``'s last item, ``Filled.extra``): Amazon SES
keeps the call's other parameters, so Anymail's payload code runs once per content too.
"""

from __future__ import annotations

import copy
import quopri
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate, make_msgid

from anymail.exceptions import AnymailError
from django.conf import settings
from django.core.mail.message import EmailMessage
from django.core.mail.utils import DNS_NAME

from newsletter.composition import (
    addr_spec,
    html_value,
    merge_field_names,
    recipient_merge_data,
)

# A backend's normal build of a copy: the message it serialized, its bytes, the line separator,
# and what else the backend keeps of the probe for its copies (``Filled.extra``).
Build = Callable[[EmailMessage], tuple[Message, bytes, str, object]]
# How one content's messages are expanded into one copy per recipient: (address, copy) each.
CopiesOf = Callable[[EmailMessage], list[tuple[str, EmailMessage]]]

LINE_LIMIT = 998  # Django picks quoted-printable for a UTF-8 part with a longer line
_NEWLINE = re.compile(r"\r\n|\r|\n")  # what the generator writes as its line separator
# An address Django, Anymail and the email package all leave as it is: a bare dot-atom addr-spec.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
)
# A header value stored as it is (ASCII, no line break) and left as it is inside a JSON string
# (no quote, backslash or control character): Anymail's X-Metadata is JSON.
_HEADER_VALUE = re.compile(r"[ !#-\[\]-~]+")
_GENERATED_VALUE = re.compile(r"[ -~]+")  # Date and Message-ID: ASCII, no line break
# A body value that breaks no line and keeps a part's 7bit/8bit choice: printable ASCII or tab.
_BODY_VALUE = re.compile(r"[\t -~]*")
# Made for each copy unless the copy's headers carry it (Django's EmailMessage.message()).
_PER_COPY_HEADERS = {"date", "message-id"}
# What a copy has of its content unchanged (what the probe's bytes and parameters were made of).
_SHARED = (
    "subject",
    "from_email",
    "reply_to",
    "cc",
    "bcc",
    "attachments",
    "encoding",
    "tags",
    "envelope_sender",
    "esp_extra",
    "track_clicks",
    "track_opens",
    "send_at",
    "template_id",
    "merge_data",
    "merge_headers",
    "merge_metadata",
    "merge_global_data",
)
_ENCODINGS = ("7bit", "8bit", "quoted-printable")  # of a text part the template can make


def content_share(
    content: EmailMessage, copies: list[EmailMessage], *, copies_of: CopiesOf
) -> None:
    """Let ``copies`` (``copies_of(content)``, each with its fields filled) be built from one
    template of ``content`` (``copy_filled``)."""
    shared = ContentCopies(content, copies_of)
    for one in copies:
        one.mime_copy_of = _CopyOf(shared, one.body, _alternative_texts(one))


def _alternative_texts(message: EmailMessage) -> tuple[str, ...]:
    return tuple(text for text, _ in getattr(message, "alternatives", []))


@dataclass(frozen=True)
class Filled:
    """A copy's MIME bytes, and what its backend kept of the content's probe (``Build``)."""

    raw: bytes
    extra: object = None


def copy_filled(message: EmailMessage, *, key: str, build: Build) -> Filled | None:
    """The MIME bytes of ``message``, a copy made by ``content_share``, filled into its
    content's template for the backend ``key`` (built once with ``build``, the backend's own
    build); None where the backend must build this copy the normal way."""
    copy_of = getattr(message, "mime_copy_of", None)
    if copy_of is None or not copy_of.unchanged(message):
        return None
    template = copy_of.content.template(key, build)
    if template is None:
        return None
    raw = template.fill(message, copy_of.content)
    return None if raw is None else Filled(raw, template.extra)


@dataclass(frozen=True)
class _CopyOf:
    content: ContentCopies
    body: str
    alternatives: tuple[str, ...]

    def unchanged(self, message: EmailMessage) -> bool:
        # A copy's bodies are its content's, filled: if anything replaced one since (a
        # pre_send receiver), the template does not hold it.
        alternatives = _alternative_texts(message)
        return (
            message.body is self.body
            and len(alternatives) == len(self.alternatives)
            and all(a is b for a, b in zip(alternatives, self.alternatives, strict=True))
        )


class ContentCopies:
    """One content's templates, one per backend, each built on first use (under a lock: the
    copies of a chunk may be sent from several threads at once)."""

    def __init__(self, content: EmailMessage, copies_of: CopiesOf) -> None:
        self.message = content
        self._copies_of = copies_of
        self._templates: dict[str, _Template | None] = {}
        self._lock = threading.Lock()

    def template(self, key: str, build: Build) -> _Template | None:
        with self._lock:
            if key not in self._templates:
                self._templates[key] = _template_make(self, build)
            return self._templates[key]

    def probe(self) -> tuple[EmailMessage, _Sentinels]:
        """A copy of the content, made as every copy is, whose reader's values are sentinels."""
        content = self.message
        first = addr_spec(content.to[0]) if content.to else ""
        sentinels = _Sentinels()
        address = sentinels.address()
        fields = merge_field_names(content.body)
        for text, _ in getattr(content, "alternatives", []):
            fields |= merge_field_names(text)
        probe_content = copy.copy(content)
        probe_content.to = [address]
        probe_content.merge_data = {address: {name: sentinels.field(name) for name in fields}}
        probe_content.merge_headers = {
            address: {
                name: sentinels.new()
                for name in (_anymail_dict(content, "merge_headers").get(first) or {})
            }
        }
        probe_content.merge_metadata = {
            address: {
                key: sentinels.new()
                for key in (_anymail_dict(content, "merge_metadata").get(first) or {})
            }
        }
        [(_, probe)] = self._copies_of(probe_content)
        return probe, sentinels


def _anymail_dict(message: EmailMessage, name: str) -> dict:
    value = getattr(message, name, None)
    return value if isinstance(value, dict) else {}


class _Sentinels:
    """Strings standing for a reader's values in the probe: random, so found nowhere else."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.all: list[str] = []
        self.fields: dict[str, str] = {}  # merge field name -> its sentinel
        self.address_sentinel = ""

    def new(self) -> str:
        sentinel = f"pb{self.token}n{len(self.all)}z"  # the z ends it: none prefixes another
        self.all.append(sentinel)
        return sentinel

    def field(self, name: str) -> str:
        self.fields[name] = self.new()
        return self.fields[name]

    def address(self) -> str:
        self.address_sentinel = f"pb{self.token}n{len(self.all)}z@paperboy.invalid"
        self.all.append(self.address_sentinel)
        return self.address_sentinel

    def found_in(self, message: EmailMessage) -> bool:
        """Whether the message's own text holds the token (then its bytes could not be cut
        around the sentinels alone; one chance in 2**64)."""
        texts = [message.body, message.subject, *_alternative_texts(message)]
        return any(self.token in str(text) for text in texts)

    def pattern(self) -> re.Pattern:
        alternatives = sorted(self.all, key=len, reverse=True)
        return re.compile("(" + "|".join(re.escape(s) for s in alternatives) + ")")


@dataclass(frozen=True)
class _HeaderSlot:
    """A root header written for each copy: ``parts`` is its stored value split around
    sentinels (literal, sentinel, literal, ...); ``per_copy`` names Date or Message-ID."""

    name: str
    parts: tuple[str, ...]
    per_copy: str = ""


@dataclass(frozen=True)
class _Value:
    """A merge field's value in a 7bit/8bit part, as bytes (html-escaped in html)."""

    sentinel: str
    escape: bool


@dataclass(frozen=True)
class _QuotedLine:
    """A body line of a quoted-printable part holding merge fields, encoded for each copy:
    ``parts`` is the line split around its sentinels."""

    parts: tuple[str, ...]
    escape: bool


@dataclass(frozen=True)
class _Line:
    """What a body line holding merge fields must keep for Django's choices to hold: its
    literals' bytes (line break not counted) and its fields' sentinels."""

    fixed: int
    sentinels: tuple[str, ...]
    escape: bool
    quoted: bool


class _Template:
    def __init__(
        self,
        *,
        probe: EmailMessage,
        extra: object,
        sentinels: _Sentinels,
        policy,
        linesep: str,
        pieces: list,
        lines: list[_Line],
        boundaries: list[bytes],
    ) -> None:
        self.extra = extra
        self.policy = policy
        self.linesep = linesep
        self.pieces = pieces  # bytes, _HeaderSlot, _Value or _QuotedLine, in order
        self.lines = lines
        self.boundaries = boundaries
        # A raw line as long as a boundary line could be one: such a copy is built whole.
        self.boundary_lengths = {len(b) for b in boundaries} | {len(b) + 2 for b in boundaries}
        self.address_sentinel = sentinels.address_sentinel
        self.fields = sentinels.fields
        self.sentinels = set(sentinels.all)
        self.extra_headers = dict(probe.extra_headers)
        self.metadata = dict(getattr(probe, "metadata", None) or {})
        self.shared = {name: getattr(probe, name, None) for name in _SHARED}

    def fill(self, message: EmailMessage, content: ContentCopies) -> bytes | None:
        values = self._values(message, content)
        if values is None:
            return None
        body = {s: values[s] for s in self.fields.values()}
        escaped = {s: html_value(v) for s, v in body.items()}
        if not self._lines_hold(body, escaped):
            return None
        body_bytes = {s: v.encode() for s, v in body.items()}
        escaped_bytes = {s: v.encode() for s, v in escaped.items()}
        out = []
        for piece in self.pieces:
            kind = type(piece)
            if kind is bytes:
                out.append(piece)
            elif kind is _Value:
                out.append((escaped_bytes if piece.escape else body_bytes)[piece.sentinel])
            elif kind is _HeaderSlot:
                value = self._header_value(piece, message, values)
                if value is None:
                    return None
                out.append(_folded(self.policy, piece.name, value))
            else:
                line = _filled(piece.parts, escaped if piece.escape else body)
                encoded = _encode(line, quoted=True, linesep=self.linesep)
                if any(b in encoded for b in self.boundaries):
                    return None
                out.append(encoded)
        return b"".join(out)

    def _lines_hold(self, body: dict[str, str], escaped: dict[str, str]) -> bool:
        """Whether each filled line keeps the probe's choices: none over 998 bytes (Django
        would make the part quoted-printable) and, 7bit/8bit, none a boundary line."""
        for line in self.lines:
            values = escaped if line.escape else body
            length = line.fixed + sum(len(values[s]) for s in line.sentinels)  # ASCII values
            if length > LINE_LIMIT or (not line.quoted and length in self.boundary_lengths):
                return False
        return True

    def _values(self, message: EmailMessage, content: ContentCopies) -> dict[str, str] | None:
        """Each sentinel's value for this copy; None if the copy differs from the probe in any
        other way, or a value is one the template cannot hold."""
        if len(message.to) != 1 or not _PLAIN_ADDRESS.fullmatch(message.to[0]):
            return None
        if any(getattr(message, name, None) != value for name, value in self.shared.items()):
            return None
        values = {self.address_sentinel: message.to[0]}
        if list(message.extra_headers) != list(self.extra_headers):
            return None
        for name, probe_value in self.extra_headers.items():
            value = message.extra_headers[name]
            if probe_value in self.sentinels:
                if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
                    return None
                values[probe_value] = value
            elif value != probe_value and name.lower() not in _PER_COPY_HEADERS:
                return None
        metadata = getattr(message, "metadata", None) or {}
        if list(metadata) != list(self.metadata):
            return None
        for key, probe_value in self.metadata.items():
            value = metadata[key]
            if probe_value in self.sentinels:
                if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
                    return None
                values[probe_value] = value
            elif value != probe_value:
                return None
        data = recipient_merge_data(content.message, addr_spec(message.to[0]))
        for name, sentinel in self.fields.items():
            if name not in data:
                return None  # left as written by merge_fields_apply: not a value of ours
            value = str(data[name])
            if not _BODY_VALUE.fullmatch(value):
                return None
            values[sentinel] = value
        return values

    def _header_value(
        self, slot: _HeaderSlot, message: EmailMessage, values: dict[str, str]
    ) -> str | None:
        if not slot.per_copy:
            return _filled(slot.parts, values)
        given = [v for k, v in message.extra_headers.items() if k.lower() == slot.per_copy]
        if given:
            value = given[0]
        elif slot.per_copy == "date":
            value = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
        else:
            value = make_msgid(domain=DNS_NAME)
        return value if isinstance(value, str) and _GENERATED_VALUE.fullmatch(value) else None


def _filled(parts: tuple[str, ...], values: dict[str, str]) -> str:
    """``parts`` (literal, sentinel, literal, ...) with each sentinel's value in its place."""
    filled = [parts[0]]
    for i in range(1, len(parts), 2):
        filled.append(values[parts[i]])
        filled.append(parts[i + 1])
    return "".join(filled)


# A value the compat32 policy writes as it is: printable ASCII words, single spaces between.
_UNFOLDED = re.compile(r"[!-~]+( [!-~]+)*")


def _folded(policy, name: str, value: str) -> bytes:
    """``policy.fold_binary(name, value)``, without its cost where its answer is known: a value
    of words that fits on the header's line is that line; a single word that does not is put
    alone on the next (test_mime_copies checks these against fold_binary)."""
    if policy.max_line_length and _UNFOLDED.fullmatch(value):
        linesep = policy.linesep
        if len(name) + 2 + len(value) <= policy.max_line_length:
            return f"{name}: {value}{linesep}".encode()
        if " " not in value:
            return f"{name}: {linesep} {value}{linesep}".encode()
    return policy.fold_binary(name, value)


def _quoted_printable(data: bytes) -> bytes:
    # email.encoders.encode_quopri's encoding (what Anymail's SES backend turns 8bit parts into).
    return quopri.encodestring(data, quotetabs=True).replace(b" ", b"=20")


def _encode(text: str, *, quoted: bool, linesep: str) -> bytes:
    """A part's text as the generator writes its payload: line breaks as ``linesep``."""
    if quoted:
        encoded = _quoted_printable(text.encode())
        return (
            encoded
            if linesep == "\n" and b"\r" not in encoded
            else _NEWLINE.sub(linesep, encoded.decode("ascii")).encode()
        )
    return _NEWLINE.sub(linesep, text).encode()


def _has_long_lines(text: str) -> bool:
    """Django's test in SafeMIMEText.set_payload: a line of more than 998 bytes."""
    lines = text.splitlines()
    # A character is at most 4 bytes in UTF-8: most texts are answered without encoding.
    if max(map(len, lines), default=0) * 4 <= LINE_LIMIT:
        return False
    return any(len(line.encode(errors="surrogateescape")) > LINE_LIMIT for line in lines)


def _template_make(content: ContentCopies, build: Build) -> _Template | None:
    """The content's template for one backend, or None if it cannot serve a copy exactly."""
    probe, sentinels = content.probe()
    if content.message.attachments or sentinels.found_in(content.message):
        return None
    try:
        mime, raw, linesep, extra = build(probe)
    except (AnymailError, ValueError):
        return None  # each copy's own build then raises what it raises
    found = sentinels.pattern()
    policy = mime.policy.clone(linesep=linesep)
    pieces: list = []
    header_block = []
    for name, value in mime.raw_items():
        folded = policy.fold_binary(name, value)
        header_block.append(folded)
        lowered = name.lower()
        if lowered in _PER_COPY_HEADERS:
            pieces.append(_HeaderSlot(name, (), per_copy=lowered))
        elif isinstance(value, str) and found.search(value):
            if lowered == "subject":
                return None  # Django encodes a subject as a Header even when it is ASCII
            pieces.append(_HeaderSlot(name, tuple(found.split(value))))
        else:
            pieces.append(folded)
    header_block.append(linesep.encode())
    pieces.append(linesep.encode())
    headers = b"".join(header_block)
    if not raw.startswith(headers):
        return None
    parts = [part for part in mime.walk() if not part.is_multipart()]
    texts = [(probe.body, False)] + [
        (text, mimetype == "text/html") for text, mimetype in getattr(probe, "alternatives", [])
    ]
    if len(parts) != len(texts):
        return None
    boundaries = [
        b"--" + part.get_boundary().encode() for part in mime.walk() if part.is_multipart()
    ]
    lines: list[_Line] = []
    at = len(headers)
    for part, (text, escape) in zip(parts, texts, strict=True):
        payload = _part_pieces(part, text, escape=escape, linesep=linesep, found=found)
        if payload is None:
            return None
        part_pieces, part_lines = payload
        # The probe's own payload, as the pieces make it: line by line, it must be what the
        # part makes as a whole (quoted-printable encodes a line at a time), and found where
        # the generator wrote the part.
        probe_payload = _probe_payload(part_pieces, linesep)
        if probe_payload != _encode(text, quoted=_quoted(part), linesep=linesep):
            return None
        start = raw.find(probe_payload, at)
        if start < 0:
            return None
        pieces.append(raw[at:start])
        pieces.extend(part_pieces)
        lines.extend(part_lines)
        at = start + len(probe_payload)
    pieces.append(raw[at:])
    return _Template(
        probe=probe,
        extra=extra,
        sentinels=sentinels,
        policy=policy,
        linesep=linesep,
        pieces=_joined(pieces),
        lines=lines,
        boundaries=boundaries,
    )


def _probe_payload(pieces: list, linesep: str) -> bytes:
    """The payload the pieces make with the probe's own values: its sentinels."""
    out = []
    for piece in pieces:
        if type(piece) is bytes:
            out.append(piece)
        elif type(piece) is _Value:
            out.append(piece.sentinel.encode())
        else:
            line = _filled(piece.parts, {s: s for s in piece.parts[1::2]})
            out.append(_encode(line, quoted=True, linesep=linesep))
    return b"".join(out)


def _quoted(part: Message) -> bool:
    return (part.get("Content-Transfer-Encoding") or "").lower() == "quoted-printable"


def _part_pieces(
    part: Message, text: str, *, escape: bool, linesep: str, found: re.Pattern
) -> tuple[list, list[_Line]] | None:
    """A text part's payload as pieces (bytes, _Value, _QuotedLine) and its lines holding
    merge fields; None if the template cannot make it."""
    encoding = (part.get("Content-Transfer-Encoding") or "").lower()
    if part.get_content_charset() != "utf-8" or encoding not in _ENCODINGS:
        return None
    quoted = _quoted(part)
    if _has_long_lines(text) or (quoted and "\r" in text):
        # Django's own quoted-printable (long lines), or line breaks whose encoding depends on
        # the first one in the text: not encoded line by line here.
        return None
    split_lines = text.split("\n")
    text_lines = [line + "\n" for line in split_lines[:-1]]
    if split_lines[-1]:
        text_lines.append(split_lines[-1])
    pieces: list = []
    lines: list[_Line] = []
    run: list[str] = []
    for line in text_lines:
        if not found.search(line):
            run.append(line)
            continue
        if run:
            pieces.append(_encode("".join(run), quoted=quoted, linesep=linesep))
            run = []
        if "\r" in line.rstrip("\r\n"):
            return None  # a line break inside the line: the checks below measure whole lines
        parts = tuple(found.split(line))
        line_break = len(line) - len(line.rstrip("\r\n"))
        fixed = sum(len(literal.encode()) for literal in parts[0::2]) - line_break
        lines.append(_Line(fixed, parts[1::2], escape, quoted))
        if quoted:
            pieces.append(_QuotedLine(parts, escape))
            continue
        for i, literal in enumerate(parts):
            if i % 2:
                pieces.append(_Value(literal, escape))
            elif literal:
                pieces.append(_encode(literal, quoted=False, linesep=linesep))
    if run:
        pieces.append(_encode("".join(run), quoted=quoted, linesep=linesep))
    return pieces, lines


def _joined(pieces: list) -> list:
    """Adjacent bytes pieces as one."""
    joined: list = []
    for piece in pieces:
        if type(piece) is bytes and joined and type(joined[-1]) is bytes:
            joined[-1] += piece
        elif type(piece) is not bytes or piece:
            joined.append(piece)
    return joined
