"""A planner reads the topics' kept vectors and the papers' own: it ranks a day without
loading the embedding model (about 80 MB resident in every worker that plans)."""

from __future__ import annotations

import numpy as np
import pytest

from digests import embedding, tagging
from digests.models import Paper
from newsletter.services import planning

pytestmark = pytest.mark.django_db


def test_the_planner_ranks_a_day_without_loading_the_model(day_batch, monkeypatch, request):
    # Papers carry their vectors from ingest; the topics' are kept by the first build.
    for paper in Paper.objects.all():
        text = embedding.paper_text(paper.title, paper.abstract, paper.ai_keywords or [])
        paper.embedding = embedding.vector_to_bytes(embedding.embed_texts([text])[0])
        paper.embedding_model = embedding.MODEL_NAME
        paper.save(update_fields=["embedding", "embedding_model"])
    tagging.TopicModel.build()
    monkeypatch.setattr(planning, "_topic_models", {})  # a fresh process: nothing in memory
    request.getfixturevalue("model_refused")

    day = planning.batch_day(day_batch.batch)

    assert day.size == Paper.objects.count()
    assert np.abs(day.vectors).sum() > 0  # ranked by meaning, from the stored vectors
