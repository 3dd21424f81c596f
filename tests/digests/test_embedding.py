from __future__ import annotations

import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="numpy is not installed (a dependency of embedding)")
pytest.importorskip(
    "wordllama", reason="wordllama is not installed: the embedding model ships in it"
)

from digests import embedding  # noqa: E402
from tests.digests.conftest import api_items  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

PREFERENCES = (
    "Direct Preference Optimization without a reward model\n"
    "We align large language models with human preferences by optimizing a classification "
    "loss on preference pairs, replacing RLHF's reward model and PPO."
)
REWARDS = (
    "Scaling reward models for reinforcement learning from human feedback\n"
    "Reward models trained on human preference comparisons steer policy optimization of "
    "chat assistants; we study how their accuracy grows with data and size."
)
GRASPING = (
    "Dexterous robotic grasping from point clouds\n"
    "A robot hand learns to pick up unseen objects from depth-camera point clouds, trained "
    "in simulation and transferred to a real arm."
)


def test_it_puts_related_papers_closer_than_unrelated_ones():
    prefs, rewards, grasping = embedding.embed_texts([PREFERENCES, REWARDS, GRASPING])

    assert prefs @ rewards > prefs @ grasping + 0.1
    assert rewards @ prefs > rewards @ grasping + 0.1


def test_it_finds_a_real_papers_abstract_from_its_title():
    items = [i["paper"] for i in api_items()]
    titles = embedding.embed_texts([p["title"] for p in items])
    abstracts = embedding.embed_texts([p["summary"] for p in items])

    best = (titles @ abstracts.T).argmax(axis=1)

    # Most titles pick their own abstract out of the day's 37 (chance: 1 in 37).
    assert (best == np.arange(len(items))).mean() > 0.6


def test_it_returns_float32_unit_rows_of_dims_columns():
    vectors = embedding.embed_texts([PREFERENCES, "a", GRASPING * 20])

    assert vectors.dtype == np.float32
    assert vectors.shape == (3, embedding.DIMS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_it_gives_blank_text_a_zero_row_and_empty_input_an_empty_matrix():
    vectors = embedding.embed_texts(["", "  \n", PREFERENCES])

    assert not vectors[:2].any()
    assert np.linalg.norm(vectors[2]) == pytest.approx(1.0, rel=1e-5)
    assert embedding.embed_texts([]).shape == (0, embedding.DIMS)


def test_it_gives_the_same_vector_for_the_same_text_whatever_else_is_in_the_batch():
    alone = embedding.embed_texts([REWARDS])[0]
    again = embedding.embed_texts([REWARDS])[0]
    in_batch = embedding.embed_texts([GRASPING * 5, REWARDS, "x"])[1]

    assert np.array_equal(alone, again)
    np.testing.assert_allclose(in_batch, alone, atol=1e-6)


def test_it_round_trips_vectors_through_little_endian_float32_bytes():
    vectors = embedding.embed_texts([PREFERENCES, GRASPING])

    blobs = [embedding.vector_to_bytes(v) for v in vectors]

    assert [len(b) for b in blobs] == [embedding.DIMS * 4] * 2
    assert blobs[0] == struct.pack(f"<{embedding.DIMS}f", *vectors[0].tolist())
    back = embedding.vectors_from_bytes(blobs)
    assert back.dtype == np.float32
    assert np.array_equal(back, vectors)
    assert back.flags.writeable  # a copy, not a read-only view of the bytes
    assert embedding.vectors_from_bytes([]).shape == (0, embedding.DIMS)


def test_it_refuses_vectors_and_blobs_of_another_size():
    with pytest.raises(ValueError, match="256"):
        embedding.vector_to_bytes(np.zeros(384, dtype=np.float32))
    with pytest.raises(ValueError, match="1536 bytes"):
        embedding.vectors_from_bytes([bytes(1024), bytes(1536)])


def test_it_loads_the_model_once_for_all_threads(monkeypatch):
    monkeypatch.setattr(embedding, "_model", None)
    barrier = threading.Barrier(4)
    models = []

    def load():
        barrier.wait()
        models.append(embedding._load())

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(models) == 4
    assert all(m is models[0] for m in models)


def test_it_embeds_with_no_network_at_all():
    # A fresh process whose sockets all fail: loading and embedding must not need one.
    script = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('no network')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from digests import embedding\n"
        "print(embedding.embed_texts(['robot grasping']).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "HF_HUB_OFFLINE": "1"},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"(1, {embedding.DIMS})"


def test_it_names_the_model_with_its_package_version():
    from importlib.metadata import version

    expected = f"wordllama-{version('wordllama')}/l2_supercat-256"
    assert expected == embedding.MODEL_NAME
    assert len(embedding.MODEL_NAME) <= 80


def test_it_writes_title_keywords_then_abstract_and_cuts_at_a_word():
    text = embedding.paper_text(
        "  A   title\n", "word " * 400, [" diffusion ", "", "flow  matching"]
    )

    assert text.startswith("A title\nKeywords: diffusion, flow matching.\nword word")
    assert len(text) <= embedding.TEXT_MAX
    assert text.endswith("word")
    assert embedding.paper_text("Only a title") == "Only a title"
