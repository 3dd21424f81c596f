from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

import orjson
from django.db.models import Exists, FilteredRelation, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from subscriptions import schedule
from subscriptions.models import Feedback, Profile, Subscriber, Suppression
from subscriptions.profiles import normalize_keyword, normalize_name

CHUNK = 10_000
# Profiles read at a time while an issue is planned: each carries its meaning vector (1 KB),
# so 10,000 rows held about 15 MB in the planner, twice (psycopg's rows and libpq's result).
PROFILES_FETCHED = 2_000


def subscribers_mailable() -> QuerySet[Subscriber]:
    """Subscribers that may be mailed at all: active, confirmed, not suppressed. Whether a
    pause they set covers a given slot is a matter of that slot's local date.

    NOT EXISTS rather than NOT IN: PostgreSQL runs NOT IN (subquery) as a subplan that hashes
    the whole suppression list for every query or, once that list outgrows work_mem, reads it
    again for every reader (16.3 s for a due tick's chunk of 2,000 readers against 200,000
    suppressions, bench/results/tick-queries.md). NOT EXISTS is an anti-join probing the list's
    unique index: about 140 ms.
    """
    return Subscriber.objects.filter(mailable_condition(), status=Subscriber.Status.ACTIVE)


def mailable_condition() -> Q:
    """What makes an active subscriber mailable (confirmed, not suppressed), as a condition a
    query can filter on or read as a flag (the due tick reads it with each due reader)."""
    suppressed = Suppression.objects.filter(email_hash=OuterRef("email_hash"))
    return Q(~Exists(suppressed), confirmed_at__isnull=False)


def subscribers_sendable() -> QuerySet[Subscriber]:
    """Subscribers an editor's send reaches now: mailable and not within a pause they set
    ("pause until" a date: nothing before that date), compared with today's UTC date. The due
    tick compares a pause with the local date of each reader's slot instead."""
    today = timezone.now().date()
    return subscribers_mailable().filter(Q(paused_until__isnull=True) | Q(paused_until__lte=today))


def subscribers_due(*, now, limit: int = CHUNK) -> QuerySet[Subscriber]:
    """Active readers whose next slot has come, earliest first, at most `limit`.

    Reads subscriber_due_idx (partial, active readers only): the cost follows the readers
    who are due, not the ones who are not yet, nor the unsubscribed. Consent and suppression
    are checked by the caller on these few rows (subscribers_sendable), not in the scan.
    """
    return Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, next_due_at__lte=now
    ).order_by("next_due_at")[:limit]


class RankingProfile(NamedTuple):
    """One sendable subscriber as the daily ranking reads them."""

    subscriber_id: int
    topics: frozenset[int]  # followed active topics
    interest_vector: bytes | None  # float32, from today's model (None: none, or a stale model)
    liked_ids: tuple[int, ...]  # most recent first
    disliked_ids: tuple[int, ...]
    muted: tuple[str, ...]  # normalize_keyword'ed
    follows: tuple[str, ...]  # normalize_name'd
    focus: int  # 0 = just my field .. 100 = what's hot
    papers_per_email: int = 10  # the reader's choice (subscriptions.schedule.PAPERS_CHOICES)
    top_when_empty: bool = False  # on a day with nothing for them, the day's top papers


_LIST_FIELDS = ("liked_ids", "disliked_ids", "muted", "follows")  # Profile's JSON lists


def _topics_by_subscriber(subscribers) -> Iterator[tuple[int, frozenset[int]]]:
    rows = (
        subscribers.annotate(
            active_topic=FilteredRelation("topics", condition=Q(topics__is_active=True))
        )
        .order_by("id")
        .values_list("id", "active_topic__id")
    )
    # Equal topic sets are one shared object: a million subscribers share thousands of sets.
    shared: dict[frozenset[int], frozenset[int]] = {}
    for subscriber_id, group in groupby(rows.iterator(chunk_size=CHUNK), key=itemgetter(0)):
        topics = frozenset(t for _, t in group if t is not None)
        yield subscriber_id, shared.setdefault(topics, topics)


