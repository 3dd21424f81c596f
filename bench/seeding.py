"""The benchmark's data: N confirmed subscribers with 3-5 Zipf-distributed topics each, and
today's approved batch of 50 papers (the bundled sample, topped up from the shared corpus)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import random
import uuid
from pathlib import Path

from bench import ROOT
from bench.reporting import log

SAMPLE = ROOT / "digests" / "sample" / "hf_daily_papers.json"
CORPUS = ROOT / "tests" / "fixtures" / "trending-papers-page.txt"  # provenance beside it
BATCH_PAPERS = 50
ZIPF_EXPONENT = 1.1


def corpus_papers(count: int) -> list[dict]:
    """Extra papers in the HF API's shape from the shared corpus (title line, abstract line)."""
    if count <= 0 or not CORPUS.is_file():
        return []
    blocks = [b.strip() for b in CORPUS.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    papers = []
    for title, abstract in itertools.pairwise(blocks):
        if len(papers) == count:
            break
        if 20 < len(title) < 250 and "\n" not in title and len(abstract) > 400:
            number = f"2699.{len(papers) + 1:05d}"
            papers.append(
                {
                    "paper": {
                        "id": number,
                        "title": title,
                        "summary": abstract,
                        "upvotes": max(1, 40 - len(papers)),
                        "authors": [{"name": "Corpus Author"}],
                        "publishedAt": "2026-01-01T00:00:00.000Z",
                    },
                    "title": title,
                    "summary": abstract,
                }
            )
    return papers


def papers_file(directory: Path) -> Path:
    items = json.loads(SAMPLE.read_text(encoding="utf-8"))[:BATCH_PAPERS]
    items += corpus_papers(BATCH_PAPERS - len(items))
    path = directory / "papers.json"
    path.write_text(json.dumps(items))
    return path


def batch_ensure(day: dt.date, directory: Path):
    """Today's approved batch of the benchmark papers; an earlier run's issue is removed."""
    from django.db import connection

    from digests.models import DailyBatch
    from digests.services import batch_approve, batch_ingest
    from newsletter.models import Delivery, Issue, IssueContent, TrackingEvent

    tables = ", ".join(m._meta.db_table for m in (TrackingEvent, Delivery, IssueContent, Issue))
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")
    batch = DailyBatch.objects.filter(date=day).first()
    if batch is None or batch.entries.count() < BATCH_PAPERS:
        batch_ingest(day=day, path=papers_file(directory))
        batch = DailyBatch.objects.get(date=day)
    DailyBatch.objects.filter(pk=batch.pk).update(status=DailyBatch.Status.DRAFT)
    batch.refresh_from_db()
    return batch_approve(batch=batch)


def topic_choices(rng: random.Random, topic_ids: list[int], k: int) -> list[int]:
    weights = [1 / (rank**ZIPF_EXPONENT) for rank in range(1, len(topic_ids) + 1)]
    chosen: set[int] = set()
    while len(chosen) < k:
        chosen.update(rng.choices(topic_ids, weights=weights, k=k - len(chosen)))
    return sorted(chosen)


def subscribers_seed(n: int, seed: int) -> None:
    """N active, confirmed subscribers with 3-5 topics each (Zipf-like); COPY, ids 1..N."""
    from django.db import connection

    from digests.models import Topic
    from subscriptions.models import Subscriber

    subscriber_table = Subscriber._meta.db_table
    through_table = Subscriber.topics.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), coalesce(max(id), 0) FROM {subscriber_table}")
        count, top = cursor.fetchone()
    if count == n and top == n:
        log(f"reusing {n:,} subscribers")
        return
    log(f"seeding {n:,} subscribers")
    topic_ids = list(Topic.objects.filter(is_active=True).order_by("id").values_list("id", flat=1))
    rng = random.Random(seed)
    rng.shuffle(topic_ids)  # popularity order: a random but fixed ranking of the topics
    now = dt.datetime.now(dt.UTC)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {subscriber_table} RESTART IDENTITY CASCADE")
        raw = cursor.cursor
        columns = "key, email, email_hash, status, created_at, confirmed_at"
        with raw.copy(f"COPY {subscriber_table} ({columns}) FROM STDIN") as copy:
            for i in range(1, n + 1):
                email = f"reader{i:07d}@bench.example.com"
                digest = hashlib.sha256(email.encode()).hexdigest()
                key = uuid.UUID(int=rng.getrandbits(128))
                copy.write_row((key, email, digest, "active", now, now))
        with raw.copy(f"COPY {through_table} (subscriber_id, topic_id) FROM STDIN") as copy:
            for i in range(1, n + 1):
                for topic_id in topic_choices(rng, topic_ids, rng.choice((3, 4, 5))):
                    copy.write_row((i, topic_id))
        cursor.execute(f"SELECT count(*), max(id) FROM {subscriber_table}")
        assert cursor.fetchone() == (n, n), "subscriber ids are not 1..N"
        cursor.execute(f"ANALYZE {subscriber_table}; ANALYZE {through_table}")


# --distinct: what makes every subscriber's ranking their own. Each "what I work on" vector is
# a random mix of a few of the day's papers plus noise, so it is close to some papers and far
# from others (a purely random vector in 256 dimensions is about as far from every paper, and
# the ranking would ignore it); with focus spread over 0-100, no two selections agree.
INTEREST_PAPERS = 3
INTEREST_NOISE = 0.5
PROFILE_CHUNK = 10_000


def profiles_seed(n: int, seed: int, *, distinct: bool) -> None:
    """With `distinct`, a profile per subscriber (interest vector, focus 0-100) by COPY; without,
    no profiles at all, as the shared-contents runs always had."""
    import numpy as np
    from django.db import connection

    from digests import embedding
    from digests.models import BatchEntry, DailyBatch
    from subscriptions.models import Profile

    table = Profile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT focus) FROM {table}")
        count, focuses = cursor.fetchone()
        if not distinct:
            if count:
                cursor.execute(f"TRUNCATE {table}")
            return
        if count == n and focuses > 1:
            log(f"reusing {n:,} distinct profiles")
            return
    log(f"seeding {n:,} distinct profiles")
    batch = DailyBatch.objects.get(date=dt.datetime.now(dt.UTC).date())
    blobs = BatchEntry.objects.filter(batch=batch, hidden=False).values_list(
        "paper__embedding", flat=True
    )
    papers = embedding.vectors_from_bytes([bytes(b) for b in blobs if b is not None])
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC)
    columns = (
        "subscriber_id, interests, interest_vector, vector_model, follows, muted, focus,"
        " liked_ids, disliked_ids, updated_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for start in range(1, n + 1, PROFILE_CHUNK):
                size = min(PROFILE_CHUNK, n + 1 - start)
                picks = rng.integers(0, len(papers), size=(size, INTEREST_PAPERS))
                weights = rng.random((size, INTEREST_PAPERS, 1), dtype=np.float32)
                vectors = (papers[picks] * weights).sum(axis=1)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors += rng.normal(0, INTEREST_NOISE / embedding.DIMS**0.5, vectors.shape)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                blobs = [embedding.vector_to_bytes(v) for v in vectors]
                focus = rng.integers(0, 101, size=size)
                for offset in range(size):
                    copy.write_row(
                        (
                            start + offset, "", blobs[offset], embedding.MODEL_NAME, "[]", "[]",
                            int(focus[offset]), "[]", "[]", now,
                        )
                    )  # fmt: skip
        cursor.execute(f"ANALYZE {table}")
