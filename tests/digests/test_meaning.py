"""Papers as meaning at ingest (vectors stored once, renewed when their text or the model
changes) and tags from the topic model, with editors' corrections that win."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command

from digests import embedding, services
from digests.models import Paper, PaperTopic, Topic
from digests.services import (
    batch_ingest,
    paper_topics_lock,
    papers_embed,
    papers_retag_recent,
    papers_tag,
    papers_topics_unlock,
)
from tests.digests.conftest import API_SAMPLE, api_items
from tests.factories import PaperFactory

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 5, 8)
PIANO_MIDI = "2605.06627"  # PianoCoRe: a piano MIDI dataset whose abstract says "pre-training"
SURVEY = "2605.04045"  # "Audio-Visual Intelligence in Large Foundation Models": a survey


@pytest.fixture
def embedded(monkeypatch) -> list[list[str]]:
    """Every list of texts given to the embedding model that holds a paper's text."""
    calls: list[list[str]] = []
    real = embedding.embed_texts

    def spy(texts):
        texts = list(texts)
        if any("\n" in t for t in texts):  # paper_text puts the title on its own line
            calls.append(texts)
        return real(texts)

    monkeypatch.setattr(services.embedding, "embed_texts", spy)
    return calls


def slugs(arxiv_id: str) -> set[str]:
    return set(Paper.objects.get(arxiv_id=arxiv_id).topics.values_list("slug", flat=True))


def test_it_stores_each_papers_vector_at_ingest_in_one_call(embedded):
    batch_ingest(day=DAY, path=API_SAMPLE)

    assert len(embedded) == 1 and len(embedded[0]) == len(api_items())
    paper = Paper.objects.get(arxiv_id=PIANO_MIDI)
    assert paper.embedding_model == embedding.MODEL_NAME
    [vector] = embedding.vectors_from_bytes([paper.embedding])
    expected = embedding.embed_texts(
        [embedding.paper_text(paper.title, paper.abstract, paper.ai_keywords)]
    )[0]
    assert abs(float(vector @ expected) - 1.0) < 1e-5
    assert not Paper.objects.filter(embedding__isnull=True).exists()


def test_it_reuses_vectors_of_unchanged_papers_and_renews_changed_ones(embedded):
    batch_ingest(day=DAY, path=API_SAMPLE)
    before = bytes(Paper.objects.get(arxiv_id=PIANO_MIDI).embedding)
    embedded.clear()

    batch_ingest(day=DAY, path=API_SAMPLE)
    assert embedded == []

    Paper.objects.filter(arxiv_id=PIANO_MIDI).update(abstract="Something else entirely.")
    batch_ingest(day=DAY, path=API_SAMPLE)  # upstream's abstract comes back: a change
    assert [len(texts) for texts in embedded] == [1]
    paper = Paper.objects.get(arxiv_id=PIANO_MIDI)
    assert bytes(paper.embedding) == before and paper.embedding_model == embedding.MODEL_NAME


def test_a_vector_of_another_model_is_made_again(embedded):
    paper = PaperFactory(title="Legged robots that walk", abstract="Gaits on rough ground.")
    papers_embed(papers=[paper])
    Paper.objects.filter(pk=paper.pk).update(embedding_model="some-older-model")
    embedded.clear()

    assert papers_embed(papers=Paper.objects.all()) == 1
    assert papers_embed(papers=Paper.objects.all()) == 0
    assert Paper.objects.get(pk=paper.pk).embedding_model == embedding.MODEL_NAME
    assert len(embedded) == 1


def test_its_command_embeds_papers_stored_before_and_all_on_request(embedded):
    stale = PaperFactory(title="A stale paper", abstract="Old.")
    current = PaperFactory(title="A current one", abstract="New.")
    papers_embed(papers=[current])
    embedded.clear()

    call_command("embed_papers", stdout=(out := io.StringIO()))
    assert "embedded 1 paper(s)" in out.getvalue()
    assert Paper.objects.get(pk=stale.pk).embedding_model == embedding.MODEL_NAME

    call_command("embed_papers", "--all", stdout=(out := io.StringIO()))
    assert "embedded 2 paper(s)" in out.getvalue()
    assert [len(texts) for texts in embedded] == [1, 2]


def test_a_music_dataset_paper_is_not_tagged_as_language_models():
    batch_ingest(day=DAY, path=API_SAMPLE)

    got = slugs(PIANO_MIDI)
    assert "speech-audio" in got
    assert not got & {"large-language-models", "alignment-rlhf", "retrieval-rag", "safety"}


def test_a_survey_gets_at_most_three_topics_and_no_paper_more():
    batch_ingest(day=DAY, path=API_SAMPLE)

    assert 1 <= len(slugs(SURVEY)) <= 3
    for paper in Paper.objects.all():
        assert 1 <= paper.topics.count() <= 3, paper.arxiv_id


def test_automatic_tags_record_the_models_reason():
    paper = PaperFactory(title="Legged locomotion for a humanoid robot", abstract="")

    papers_tag(papers=[paper])

    link = PaperTopic.objects.get(paper=paper, topic__slug="robotics")
    assert link.reason.startswith("meaning ") and ", title phrase, p=" in link.reason
    assert not link.is_manual


def test_an_editors_correction_survives_reingest_and_retag():
    batch_ingest(day=DAY, path=API_SAMPLE)
    paper = Paper.objects.get(arxiv_id=PIANO_MIDI)
    wrong = Topic.objects.get(slug="code")
    PaperTopic.objects.create(paper=paper, topic=wrong, reason="set by an editor", is_manual=True)
    PaperTopic.objects.filter(paper=paper, topic__slug="speech-audio").delete()
    paper_topics_lock(paper=paper)
    chosen = slugs(PIANO_MIDI)

    batch_ingest(day=DAY, path=API_SAMPLE)
    papers_retag_recent(days=30)
    papers_tag(papers=Paper.objects.filter(pk=paper.pk))

    # Exactly the editor's topics: the one added stays, the one removed does not come back.
    assert slugs(PIANO_MIDI) == chosen
    assert "code" in chosen and "speech-audio" not in chosen
    assert all(PaperTopic.objects.filter(paper=paper).values_list("is_manual", flat=True))


def test_unlocking_hands_topics_back_to_the_model():
    paper = PaperFactory(title="Legged locomotion for a humanoid robot", abstract="")
    PaperTopic.objects.create(
        paper=paper, topic=Topic.objects.get(slug="code"), reason="editor", is_manual=True
    )
    paper_topics_lock(paper=paper)

    papers_topics_unlock(papers=[paper])

    paper.refresh_from_db()
    assert not paper.topics_locked
    assert "robotics" in slugs(paper.arxiv_id) and "code" not in slugs(paper.arxiv_id)
