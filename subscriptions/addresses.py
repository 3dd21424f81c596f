"""Email address validation, normalization and hashing.

One normal form is used everywhere (storage, uniqueness, suppression), so "Ada@Bücher.example"
and "ada@xn--bcher-kva.example" are the same subscriber and the same suppression entry.

One set of rules, too: what the signup form, the CSV import and the send path accept is
exactly what `email_problem` passes. RFC 5322 allows far more (quoted local parts with
spaces, commas, "@" and control characters), but such an address cannot be carried safely by
the send path: Anymail's parser refuses control characters (the whole chunk failed), and
providers take recipients as comma-separated strings, so `"x,evil@example.com"@example.net`
could reach evil@example.com. Only a dot-atom local part of ASCII letters, digits and
``!#$%&'*+/=?^_`{|}~-`` and an IDNA domain are supported.
"""

from __future__ import annotations

import hashlib
import re

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_LENGTH = 254  # RFC 5321 path limit minus the angle brackets
MAX_LOCAL_LENGTH = 64

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# A whole address the send path can carry, as stored (newsletter/backends.py splits these
# without the RFC 5322 parser).
SENDABLE_ADDRESS = re.compile(
    rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})*)"
)
UNSUPPORTED = "Paperboy cannot send to addresses with {what}; please use another address."


def _local_part_problem(local: str) -> str | None:
    """Why a local part is not supported (for the person typing it), or None."""
    if LOCAL_PART.fullmatch(local):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in local):
        what = "control characters"
    elif '"' in local:
        what = "quotation marks (quoted names)"
    elif not local.isascii():
        what = "letters outside A-Z before the @"
    elif any(c.isspace() for c in local):
        what = "spaces"
    elif not local:
        what = "nothing before the @"
    elif local.startswith(".") or local.endswith(".") or ".." in local:
        what = "a dot at the start or end, or two in a row, before the @"
    else:
        bad = next(c for c in local if not re.fullmatch(_ATOM, c) and c != ".")
        what = f'the character "{bad}" before the @'
    return UNSUPPORTED.format(what=what)


def email_normalize(raw: str) -> str:
    """Return the normal form of an address, or raise ValidationError.

    The domain is IDNA-encoded (UTS #46 mapping, so upper case and full-width forms fold) and the
    whole address lower-cased: mailbox providers treat local parts case-insensitively in
    practice, and two rows differing only in case would mean two digests to one person.
    Addresses the send path cannot carry are refused with a message that says why.
    """
    value = (raw or "").strip()
    if "@" not in value:
        raise ValidationError("Enter a valid email address.", code="invalid")
    local, _, domain = value.rpartition("@")
    problem = _local_part_problem(local)
    if problem:
        raise ValidationError(problem, code="unsupported")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValidationError("The domain of this address is not valid.", code="idna") from None
    address = f"{local}@{ascii_domain}".lower()
    if len(local) > MAX_LOCAL_LENGTH or len(address) > MAX_LENGTH:
        raise ValidationError("This address is too long.", code="length")
    validate_email(address)
    if not SENDABLE_ADDRESS.fullmatch(address):
        raise ValidationError("Enter a valid email address.", code="invalid")
    return address


def email_problem(address: str) -> str | None:
    """Why the send path must not be handed this stored address, or None if it may.

    The pattern `email_normalize` ends with, checked alone (a regular expression, cheap enough
    for every recipient of every chunk); the reason comes from the full rules. A row stored
    before they applied is refused here, alone, instead of failing its whole chunk.
    """
    if SENDABLE_ADDRESS.fullmatch(address):
        return None
    try:
        email_normalize(address)
    except ValidationError as error:
        return error.messages[0]
    return "the address is not in its normal form"


def email_hash(normalized: str) -> str:
    """SHA-256 of a normalized address (a suppression key).

    Deliberately not keyed with SECRET_KEY: rotating the key must never silently lift a
    suppression. This makes the hash pseudonymous rather than anonymous (someone holding a
    guessed address can test it), which is the accepted trade-off for suppression lists.
    """
    return hashlib.sha256(f"paperboy-suppression:v1:{normalized}".encode()).hexdigest()
