"""Vectors of short texts, read from the database where kept (``TextVector``), computed and
kept otherwise: the topic model's descriptions and phrases without the embedding model loaded
in every process that ranks (digests/models.py says why)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from digests import embedding
from digests.models import TextVector


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def texts_embedded(texts: Sequence[str]) -> np.ndarray:
    """What ``embedding.embed_texts(texts)`` gives (one unit vector per text, in order), with
    the model loaded only for texts whose vector no process has kept yet."""
    texts = list(texts)
    if not texts:
        return embedding.embed_texts([])
    digests = [_digest(t) for t in texts]
    kept = dict(
        TextVector.objects.filter(
            model=embedding.MODEL_NAME, text_sha256__in=set(digests)
        ).values_list("text_sha256", "vector")
    )
    missing = {d: t for d, t in zip(digests, texts, strict=True) if d not in kept}
    if missing:
        computed = embedding.embed_texts(list(missing.values()))
        made = {d: embedding.vector_to_bytes(v) for d, v in zip(missing, computed, strict=True)}
        # Another process may keep the same text meanwhile: the vectors are equal.
        TextVector.objects.bulk_create(
            [
                TextVector(model=embedding.MODEL_NAME, text_sha256=d, vector=blob)
                for d, blob in made.items()
            ],
            ignore_conflicts=True,
        )
        kept.update(made)
    return embedding.vectors_from_bytes([kept[d] for d in digests])
