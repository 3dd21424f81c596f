"""The MIME bytes of one content's copies, built once and filled in for each reader.

SMTP and Amazon SES take a whole MIME message per reader (``Provider.merges`` false). Built
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
  html-escaped in html parts as ``merge_fields_apply`` does; every other byte is the probe's.

The pieces are exact for a copy only while every choice the ``email`` package made for the
probe holds for the copy too. Where one might not, ``copy_bytes`` returns None and the backend
builds that copy the normal way: a value that is not plain ASCII (a header would be RFC
2047-encoded, a part's 7bit/8bit choice could change), an address with a display name, a
filled body line over 998 bytes (Django would have chosen quoted-printable for the part), a
charset other than UTF-8, base64, attachments, a body or headers changed after the copy was
made. A probe that the normal build cannot make, or whose bytes are not what this module
expects of it, serves no copy at all.
"""

from __future__ import annotations

import copy
import html
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

from newsletter.composition import addr_spec, merge_field_names, recipient_merge_data

# A backend's normal build of a copy: (the message it serialized, its bytes, the line separator).
Build = Callable[[EmailMessage], tuple[Message, bytes, str]]
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
_ENCODINGS = ("7bit", "8bit", "quoted-printable")  # of a text part the template can make


def content_share(
    content: EmailMessage, copies: list[EmailMessage], *, copies_of: CopiesOf
) -> None:
    """Let ``copies`` (``copies_of(content)``, each with its fields filled) be built from one
    template of ``content`` (``copy_bytes``)."""
    shared = ContentCopies(content, copies_of)
    for one in copies:
        one.mime_copy_of = _CopyOf(shared, one.body, tuple(c for c, _ in one.alternatives))


def copy_bytes(message: EmailMessage, *, key: str, build: Build) -> bytes | None:
    """The MIME bytes of ``message``, a copy made by ``content_share``, filled into its
    content's template for the backend ``key`` (built once with ``build``, the backend's own
    build); None where the backend must build this copy the normal way."""
    copy_of = getattr(message, "mime_copy_of", None)
    if copy_of is None or not copy_of.unchanged(message):
        return None
    template = copy_of.content.template(key, build)
    if template is None:
        return None
    return template.fill(message, copy_of.content)


@dataclass(frozen=True)
class _CopyOf:
    content: ContentCopies
    body: str
    alternatives: tuple[str, ...]

    def unchanged(self, message: EmailMessage) -> bool:
        # A copy's bodies are its content's, filled: if anything replaced one since (a
        # pre_send receiver), the template does not hold it.
        alternatives = tuple(text for text, _ in message.alternatives)
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
        self.address_sentinel = f"{self.new()}@paperboy.invalid"
        self.all.append(self.address_sentinel)
        return self.address_sentinel

    def pattern(self) -> re.Pattern:
        # Longest first: the address holds a sentinel of its own.
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
class _LineSlot:
    """A body line holding merge fields: ``parts`` split around their sentinels, ``fixed`` the
    bytes of its literals (line break not counted), ``quoted`` whether the part is
    quoted-printable, ``escape`` whether values are html-escaped."""

    parts: tuple[str, ...]
    fixed: int
    quoted: bool
    escape: bool
    linesep: str


class _Template:
    def __init__(
        self,
        *,
        probe: EmailMessage,
        sentinels: _Sentinels,
        policy,
        pieces: list,
        boundaries: list[bytes],
    ) -> None:
        self.policy = policy
        self.pieces = pieces  # bytes, _HeaderSlot or _LineSlot, in order
        self.boundaries = boundaries
        self.address_sentinel = sentinels.address_sentinel
        self.fields = sentinels.fields
        self.sentinels = set(sentinels.all)
        self.extra_headers = dict(probe.extra_headers)
        self.metadata = dict(getattr(probe, "metadata", None) or {})
        self.shared = {
            name: getattr(probe, name, None)
            for name in ("subject", "from_email", "reply_to", "cc", "bcc", "attachments")
        }

    def fill(self, message: EmailMessage, content: ContentCopies) -> bytes | None:
        values = self._values(message, content)
        if values is None:
            return None
        escaped = None
        out = []
        for piece in self.pieces:
            if type(piece) is bytes:
                out.append(piece)
            elif type(piece) is _HeaderSlot:
                value = self._header_value(piece, message, values)
                if value is None:
                    return None
                out.append(self.policy.fold_binary(piece.name, value))
            else:
                if piece.escape and escaped is None:
                    escaped = {s: html.escape(v) for s, v in values.items()}
                line = _line_fill(piece, escaped if piece.escape else values)
                if line is None or any(b in line for b in self.boundaries):
                    return None
                out.append(line)
        return b"".join(out)

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
        if slot.per_copy:
            given = [v for k, v in message.extra_headers.items() if k.lower() == slot.per_copy]
            if given:
                value = given[0]
            elif slot.per_copy == "date":
                value = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
            else:
                value = make_msgid(domain=DNS_NAME)
            return value if isinstance(value, str) and _GENERATED_VALUE.fullmatch(value) else None
        parts = slot.parts
        filled = [parts[0]]
        for i in range(1, len(parts), 2):
            filled.append(values[parts[i]])
            filled.append(parts[i + 1])
        return "".join(filled)


