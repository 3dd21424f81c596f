"""Planning an issue: who gets which papers, written as one Delivery row per subscriber.

The day's candidates and what each subscriber already got go into the ranking
(``newsletter.selection``); equal selections become one content, stored once.
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

from django.conf import settings
from django.db import connection
from django.db.models import FilteredRelation, Q
from django.utils import timezone

from digests.models import BatchEntry, DailyBatch, PaperTopic
from newsletter.models import Delivery, Issue, IssueContent
from newsletter.selection import Candidate, content_key, plan_selections
from subscriptions.selectors import subscribers_sendable

# Possibly sent counts as sent: a paper is never risked twice.
SENT_LIKE = [
    Delivery.Status.SENT,
    Delivery.Status.UNKNOWN,
    Delivery.Status.BOUNCED,
    Delivery.Status.COMPLAINED,
]


def batch_candidates(batch: DailyBatch) -> list[Candidate]:
    """The batch's visible papers with their topics, as the ranking takes them."""
    entries = list(
        BatchEntry.objects.filter(batch=batch, hidden=False).values_list(
            "paper_id", "paper__upvotes", "pinned", "rank"
        )
    )
    topics: dict[int, set[int]] = defaultdict(set)
    for paper_id, topic_id in PaperTopic.objects.filter(
        paper_id__in=[e[0] for e in entries]
    ).values_list("paper_id", "topic_id"):
        topics[paper_id].add(topic_id)
    return [
        Candidate(paper_id=p, topic_ids=frozenset(topics[p]), upvotes=u, pinned=pin, rank=r)
        for p, u, pin, r in entries
    ]


def _followed_topics() -> Iterator[tuple[int, frozenset[int]]]:
    """(subscriber id, followed active topic ids) for everyone who may be mailed now.

    One streamed query (a LEFT JOIN, so people following no active topic come with an empty
    set: skipped, or the day's top papers if DIGEST_NO_MATCH is "top"). Equal topic sets are
    one shared object: at a million subscribers there are only thousands of distinct sets.
    """
    rows = (
        subscribers_sendable()
        .annotate(active_topic=FilteredRelation("topics", condition=Q(topics__is_active=True)))
        .order_by("id")
        .values_list("id", "active_topic__id")
    )
    shared: dict[frozenset[int], frozenset[int]] = {}
    for subscriber_id, group in groupby(rows.iterator(chunk_size=10_000), key=itemgetter(0)):
        topics = frozenset(t for _, t in group if t is not None)
        yield subscriber_id, shared.setdefault(topics, topics)


def papers_already_sent(
    batch: DailyBatch, paper_ids: list[int], *, subscriber_id: int | None = None
) -> dict[int, frozenset[int]]:
    """Papers of this batch each subscriber (or only `subscriber_id`) got in an earlier digest.

    On a day that repeats yesterday's papers this covers nearly every subscriber, so it is kept
    small: each earlier content is read once, and subscribers left with the same papers share
    one frozenset.
    """
    earlier = list(
        Issue.objects.filter(batch__entries__paper_id__in=paper_ids)
        .exclude(batch=batch)
        .values_list("id", flat=True)
        .distinct()
    )
    if not earlier:
        return {}
    wanted = set(paper_ids)
    # A content key is a hash of the selection, so it means the same papers in every issue.
    repeated: dict[str, frozenset[int]] = {}  # content key -> this batch's papers in it
    contents = IssueContent.objects.filter(issue_id__in=earlier).values_list("key", "selection")
    for key, selection in contents.iterator(chunk_size=2000):
        papers = frozenset(pid for pid, _ in selection if pid in wanted)
        if papers:
            repeated[key] = papers
    if not repeated:
        return {}
    rows = Delivery.objects.filter(
        issue_id__in=earlier, status__in=SENT_LIKE, subscriber__isnull=False
    )
    if subscriber_id is not None:
        rows = rows.filter(subscriber_id=subscriber_id)
    shared: dict[frozenset[int], frozenset[int]] = {}
    sent: dict[int, frozenset[int]] = {}
    for subscriber, key in rows.values_list("subscriber_id", "content_key").iterator(
        chunk_size=10_000
    ):
        papers = repeated.get(key)
        if papers is None:
            continue
        if subscriber in sent:  # in more than one earlier issue
            papers = sent[subscriber] | papers
        sent[subscriber] = shared.setdefault(papers, papers)
    return sent


