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
import json
import uuid
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import get_urlconf, reverse

from subscriptions.models import ConsentRecord, Subscriber

SALT_CONFIRM = "paperboy.subscriptions.confirm"
SALT_UNSUBSCRIBE = "paperboy.subscriptions.unsubscribe"
SALT_PREFERENCES = "paperboy.subscriptions.preferences"
SALT_ADDRESS_CHANGE = "paperboy.subscriptions.address-change"
SALT_VIEW = "paperboy.subscriptions.view-in-browser"
SALT_FEEDBACK = "paperboy.feedback"  # one token per link (digests sent before reader tokens)
SALT_FEEDBACK_READER = "paperboy.feedback.reader"
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
    return _key_signer(salt, settings.SECRET_KEY).sign(subscriber.key)


class _KeySigner:
    """``Signer(salt=...).sign_object(str(key))`` for subscriber keys, at one HMAC a token.

    A digest signs two of these per recipient; Signer derives its HMAC key and serializes
    through JSON on every call, which was 80 us a token, more than building the rest of the
    recipient's merge data. A test holds the tokens equal to Signer's.
    """

    def __init__(self, salt: str, secret_key: str) -> None:
        signer = signing.Signer(key=secret_key, salt=salt)
        if signer.algorithm != "sha256" or signer.sep != ":":
            raise RuntimeError("_KeySigner assumes Django's default signer")
        # django.utils.crypto.salted_hmac derives this key from the salt and the secret.
        self._hmac_key = hashlib.sha256((salt + "signer").encode() + secret_key.encode()).digest()

    def sign(self, key: str | uuid.UUID) -> str:
        # As sign_object: compact JSON of the string, URL-safe base64 without padding.
        data = json.dumps(str(key), separators=(",", ":")).encode("latin-1")
        value = signing.b64_encode(data).decode()
        digest = hmac.digest(self._hmac_key, value.encode(), "sha256")
        return f"{value}:{signing.b64_encode(digest).decode()}"


@functools.lru_cache(maxsize=8)
def _key_signer(salt: str, secret_key: str) -> _KeySigner:
    # Keyed by the secret too, so a changed SECRET_KEY is never signed with the old one.
    return _KeySigner(salt, secret_key)


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


def view_token(subscriber: Subscriber) -> str:
    """The token of a reader's "View in browser" links: it shows their own digests and
    nothing else (its own salt), so a forwarded link cannot change their subscription."""
    return _key_token(subscriber, SALT_VIEW)


# --- Change of address -------------------------------------------------------------------------
# The link mailed to the new address carries the subscriber, a prefix of the hash of the address
# they had when they asked, and the new address, signed and timestamped. Nothing is stored until
# it is confirmed: the old address keeps getting everything until then, and once the address
# has changed (by this link or another) every other change link of the old one stops working.

ADDRESS_HASH_PREFIX = 16


def address_change_token(subscriber: Subscriber, new_address: str) -> str:
    payload = [str(subscriber.key), subscriber.email_hash[:ADDRESS_HASH_PREFIX], new_address]
    return signing.dumps(payload, salt=SALT_ADDRESS_CHANGE)


def address_change_token_read(token: str) -> tuple[str, str, str]:
    """(subscriber key, old address hash prefix, new address); TokenInvalid or TokenExpired."""
    max_age = timedelta(days=settings.CONFIRM_LINK_MAX_AGE_DAYS)
    try:
        payload = signing.loads(token, salt=SALT_ADDRESS_CHANGE, max_age=max_age)
    except signing.SignatureExpired:
        raise TokenExpired([]) from None
    except signing.BadSignature:
        raise TokenInvalid from None
    if not (isinstance(payload, list) and len(payload) == 3):
        raise TokenInvalid
    if not all(isinstance(part, str) for part in payload):
        raise TokenInvalid
    return payload[0], payload[1], payload[2]


def address_change_url(subscriber: Subscriber, new_address: str) -> str:
    return _absolute("subscriptions:address-confirm", address_change_token(subscriber, new_address))


class KeyLinks:
    """``unsubscribe_url``, ``preferences_url`` and ``view_token`` for the recipients of one
    chunk.

    Each of those calls reads SITE_URL, SECRET_KEY and the thread's urlconf through Django's
    lazy settings and asgiref's locals, which cost more than the HMAC itself (with every
    selection distinct, a tenth of a worker's time went into the two links). Here they are
    read once, when the chunk starts; the URLs are the functions' own (a test holds them
    equal).
    """

    def __init__(self) -> None:
        site_url, urlconf, secret = settings.SITE_URL, get_urlconf(), settings.SECRET_KEY
        self._unsubscribe = _url_around_token("subscriptions:unsubscribe", site_url, urlconf)
        self._preferences = _url_around_token("subscriptions:preferences", site_url, urlconf)
        self._unsubscribe_signer = _key_signer(SALT_UNSUBSCRIBE, secret)
        self._preferences_signer = _key_signer(SALT_PREFERENCES, secret)
        self._view_signer = _key_signer(SALT_VIEW, secret)

    def unsubscribe(self, subscriber: Subscriber) -> str:
        before, after = self._unsubscribe
        return before + self._unsubscribe_signer.sign(subscriber.key) + after

    def preferences(self, subscriber: Subscriber) -> str:
        before, after = self._preferences
        return before + self._preferences_signer.sign(subscriber.key) + after

    def view_token(self, subscriber: Subscriber) -> str:
        return self._view_signer.sign(subscriber.key)


