from __future__ import annotations

import datetime as dt

import pytest

from digests.models import Paper, PaperTopic, Topic
from digests.services import batch_ingest, papers_tag, topic_matchers, topics_match
from tests.digests.conftest import API_SAMPLE, PAGE_SAMPLE, corpus_papers
from tests.factories import PaperFactory, TopicFactory

pytestmark = pytest.mark.django_db

# A labelled handful from the fixtures, read by a person: topics each paper should get (one at
# least) and topics it must not get.
LABELLED = {
    "2605.05242": ({"retrieval-rag", "agents"}, {"robotics", "speech-audio"}),
    "2605.06548": ({"generative-media", "large-language-models"}, {"robotics", "code"}),
    "2605.06627": ({"speech-audio"}, {"robotics", "computer-vision"}),  # PianoCoRe (MIDI)
    "2605.05758": ({"science-health", "agents"}, {"generative-media"}),  # BioTool
    "2605.06652": ({"safety", "large-language-models"}, {"robotics"}),
    "2605.06663": ({"efficiency"}, {"speech-audio"}),  # EMO: mixture of experts
    "2605.06642": ({"agents", "reinforcement-learning"}, {"speech-audio"}),  # StraTA
    "2407.21781": ({"robotics"}, {"speech-audio", "retrieval-rag"}),  # Berkeley Humanoid
    "2407.21772": ({"safety"}, {"robotics"}),  # ShieldGemma: content moderation
    "2407.21705": ({"generative-media", "computer-vision"}, {"speech-audio"}),  # Tora
    "2407.21646": ({"speech-audio", "agents"}, {"robotics"}),  # simultaneous speech translation
}


def test_the_seed_has_15_to_20_usable_topics():
    topics = list(Topic.objects.filter(is_active=True))

    assert 15 <= len(topics) <= 20
    for topic in topics:
        assert topic.description
        assert topic.phrases, topic.slug
        for phrase in topic.phrases:
            # Catches two phrases glued by a missing comma in the migration.
            assert 0 < len(phrase) <= 30 and '"' not in phrase, (topic.slug, phrase)


def test_each_seeded_topic_matches_at_least_one_corpus_paper():
    matchers = topic_matchers()
    hits = {m.topic.slug: 0 for m in matchers}
    untagged = []
    for title, abstract in corpus_papers():
        found = topics_match(title=title, abstract=abstract, matchers=matchers)
        untagged += [] if found else [title]
        for topic in found:
            hits[topic.slug] += 1

    assert len(corpus_papers()) == 109
    assert [slug for slug, n in hits.items() if n == 0] == []
    assert untagged == []


def test_a_labelled_handful_get_the_expected_topics():
    batch_ingest(day=dt.date(2026, 5, 8), path=API_SAMPLE)
    batch_ingest(day=dt.date(2024, 8, 1), path=PAGE_SAMPLE)

    for arxiv_id, (expected, unexpected) in LABELLED.items():
        got = set(Paper.objects.get(arxiv_id=arxiv_id).topics.values_list("slug", flat=True))
        # The topic model gives an editor's 1-2 main topics, not every one a person listed
        # (its recall is in bench/results/tagging_eval.md): one of them at least, and never a
        # topic the paper is plainly not about.
        assert expected & got, (arxiv_id, got)
        assert not (unexpected & got), (arxiv_id, got)


def test_matching_is_whole_word_and_case_insensitive():
    topic = TopicFactory(name="Agents", slug="t-agents", phrases=["agent", "RAG", "multi-agent"])
    matchers = topic_matchers([topic])

    assert topics_match(title="Three AGENTS walk", matchers=matchers) == {
        topic: 'title matched "agent"'
    }
    assert topics_match(title="Multi agent games", matchers=matchers)
    assert topics_match(title="", abstract="we use rag here", matchers=matchers) == {
        topic: 'abstract matched "RAG"'
    }
    assert topics_match(title="Reagents and storage", abstract="fragrant", matchers=matchers) == {}
    assert topics_match(title="agentic", matchers=matchers) == {}
    assert topics_match(title="x", keywords=["tool agent"], matchers=matchers) == {
        topic: 'keywords matched "agent"'
    }


def test_inactive_topics_are_not_applied_and_stale_tags_go():
    topic = TopicFactory(name="Robots", slug="t-robots", phrases=["robot"])
    paper = PaperFactory(title="A robot that folds laundry", abstract="")
    papers_tag(papers=[paper])
    assert PaperTopic.objects.filter(paper=paper, topic=topic).exists()

    Topic.objects.filter(pk=topic.pk).update(is_active=False)
    papers_tag(papers=[paper])

    assert not PaperTopic.objects.filter(paper=paper, topic=topic).exists()


def test_manual_tags_survive_retagging():
    topic = TopicFactory(name="Poetry", slug="t-poetry", phrases=["sonnet"])
    paper = PaperFactory(title="Nothing about verse", abstract="")
    PaperTopic.objects.create(paper=paper, topic=topic, reason="editor", is_manual=True)

    papers_tag(papers=[paper])

    assert PaperTopic.objects.get(paper=paper, topic=topic).is_manual
