"""Papers as vectors: the one place that knows which sentence-embedding model we use.

The model is WordLlama's ``l2_supercat`` at 256 dimensions, from the ``wordllama`` package:
a static embedding (one learned vector per token of the Llama 2 vocabulary, averaged over a
text), not a transformer. We took it because its weights (16 MB) ship inside the wheel, so
nothing is downloaded at run time; it needs numpy and the ``tokenizers`` library, not torch or
onnxruntime; and a day of 50 papers embeds in well under a second on two cores. The best
transformer that ships its weights (all-MiniLM-L6-v2, int8 ONNX) finds related papers better
but took 16-33 s for a day here, over the 10 s budget, and adds onnxruntime (78 MB).
``bench/embedding_candidates.py`` measures the candidates; its table is in
``bench/results/embedding_candidates.md``.

Everything else imports only what is here: ``paper_text`` (what we embed for a paper),
``embed_texts`` (texts -> unit vectors), ``DIMS`` and ``MODEL_NAME`` (stored beside every
vector, so a model change is detectable and old vectors are never compared with new ones),
and the bytes helpers for storing vectors in a ``bytea`` column.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

DIMS = 256
_CONFIG = "l2_supercat"


def _model_name() -> str:
    try:
        version = metadata.version("wordllama")
    except metadata.PackageNotFoundError:
        version = "missing"
    return f"wordllama-{version}/{_CONFIG}-{DIMS}"


# The package version is part of the name: a new wordllama release may ship new weights, and
# vectors from two different weight files must not be mixed. Fits in 80 characters.
MODEL_NAME = _model_name()

# A static model averages its token vectors, so every token weighs the same: the title, the
# keywords and the opening of an abstract (the problem and the method) carry the topic, while
# the tail (results tables in prose, "code is available at ...") blurs it. On the labelled
# fixture papers, cutting the text at 1,000 characters (about 200-250 tokens, roughly what a
# 256-token transformer would see) gave better subtopic retrieval than the whole abstract.
# The cost of a static model is linear in the text, so the cap is about quality, not time.
TEXT_MAX = 1000

_BYTES_DTYPE = np.dtype("<f4")  # float32, little-endian on every platform
VECTOR_BYTES = DIMS * _BYTES_DTYPE.itemsize

_model = None
_model_lock = threading.Lock()


def paper_text(title: str, abstract: str = "", keywords: Iterable[str] = ()) -> str:
    """The text we embed for a paper: title, then the upstream keywords, then the abstract,
    whitespace-normalized and cut at a word boundary within ``TEXT_MAX`` characters.

    The order puts what matters most where the cut cannot reach it."""
    parts = [" ".join(title.split())]
    words = ", ".join(" ".join(k.split()) for k in keywords if k and k.strip())
    if words:
        parts.append(f"Keywords: {words}.")
    if abstract and abstract.strip():
        parts.append(" ".join(abstract.split()))
    text = "\n".join(parts)
    if len(text) > TEXT_MAX:
        cut = text[: TEXT_MAX + 1]
        text = cut[: cut.rfind(" ")] if " " in cut[TEXT_MAX // 2 :] else cut[:TEXT_MAX]
    return text.strip()


def _load():
    """The model, loaded once per process (about 1-3 s, mostly imports); thread-safe.

    Lazy because web and worker processes that never embed should not pay for it, and
    safe under threads (gunicorn threads, Celery's thread pool) by double-checked locking.
    """
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                import wordllama

                # The wheel ships the weights in wordllama/weights/ and the tokenizer in
                # wordllama/tokenizers/; load() looks for the tokenizer under a name that does
                # not exist (wordllama/tokenizer/) and then in cache_dir/tokenizers/, so the
                # package's own directory is given as the cache. disable_download makes a
                # missing file an error here instead of a request to the Hugging Face Hub.
                _model = wordllama.WordLlama.load(
                    config=_CONFIG,
                    dim=DIMS,
                    cache_dir=Path(wordllama.__file__).parent,
                    disable_download=True,
                )
    return _model


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors for texts: float32, shape ``(len(texts), DIMS)``, one row per text.

    Rows are L2-normalized, so a dot product is the cosine similarity. A text with no tokens
    (empty or only whitespace) has no meaning to measure and gets a zero row, which scores 0
    against everything instead of a NaN. The same text always gives the same vector.
    """
    texts = list(texts)
    if not texts:
        return np.zeros((0, DIMS), dtype=np.float32)
    blank = np.array([not t.strip() for t in texts])
    vectors = np.zeros((len(texts), DIMS), dtype=np.float32)
    if not blank.all():
        model = _load()
        todo = [t for t, b in zip(texts, blank, strict=True) if not b]
        raw = np.asarray(model.embed(todo, norm=False), dtype=np.float32)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        vectors[~blank] = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
    return vectors


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """One vector as ``DIMS`` float32 little-endian values (1 KiB), for a ``bytea`` column."""
    array = np.asarray(vector, dtype=_BYTES_DTYPE)
    if array.shape != (DIMS,):
        raise ValueError(f"expected a vector of {DIMS} values, got shape {array.shape}")
    return array.tobytes()


def vectors_from_bytes(blobs: Iterable[bytes]) -> np.ndarray:
    """Stored vectors back as one float32 matrix ``(n, DIMS)``, ready for a matrix product.

    A blob of the wrong length (a vector of another model, a truncated value) raises rather
    than being reshaped into someone else's numbers.
    """
    blobs = [bytes(b) for b in blobs]
    for blob in blobs:
        if len(blob) != VECTOR_BYTES:
            raise ValueError(f"a stored vector has {len(blob)} bytes, expected {VECTOR_BYTES}")
    if not blobs:
        return np.zeros((0, DIMS), dtype=np.float32)
    return (
        np.frombuffer(b"".join(blobs), dtype=_BYTES_DTYPE)
        .reshape(len(blobs), DIMS)
        .astype(np.float32)
    )