def profiles_for_ranking(
    *,
    vector_model: str | None = None,
    subscriber_id: int | None = None,
    subscriber_ids: list[int] | None = None,
    weekly: bool | None = None,
) -> Iterator[RankingProfile]:
    """Every sendable subscriber with their profile, in id order, streamed.

    Two streamed queries merged on the subscriber id: topics (a LEFT JOIN, one row per topic)
    and profiles (a LEFT JOIN, one row per subscriber). One query joining both would repeat
    the interest vector and the lists once per followed topic. A subscriber who became
    sendable between the two queries gets no topics this once; one who stopped being
    sendable is skipped. vector_model: the model of today's paper vectors (default: the
    embedding module's); a vector from another model is not comparable, so it is left out.
    subscriber_id: only that subscriber (a preview), whether or not they may be mailed now.
    subscriber_ids: only those of these who may be mailed (the readers a due tick serves; the
    tick has judged their pause against their slot's local date).
    weekly: with neither of those, only the readers who chose a weekly email (True) or only
    the others (False): an editor's send of a weekly or of a daily batch.
    """
    if vector_model is None:
        from digests.embedding import MODEL_NAME as vector_model
    if subscriber_id is not None:
        subscribers = Subscriber.objects.filter(pk=subscriber_id)
    elif subscriber_ids is not None:
        subscribers = subscribers_mailable().filter(pk__any_of=subscriber_ids)
    else:
        subscribers = subscribers_sendable()
        if weekly is not None:
            chose_weekly = Q(frequency=schedule.WEEKLY)
            subscribers = subscribers.filter(chose_weekly if weekly else ~chose_weekly)
    # The four lists come as their JSON text, parsed by orjson: Django's JSONField parses each
    # with json.loads, four per subscriber, a tenth of planning an issue's time at 100k.
    as_text = {name: Cast(f"profile__{name}", TextField()) for name in _LIST_FIELDS}
    profiles = (
        subscribers.order_by("id")
        .annotate(**{f"{name}_text": cast for name, cast in as_text.items()})
        .values_list(
            "id",
            "profile__interest_vector",
            "profile__vector_model",
            *(f"{name}_text" for name in _LIST_FIELDS),
            "profile__focus",
            "papers_per_email",
            "top_when_empty",
        )
    )
    topics = _topics_by_subscriber(subscribers)
    no_topics: frozenset[int] = frozenset()
    next_topics = next(topics, None)
    rows = profiles.iterator(chunk_size=PROFILES_FETCHED)
    for sid, vector, model, *lists, focus, papers, top in rows:
        liked, disliked, muted, follows = (orjson.loads(t) if t else None for t in lists)
        while next_topics is not None and next_topics[0] < sid:
            next_topics = next(topics, None)
        followed = no_topics
        if next_topics is not None and next_topics[0] == sid:
            followed = next_topics[1]
        yield RankingProfile(
            subscriber_id=sid,
            topics=followed,
            interest_vector=bytes(vector) if vector is not None and model == vector_model else None,
            liked_ids=tuple(liked or ()),
            disliked_ids=tuple(disliked or ()),
            muted=tuple(normalize_keyword(k) for k in muted) if muted else (),
            follows=tuple(normalize_name(n) for n in follows) if follows else (),
            focus=Profile.FOCUS_DEFAULT if focus is None else focus,
            papers_per_email=papers,
            top_when_empty=top,
        )


def feedback_for_subscriber(subscriber: Subscriber, *, limit: int = 50) -> dict[str, list]:
    """What a reader liked and disliked, newest first, with the papers' titles."""
    rows = (
        Feedback.objects.filter(subscriber=subscriber)
        .select_related("paper")
        .only("value", "updated_at", "paper__title", "paper__hf_url", "paper__arxiv_id")
    )
    return {
        "liked": list(rows.filter(value=Feedback.Value.MORE)[:limit]),
        "disliked": list(rows.filter(value=Feedback.Value.LESS)[:limit]),
    }
