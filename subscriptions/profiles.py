"""A subscriber's profile and feedback: every write to them goes through here.

The profile holds what a reader told us (what they work on, whom they follow, what to mute,
how much "what's hot" they want) and a copy of their 👍/👎 that the daily ranking reads in one
query. The ranking (newsletter) compares names and keywords with the normalizers below, so a
follow typed here and an author name on a paper meet in one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from digests.models import Paper, Topic
from subscriptions.models import Feedback, Profile, Subscriber

Value = Feedback.Value


def normalize_name(name: str) -> str:
    """An author or organization name as compared: case, spacing and dots ignored."""
    return " ".join(re.sub(r"[.\s]+", " ", name).split()).casefold()


def normalize_keyword(keyword: str) -> str:
    return " ".join(keyword.split()).casefold()


def _embed(text: str) -> tuple[bytes, str]:
    # Imported here: loading the model is the costly part, and only a changed "what I work
    # on" needs it, not every request that touches a profile.
    from digests import embedding

    [vector] = embedding.embed_texts([text])
    return embedding.vector_to_bytes(vector), embedding.MODEL_NAME


def _clean_list(
    items: Iterable[str], *, normalize, most: int, longest: int, what: str
) -> list[str]:
    """Trimmed, without blanks or repeats (as normalized), in the order typed; checked."""
    kept: list[str] = []
    seen: set[str] = set()
    for item in items:
        item = " ".join(str(item).split())
        key = normalize(item)
        if not key or key in seen:
            continue
        if len(item) > longest:
            raise ValidationError(
                f"Each {what} can be at most {longest} characters (“{item[:30]}…” is longer).",
                code="too_long",
            )
        seen.add(key)
        kept.append(item)
    if len(kept) > most:
        raise ValidationError(f"At most {most} {what}s, please.", code="too_many")
    return kept


def follows_clean(items: Iterable[str]) -> list[str]:
    return _clean_list(
        items,
        normalize=normalize_name,
        most=Profile.FOLLOWS_MAX,
        longest=Profile.FOLLOW_LENGTH_MAX,
        what="name",
    )


def muted_clean(items: Iterable[str]) -> list[str]:
    return _clean_list(
        items,
        normalize=normalize_keyword,
        most=Profile.MUTED_MAX,
        longest=Profile.MUTED_LENGTH_MAX,
        what="keyword",
    )


def interests_clean(text: str) -> str:
    # Line breaks are kept (people list projects one a line); runs of spaces are not.
    text = "\n".join(" ".join(line.split()) for line in text.strip().splitlines()).strip()
    if len(text) > Profile.INTERESTS_MAX:
        raise ValidationError(
            f"“What I work on” can be at most {Profile.INTERESTS_MAX} characters "
            f"(this is {len(text)}).",
            code="too_long",
        )
    return text


def _locked_profile(subscriber: Subscriber) -> Profile:
    # A profile is made with every subscriber; get_or_create covers rows made some other way.
    profile, _ = Profile.objects.select_for_update().get_or_create(subscriber_id=subscriber.pk)
    return profile


def _profile_fill(
    profile: Profile, *, interests: str, follows: Sequence[str], muted: Sequence[str], focus: int
) -> list[str]:
    """Set the explicit settings on profile (vector included); return the changed fields."""
    interests = interests_clean(interests)
    follows = follows_clean(follows)
    muted = muted_clean(muted)
    if not 0 <= focus <= 100:
        raise ValidationError("Focus goes from 0 to 100.", code="focus")
    changed = [
        name
        for name, value in (
            ("interests", interests),
            ("follows", follows),
            ("muted", muted),
            ("focus", focus),
        )
        if getattr(profile, name) != value
    ]
    profile.interests, profile.follows, profile.muted, profile.focus = (
        interests,
        follows,
        muted,
        focus,
    )
    if "interests" in changed or (interests and profile.interest_vector is None):
        if interests:
            profile.interest_vector, profile.vector_model = _embed(interests)
        else:
            profile.interest_vector, profile.vector_model = None, ""
        changed += ["interest_vector", "vector_model"]
    return changed


@transaction.atomic
def profile_update(
    *,
    subscriber: Subscriber,
    interests: str,
    follows: Sequence[str],
    muted: Sequence[str],
    focus: int,
) -> Profile:
    """Save what a reader set in the preference center (the embedding of "what I work on" too).

    Raises ValidationError for values a form should have refused (too long, too many).
    """
    profile = _locked_profile(subscriber)
    changed = _profile_fill(profile, interests=interests, follows=follows, muted=muted, focus=focus)
    if changed:
        profile.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
    return profile


@transaction.atomic
def subscriber_preferences_update(
    *,
    subscriber: Subscriber,
    topics: Iterable[Topic],
    interests: str,
    follows: Sequence[str],
    muted: Sequence[str],
    focus: int,
) -> Profile:
    """The preference center's one form: topics and profile, saved together or not at all.

    A reader needs at least one topic or a "what I work on" line, as at signup.
    """
    from subscriptions.services import subscriber_update_topics

    chosen = [t for t in topics if t.is_active]
    if not chosen and not interests_clean(interests):
        raise ValidationError(
            "Choose at least one topic or tell us what you work on.", code="no_interest"
        )
    subscriber_update_topics(subscriber=subscriber, topics=chosen, allow_none=True)
    return profile_update(
        subscriber=subscriber, interests=interests, follows=follows, muted=muted, focus=focus
    )


@transaction.atomic
def profile_create(
    *,
    subscriber: Subscriber,
    interests: str = "",
    follows: Sequence[str] = (),
    muted: Sequence[str] = (),
) -> Profile:
    """Give a new (or re-signing) subscriber their profile; signup and import call this."""
    profile = _locked_profile(subscriber)
    changed = _profile_fill(
        profile, interests=interests, follows=follows, muted=muted, focus=profile.focus
    )
    if changed:
        profile.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
    return profile


def _feedback_copy_refresh(profile: Profile) -> None:
    """Rewrite liked_ids/disliked_ids from the Feedback rows: the one way they change."""
    kept = Profile.FEEDBACK_KEPT
    rows = Feedback.objects.filter(subscriber_id=profile.subscriber_id).order_by(
        "-updated_at", "-id"
    )
    ids = rows.values_list("paper_id", flat=True)
    profile.liked_ids = list(ids.filter(value=Value.MORE)[:kept])
    profile.disliked_ids = list(ids.filter(value=Value.LESS)[:kept])
    profile.save(update_fields=["liked_ids", "disliked_ids", "updated_at"])


@transaction.atomic
def feedback_record(*, subscriber: Subscriber, paper: Paper, value: int) -> Feedback:
    """Record 👍 (+1) or 👎 (-1). The same again changes nothing; the other one replaces it."""
    if value not in Value.values:
        raise ValueError(f"feedback value must be +1 or -1, not {value!r}")
    # The profile's lock orders concurrent clicks of one reader (two tabs, a double tap).
    profile = _locked_profile(subscriber)
    now = timezone.now()
    feedback, created = Feedback.objects.get_or_create(
        subscriber_id=subscriber.pk,
        paper_id=paper.pk,
        defaults={"value": value, "created_at": now, "updated_at": now},
    )
    if not created and feedback.value != value:
        feedback.value = value
        feedback.updated_at = now
        feedback.save(update_fields=["value", "updated_at"])
    elif not created:
        return feedback  # a second click, a reload: already counted
    _feedback_copy_refresh(profile)
    return feedback


@transaction.atomic
def feedback_undo(*, subscriber: Subscriber, paper: Paper | int) -> bool:
    """Forget this reader's 👍/👎 on the paper; True if there was one."""
    paper_id = paper if isinstance(paper, int) else paper.pk
    profile = _locked_profile(subscriber)
    deleted, _ = Feedback.objects.filter(subscriber_id=subscriber.pk, paper_id=paper_id).delete()
    if deleted:
        _feedback_copy_refresh(profile)
    return bool(deleted)


@transaction.atomic
def personalization_reset(*, subscriber: Subscriber) -> int:
    """Forget every 👍/👎; returns how many. Topics, interests, follows and mutes stay: those
    the reader set on purpose and can see and change in the preference center."""
    profile = _locked_profile(subscriber)
    deleted, _ = Feedback.objects.filter(subscriber_id=subscriber.pk).delete()
    _feedback_copy_refresh(profile)
    return deleted
