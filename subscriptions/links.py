"""Signed links in emails: confirmation, one-click unsubscribe, preference center, feedback.

Each purpose signs with its own salt, so a token for one is refused by the others. Only the
confirmation link expires (CONFIRM_LINK_MAX_AGE_DAYS); unsubscribe and preference
links keep working as long as the subscriber exists, because old digests must stay honourable
(RFC 8058 asks that a List-Unsubscribe URL keeps working). Feedback links (👍/👎 on a paper)
carry a timestamp and work for FEEDBACK_LINK_MAX_AGE_DAYS: an old digest's vote is stale.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import get_urlconf, reverse

from subscriptions.models import ConsentRecord, Subscriber

SALT_CONFIRM = "paperboy.subscriptions.confirm"
SALT_UNSUBSCRIBE = "paperboy.subscriptions.unsubscribe"
SALT_PREFERENCES = "paperboy.subscriptions.preferences"
SALT_FEEDBACK = "paperboy.feedback"
FEEDBACK_LINK_MAX_AGE_DAYS = 180


class TokenInvalid(Exception):
    """The token was not signed by us for this purpose (tampered, truncated, wrong link)."""


class TokenExpired(Exception):
    """A genuine confirmation token past its age; `payload` still says whose it was."""

    def __init__(self, payload: list) -> None:
        super().__init__("token expired")
        self.payload = payload


def _absolute(name: str, token: str) -> str:
    # Reversing costs more than signing, and a digest builds two links per recipient: reverse
    # each URL once, around a placeholder. Tokens are URL-safe, so nothing needs quoting.
    before, after = _url_around_token(name, settings.SITE_URL, get_urlconf())
    return before + token + after


_TOKEN_PLACEHOLDER = "TOKEN"  # noqa: S105 - stands where a link token goes


@functools.lru_cache(maxsize=32)
def _url_around_token(name: str, site_url: str, urlconf: str | None) -> tuple[str, str]:
    before, after = reverse(name, args=[_TOKEN_PLACEHOLDER], urlconf=urlconf).split(
        _TOKEN_PLACEHOLDER
    )
    return site_url + before, after


def confirm_token(subscriber: Subscriber, consent: ConsentRecord) -> str:
    return signing.dumps([str(subscriber.key), consent.pk], salt=SALT_CONFIRM)


def confirm_token_read(token: str, *, allow_expired: bool = False) -> tuple[str, int]:
    """Return (subscriber key, consent id); raise TokenInvalid or TokenExpired."""
    max_age = None if allow_expired else timedelta(days=settings.CONFIRM_LINK_MAX_AGE_DAYS)
    try:
        payload = signing.loads(token, salt=SALT_CONFIRM, max_age=max_age)
    except signing.SignatureExpired:
        raise TokenExpired(signing.loads(token, salt=SALT_CONFIRM)) from None
    except signing.BadSignature:
        raise TokenInvalid from None
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[1], int)):
        raise TokenInvalid
    return str(payload[0]), payload[1]


def _key_token(subscriber: Subscriber, salt: str) -> str:
    # No timestamp (these links do not expire), so a subscriber's link is the same in every
    # email and in the editor's preview of it.
    return _signer(salt, settings.SECRET_KEY).sign_object(str(subscriber.key))


@functools.lru_cache(maxsize=8)
def _signer(salt: str, secret_key: str) -> signing.Signer:
    # A digest signs two links per recipient; building the Signer was a third of the cost.
    # Keyed by the secret too, so a changed SECRET_KEY is never signed with the old one.
    return signing.Signer(key=secret_key, salt=salt)


def key_token_read(token: str, *, salt: str) -> str:
    """Return the subscriber key from an unsubscribe or preferences token."""
    try:
        payload = signing.Signer(salt=salt).unsign_object(token)
    except (signing.BadSignature, ValueError):
        raise TokenInvalid from None
    if not isinstance(payload, str):
        raise TokenInvalid
    return payload


def confirm_url(subscriber: Subscriber, consent: ConsentRecord) -> str:
    return _absolute("subscriptions:confirm", confirm_token(subscriber, consent))


def unsubscribe_url(subscriber: Subscriber) -> str:
    """The RFC 8058 one-click URL: put it in List-Unsubscribe (POST acts, GET asks)."""
    return _absolute("subscriptions:unsubscribe", _key_token(subscriber, SALT_UNSUBSCRIBE))


def preferences_url(subscriber: Subscriber) -> str:
    return _absolute("subscriptions:preferences", _key_token(subscriber, SALT_PREFERENCES))


# --- Feedback links --------------------------------------------------------------------------
# The signed value is "<subscriber key hex>.<paper id>.<1 or -1>": shorter than a signed JSON
# object (a digest carries two of these per paper) and parsed strictly on the way back.


def _feedback_value(subscriber_key: str | uuid.UUID, paper_id: int, value: int) -> str:
    if value not in (1, -1):
        raise ValueError(f"feedback value must be 1 or -1, not {value!r}")
    key = subscriber_key if isinstance(subscriber_key, uuid.UUID) else uuid.UUID(subscriber_key)
    return f"{key.hex}.{int(paper_id)}.{value}"


def feedback_token(subscriber: Subscriber, paper_id: int, value: int) -> str:
    signer = signing.TimestampSigner(key=settings.SECRET_KEY, salt=SALT_FEEDBACK)
    return signer.sign(_feedback_value(subscriber.key, paper_id, value))


def feedback_url(subscriber: Subscriber, paper_id: int, value: int) -> str:
    """The page behind a digest's "More like this" (value 1) / "Less like this" (-1) link."""
    return _absolute("subscriptions:feedback", feedback_token(subscriber, paper_id, value))