# --- Feedback links --------------------------------------------------------------------------
# A digest's 👍/👎 links are ".../f/<reader token>/<paper id>/<more|less>": one signed token per
# recipient, the same in all of their links, and the paper and the vote in the clear.
#
# Why one token per recipient is enough: the token proves "sent by us to this subscriber in
# the last FEEDBACK_LINK_MAX_AGE_DAYS days", which is what a per-link signature proved too.
# What is not signed is the paper and the vote. Whoever holds one of the links already holds
# both votes on every paper of that email, and the same email carries the preferences link,
# which never expires and lets its holder undo any feedback, change topics, unsubscribe or
# erase the subscriber. So a reader token lets its holder do nothing the email did not
# already allow: rating other papers is less than the preferences link permits. The view
# still checks the paper exists and records only on POST (link scanners open every link).
# The token has its own salt, so it is neither an unsubscribe nor a preferences token.
#
# A digest used to carry 20 signed links (two per paper); signing them was an eighth of the
# cost of sending an email when every selection is distinct. The per-link tokens of digests
# sent before keep working on the route ".../f/<token>/" until they expire.

FEEDBACK_VOTES = {1: "more", -1: "less"}
_VOTE_VALUES = {word: value for value, word in FEEDBACK_VOTES.items()}


def _feedback_value(subscriber_key: str | uuid.UUID, paper_id: int, value: int) -> str:
    if value not in (1, -1):
        raise ValueError(f"feedback value must be 1 or -1, not {value!r}")
    key = subscriber_key if isinstance(subscriber_key, uuid.UUID) else uuid.UUID(subscriber_key)
    return f"{key.hex}.{int(paper_id)}.{value}"


def feedback_path(paper_id: int, value: int) -> str:
    """What follows a reader's feedback base URL for one paper and vote: ``123/more``."""
    if value not in FEEDBACK_VOTES:
        raise ValueError(f"feedback value must be 1 or -1, not {value!r}")
    return f"{int(paper_id)}/{FEEDBACK_VOTES[value]}"


def feedback_vote_read(vote: str) -> int:
    """1 or -1 for the "more" or "less" of a feedback URL; TokenInvalid for anything else."""
    try:
        return _VOTE_VALUES[vote]
    except KeyError:
        raise TokenInvalid from None


def feedback_reader_token(subscriber: Subscriber) -> str:
    signer = signing.TimestampSigner(key=settings.SECRET_KEY, salt=SALT_FEEDBACK_READER)
    return signer.sign(uuid.UUID(str(subscriber.key)).hex)


def feedback_reader_token_read(token: str) -> str:
    """Return the subscriber key of a reader token; raise TokenInvalid or TokenExpired."""
    signer = signing.TimestampSigner(salt=SALT_FEEDBACK_READER)
    try:
        raw = signer.unsign(token, max_age=timedelta(days=FEEDBACK_LINK_MAX_AGE_DAYS))
    except signing.SignatureExpired:
        raise TokenExpired([]) from None
    except signing.BadSignature:
        raise TokenInvalid from None
    if len(raw) != 32:
        raise TokenInvalid
    try:
        return str(uuid.UUID(hex=raw))
    except ValueError:
        raise TokenInvalid from None


def _feedback_base(token: str) -> str:
    before, after = _url_around_token("subscriptions:feedback", settings.SITE_URL, get_urlconf())
    return before + token + after  # ".../f/<token>/": the paper and vote follow


def feedback_base_url(subscriber: Subscriber) -> str:
    """A reader's feedback links without their last part (``feedback_path``)."""
    return _feedback_base(feedback_reader_token(subscriber))


def feedback_url(subscriber: Subscriber, paper_id: int, value: int) -> str:
    """The page behind a digest's "More like this" (value 1) / "Less like this" (-1) link."""
    return feedback_base_url(subscriber) + feedback_path(paper_id, value)


def feedback_token(subscriber: Subscriber, paper_id: int, value: int) -> str:
    """The per-link token digests carried before reader tokens (still read; see above)."""
    signer = signing.TimestampSigner(key=settings.SECRET_KEY, salt=SALT_FEEDBACK)
    return signer.sign(_feedback_value(subscriber.key, paper_id, value))


def feedback_token_read(token: str) -> tuple[str, int, int]:
    """Return (subscriber key, paper id, value) of a per-link token; raise TokenInvalid or
    TokenExpired."""
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
    """Builds readers' feedback base URLs by the thousand, for one digest run.

    feedback_base_url makes a Signer and derives the HMAC key on every call. Here both happen
    once, and every token of the run shares one timestamp, so a recipient costs one HMAC. The
    tokens are exactly TimestampSigner's (a test holds them equal), so
    feedback_reader_token_read verifies both alike.
    """

    def __init__(self) -> None:
        signer = signing.TimestampSigner(key=settings.SECRET_KEY, salt=SALT_FEEDBACK_READER)
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

    def token(self, subscriber_key: str | uuid.UUID) -> str:
        key = subscriber_key if isinstance(subscriber_key, uuid.UUID) else uuid.UUID(subscriber_key)
        signed = f"{key.hex}:{self._timestamp}"
        digest = hmac.digest(self._hmac_key, signed.encode(), "sha256")
        return f"{signed}:{signing.b64_encode(digest).decode()}"

    def base(self, subscriber_key: str | uuid.UUID) -> str:
        """The reader's feedback base URL (``feedback_base_url``)."""
        return self._before + self.token(subscriber_key) + self._after