def _line_fill(slot: _LineSlot, values: dict[str, str]) -> bytes | None:
    parts = slot.parts
    filled = [parts[0]]
    length = slot.fixed
    for i in range(1, len(parts), 2):
        value = values[parts[i]]
        length += len(value)  # ASCII (_BODY_VALUE): as many bytes as characters
        filled.append(value)
        filled.append(parts[i + 1])
    if length > LINE_LIMIT:
        return None
    return _encode("".join(filled), quoted=slot.quoted, linesep=slot.linesep)


def _quoted_printable(data: bytes) -> bytes:
    # email.encoders.encode_quopri's encoding (what Anymail's SES backend turns 8bit parts into).
    return quopri.encodestring(data, quotetabs=True).replace(b" ", b"=20")


def _encode(text: str, *, quoted: bool, linesep: str) -> bytes:
    """A part's text as the generator writes its payload: line breaks as ``linesep``."""
    if quoted:
        return _NEWLINE.sub(linesep, _quoted_printable(text.encode()).decode("ascii")).encode()
    return _NEWLINE.sub(linesep, text).encode()


def _has_long_lines(text: str) -> bool:
    # Django's test in SafeMIMEText.set_payload.
    return any(
        len(line.encode(errors="surrogateescape")) > LINE_LIMIT for line in text.splitlines()
    )


def _template_make(content: ContentCopies, build: Build) -> _Template | None:
    """The content's template for one backend, or None if it cannot serve a copy exactly."""
    probe, sentinels = content.probe()
    if content.message.attachments:
        return None
    try:
        mime, raw, linesep = build(probe)
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
    at = len(headers)
    for part, (text, escape) in zip(parts, texts, strict=True):
        lines = _part_pieces(part, text, escape=escape, linesep=linesep, found=found)
        if lines is None:
            return None
        # The probe's own payload, as the pieces make it: line by line, it must be what the
        # part makes as a whole (quoted-printable encodes a line at a time), and found where
        # the generator wrote the part.
        filled = [
            piece if type(piece) is bytes else _line_fill(piece, _probe_values(sentinels))
            for piece in lines
        ]
        if None in filled:
            return None
        payload = b"".join(filled)
        if payload != _encode(text, quoted=_quoted(part), linesep=linesep):
            return None
        start = raw.find(payload, at)
        if start < 0:
            return None
        pieces.append(raw[at:start])
        pieces.extend(lines)
        at = start + len(payload)
    pieces.append(raw[at:])
    return _Template(
        probe=probe,
        sentinels=sentinels,
        policy=policy,
        pieces=_joined(pieces),
        boundaries=boundaries,
    )


def _probe_values(sentinels: _Sentinels) -> dict[str, str]:
    return {s: s for s in sentinels.all}


def _quoted(part: Message) -> bool:
    return (part.get("Content-Transfer-Encoding") or "").lower() == "quoted-printable"


def _part_pieces(
    part: Message, text: str, *, escape: bool, linesep: str, found: re.Pattern
) -> list | None:
    """A text part's payload as bytes and _LineSlots, or None if the template cannot make it."""
    encoding = (part.get("Content-Transfer-Encoding") or "").lower()
    if part.get_content_charset() != "utf-8" or encoding not in _ENCODINGS:
        return None
    quoted = _quoted(part)
    if _has_long_lines(text) or (quoted and "\r" in text):
        # Django's own quoted-printable (long lines), or line breaks whose encoding depends on
        # the first one in the text: not encoded line by line here.
        return None
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    pieces: list = []
    run: list[str] = []
    for line in lines:
        if not found.search(line):
            run.append(line)
            continue
        if run:
            pieces.append(_encode("".join(run), quoted=quoted, linesep=linesep))
            run = []
        split = tuple(found.split(line))
        line_break = len(line) - len(line.rstrip("\r\n"))
        fixed = sum(len(literal.encode()) for literal in split[0::2]) - line_break
        pieces.append(_LineSlot(split, fixed, quoted, escape, linesep))
    if run:
        pieces.append(_encode("".join(run), quoted=quoted, linesep=linesep))
    return pieces


def _joined(pieces: list) -> list:
    """Adjacent bytes pieces as one."""
    joined: list = []
    for piece in pieces:
        if type(piece) is bytes and joined and type(joined[-1]) is bytes:
            joined[-1] += piece
        elif type(piece) is not bytes or piece:
            joined.append(piece)
    return joined