def feedback_token_read(token: str) -> tuple[str, int, int]:
    """Return (subscriber key, paper id, value); raise TokenInvalid or TokenExpired."""
    signer = signing.TimestampSigner(salt=SALT_FEEDBACK)
    try:
        raw = signer.unsign(token, max_age=timedelta(days=FEEDBACK_LINK_MAX_AGE_DAYS))
    except signing.SignatureExpired:
        raise TokenExpired([]) from None
    except signing.BadSignature:
        raise TokenInvalid from None
    parts = raw.split(".")
    if len(parts) != 3 or parts[2] not in ("1", "-1") or not parts[1].isdigit():
        raise TokenInvalid
    try:
        key = uuid.UUID(hex=parts[0])
    except ValueError:
        raise TokenInvalid from None
    return str(key), int(parts[1]), int(parts[2])


class FeedbackLinks:
    """Builds feedback URLs by the thousand, for one digest run.

    feedback_url makes a Signer, reverses the URL and derives the HMAC key on every call. Here
    all three happen once, and every link of the run shares one timestamp, so a link costs one
    HMAC. The tokens are exactly TimestampSigner's (a test holds them equal), so
    feedback_token_read verifies both alike.
    """

    def __init__(self) -> None:
        signer = signing.TimestampSigner(key=settings.SECRET_KEY, salt=SALT_FEEDBACK)
        if signer.algorithm != "sha256" or signer.sep != ":":
            raise RuntimeError("FeedbackLinks assumes Django's default signer")
        self._before, self._after = _url_around_token(
            "subscriptions:feedback", settings.SITE_URL, get_urlconf()
        )
        # django.utils.crypto.salted_hmac derives this key from the salt and the secret.
        self._hmac_key = hashlib.sha256(
            (signer.salt + "signer").encode() + settings.SECRET_KEY.encode()
        ).digest()
        self._timestamp = signer.timestamp()

    def token(self, subscriber_key: str | uuid.UUID, paper_id: int, value: int) -> str:
        signed = f"{_feedback_value(subscriber_key, paper_id, value)}:{self._timestamp}"
        digest = hmac.digest(self._hmac_key, signed.encode(), "sha256")
        return f"{signed}:{signing.b64_encode(digest).decode()}"

    def url(self, subscriber_key: str | uuid.UUID, paper_id: int, value: int) -> str:
        return self._before + self.token(subscriber_key, paper_id, value) + self._after
