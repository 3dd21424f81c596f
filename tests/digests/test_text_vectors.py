"""The topic model's vectors are kept in the database, so a process that ranks reads them and
never loads the embedding model (digests/text_vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from digests import embedding, tagging
from digests.models import TextVector
from tests.factories import TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def topics():
    return [
        TopicFactory(
            name="Kept robotics",
            slug="kept-robotics",
            description="Robots that sense and act in the physical world.",
            phrases=["robot", "humanoid"],
            examples=["legged locomotion"],
        ),
        TopicFactory(
            name="Kept speech",
            slug="kept-speech",
            description="Speech recognition, synthesis and audio understanding.",
            phrases=["speech"],
            examples=[],
        ),
    ]


def test_the_kept_vectors_are_the_models_own(topics):
    built = tagging.TopicModel.build(topics)
    direct = tagging.TopicModel(topics, tagging.topic_matchers(topics))

    np.testing.assert_array_equal(built.descriptions, direct.descriptions)
    np.testing.assert_array_equal(built.phrase_vectors, direct.phrase_vectors)
    # Two descriptions and four phrases or examples, each kept once for this model.
    assert TextVector.objects.filter(model=embedding.MODEL_NAME).count() == 6


def test_a_second_build_reads_them_without_loading_the_model(topics, request):
    first = tagging.TopicModel.build(topics)
    request.getfixturevalue("model_refused")

    second = tagging.TopicModel.build(topics)

    np.testing.assert_array_equal(second.descriptions, first.descriptions)
    np.testing.assert_array_equal(second.phrase_vectors, first.phrase_vectors)


def test_an_edited_description_gets_its_own_vector(topics):
    robotics = topics[0]
    before = tagging.TopicModel.build([robotics]).descriptions[0]
    robotics.description = "Speech recognition and audio understanding."

    after = tagging.TopicModel.build([robotics]).descriptions[0]

    assert float(before @ after) < 0.99  # not the old text's vector
    expected = embedding.embed_texts([tagging.topic_text(robotics)])[0]
    np.testing.assert_allclose(after, expected, atol=1e-6)