def selections_plan(
    candidates: list[Candidate],
    followed: Iterable[tuple[int, frozenset[int]]],
    excluded: dict[int, frozenset[int]],
) -> Iterable[tuple[int, list]]:
    """(subscriber id, selection) for each of `followed`, ranked with the digest's settings."""
    return plan_selections(
        candidates,
        followed,
        excluded,
        limit=settings.DIGEST_MAX_PAPERS,
        fallback_to_top=settings.DIGEST_NO_MATCH == "top",
    )


@dataclass
class Plan:
    """Who gets which papers, compact enough for a million subscribers: two arrays (subscriber
    id, index of their content or -1 when skipped) and each distinct content once."""

    subscriber_ids: array = field(default_factory=lambda: array("q"))
    content_indexes: array = field(default_factory=lambda: array("l"))
    selections: list[list] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def contents(self) -> set[str]:
        return set(self.keys)

    @property
    def skipped(self) -> int:
        return self.content_indexes.count(-1)

    @property
    def rows(self) -> Iterator[tuple[int, str, list, str]]:
        """(subscriber id, status, selection, content key) per subscriber."""
        for subscriber_id, index in zip(self.subscriber_ids, self.content_indexes, strict=True):
            if index < 0:
                yield subscriber_id, Delivery.Status.SKIPPED, [], ""
            else:
                yield (
                    subscriber_id,
                    Delivery.Status.PENDING,
                    self.selections[index],
                    self.keys[index],
                )


def issue_plan(*, batch: DailyBatch) -> Plan:
    """Who gets which papers: one row per sendable subscriber (skipped when nothing matches)."""
    candidates = batch_candidates(batch)
    plan = Plan()
    selections = selections_plan(
        candidates,
        _followed_topics(),
        papers_already_sent(batch, [c.paper_id for c in candidates]),
    )
    indexes: dict[int, int] = {}  # selections are shared objects: hash each once
    by_key: dict[str, int] = {}
    for subscriber_id, selection in selections:
        plan.subscriber_ids.append(subscriber_id)
        if not selection:
            plan.content_indexes.append(-1)
            continue
        index = indexes.get(id(selection))
        if index is None:
            key = content_key(selection)
            index = by_key.get(key)
            if index is None:
                index = by_key[key] = len(plan.keys)
                plan.selections.append(selection)
                plan.keys.append(key)
            indexes[id(selection)] = index
        plan.content_indexes.append(index)
    return plan


def deliveries_write(*, issue: Issue, plan: Plan) -> None:
    """The issue's contents, once each, and one Delivery row per subscriber pointing at one."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # COPY: one round trip for any number of rows (bulk_create would be many INSERTs).
        content_table, delivery_table = IssueContent._meta.db_table, Delivery._meta.db_table
        columns = (
            "issue_id, subscriber_id, status, content_key, attempts, claim, "
            "provider_message_id, last_error, created_at"
        )
        with connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy(f"COPY {content_table} (issue_id, key, selection) FROM STDIN") as copy:
                for key, selection in zip(plan.keys, plan.selections, strict=True):
                    copy.write_row((issue.pk, key, json.dumps(selection)))
            with raw.copy(f"COPY {delivery_table} ({columns}) FROM STDIN") as copy:
                pending, skipped = Delivery.Status.PENDING, Delivery.Status.SKIPPED
                for subscriber_id, index in zip(
                    plan.subscriber_ids, plan.content_indexes, strict=True
                ):
                    if index < 0:
                        copy.write_row((issue.pk, subscriber_id, skipped, "", 0, "", "", "", now))
                    else:
                        key = plan.keys[index]
                        copy.write_row((issue.pk, subscriber_id, pending, key, 0, "", "", "", now))
        return
    IssueContent.objects.bulk_create(
        (
            IssueContent(issue=issue, key=key, selection=selection)
            for key, selection in zip(plan.keys, plan.selections, strict=True)
        ),
        batch_size=2000,
    )
    Delivery.objects.bulk_create(
        (
            Delivery(issue=issue, subscriber_id=s, status=st, content_key=k, created_at=now)
            for s, st, _, k in plan.rows
        ),
        batch_size=2000,
    )
