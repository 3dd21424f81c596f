"""Email address validation, normalization and hashing.

One normal form is used everywhere (storage, uniqueness, suppression), so "Ada@Bücher.example"
and "ada@xn--bcher-kva.example" are the same subscriber and the same suppression entry.
"""

from __future__ import annotations

import hashlib

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_LENGTH = 254  # RFC 5321 path limit minus the angle brackets
MAX_LOCAL_LENGTH = 64


def email_normalize(raw: str) -> str:
    """Return the normal form of an address, or raise ValidationError.

    The domain is IDNA-encoded (UTS #46 mapping, so upper case and full-width forms fold) and the
    whole address lower-cased: mailbox providers treat local parts case-insensitively in
    practice, and two rows differing only in case would mean two digests to one person.
    """
    value = (raw or "").strip()
    if "@" not in value:
        raise ValidationError("Enter a valid email address.", code="invalid")
    local, _, domain = value.rpartition("@")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValidationError("The domain of this address is not valid.", code="idna") from None
    address = f"{local}@{ascii_domain}".lower()
    if len(local) > MAX_LOCAL_LENGTH or len(address) > MAX_LENGTH:
        raise ValidationError("This address is too long.", code="length")
    validate_email(address)
    return address


def email_hash(normalized: str) -> str:
    """SHA-256 of a normalized address (a suppression key).

    Deliberately not keyed with SECRET_KEY: rotating the key must never silently lift a
    suppression. This makes the hash pseudonymous rather than anonymous (someone holding a
    guessed address can test it), which is the accepted trade-off for suppression lists.
    """
    return hashlib.sha256(f"paperboy-suppression:v1:{normalized}".encode()).hexdigest()
