"""Which topics a paper is about: its meaning and the topics' phrases, weighed by a small model.

Phrase matching alone tags by words: a music dataset whose abstract says "pre-training" became
a language-model paper, and a survey got ten topics. Here each (paper, topic) pair gets a
probability that an editor would give the paper that topic, from a logistic model over:

- how close the paper's meaning is to the topic's description, and to its closest phrase or
  example (each embedded on its own: "legged locomotion" is an example of Robotics);
- the same two, relative to the paper's best topic (a topic is kept only if it is among the
  paper's main subjects, not merely near it);
- whether a phrase occurs as whole words in the title, or only in the abstract or upstream
  keywords (drawn from the abstract, a dozen a paper), and how many distinct phrases of the
  topic the abstract names (a subject named several ways is central, not a passing mention).

A paper is tagged with the topics whose probability clears `THRESHOLD`, at most `MAX_TAGS`,
and always with its best topic when that one is at least `BEST_THRESHOLD`. The weights were
fitted on the tuning papers of bench/data/editor_labels.json by `bench/tagging_eval.py --fit`
and checked on the held-out upstream days (its table is in the README). Editors' corrections
in admin lock a paper's topics (Paper.topics_locked): tagging never touches them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from digests import embedding
from digests.models import Topic
from digests.phrases import TopicMatcher, topic_matchers

# Logistic weights over FEATURES, fitted by bench/tagging_eval.py --fit (see its output file).
FEATURES = (
    "description",
    "phrase_meaning",
    "description_vs_best",
    "phrase_meaning_vs_best",
    "phrase_in_title",
    "phrase_in_abstract_or_keywords",
    "abstract_phrases",
)
WEIGHTS = np.array([1.569, 0.737, 2.604, 1.532, 3.234, 1.503, 2.547], dtype=np.float32)
BIAS = -3.896
THRESHOLD = 0.35
BEST_THRESHOLD = 0.05
MAX_TAGS = 2
# How much an untagged topic still counts for ranking, per unit of probability: a paper near
# a followed topic may surface with other evidence (what the reader wrote, what they liked),
# but never on this alone.
SOFT_AFFINITY = 0.3
PHRASES_COUNTED = 3  # distinct phrases of a topic in the abstract, counted up to this


def _strings(value) -> list[str]:
    return (
        [v.strip() for v in value if isinstance(v, str) and v.strip()]
        if isinstance(value, list)
        else []
    )


def topic_text(topic: Topic) -> str:
    return f"{topic.name}. {topic.description}".strip()


@dataclass(frozen=True)
class Scored:
    """The topic model's view of some papers: probabilities, tags and why."""

    probability: np.ndarray  # (P, T) float32
    features: np.ndarray  # (P, T, len(FEATURES))
    tags: list[list[int]]  # per paper: topic columns, most probable first

    def reason(self, paper: int, column: int) -> str:
        f = dict(zip(FEATURES, self.features[paper, column], strict=True))
        words = (
            "title phrase"
            if f["phrase_in_title"]
            else "abstract phrase"
            if f["phrase_in_abstract_or_keywords"]
            else "no phrase"
        )
        return (
            f"meaning {f['description']:.2f}/{f['phrase_meaning']:.2f}, {words}, "
            f"p={self.probability[paper, column]:.2f}"
        )

    @property
    def affinity(self) -> np.ndarray:
        """(P, T) in [0, 1] for ranking: 1 for a tag, SOFT_AFFINITY x probability otherwise."""
        return affinity(self.probability, self.tags)


def affinity(probability: np.ndarray, tags: Sequence[Sequence[int]]) -> np.ndarray:
    """(P, T) in [0, 1] for ranking: 1 for a tag (column), SOFT_AFFINITY x probability else."""
    result = (SOFT_AFFINITY * probability).astype(np.float32)
    for row, columns in enumerate(tags):
        result[row, list(columns)] = 1.0
    return result


class TopicModel:
    """The active topics, embedded once (description and each phrase), ready to score papers."""

    def __init__(self, topics: Sequence[Topic], matchers: list[TopicMatcher]) -> None:
        self.topics = list(topics)
        by_topic = {m.topic.pk: m for m in matchers}
        self.matchers = [by_topic.get(t.pk) for t in self.topics]
        descriptions = embedding.embed_texts([topic_text(t) for t in self.topics])
        self.descriptions = descriptions  # (T, d)
        phrases: list[str] = []
        owner: list[int] = []
        for column, topic in enumerate(self.topics):
            # The editor's examples count as phrases of meaning ("legged locomotion" is an
            # example of Robotics), though only phrases are matched as words.
            for phrase in _strings(topic.phrases) + _strings(getattr(topic, "examples", [])):
                phrases.append(phrase)
                owner.append(column)
        self.phrase_vectors = (
            embedding.embed_texts(phrases)
            if phrases
            else np.zeros((0, descriptions.shape[1]), np.float32)
        )
        self.phrase_owner = np.array(owner, dtype=np.int64)

    @classmethod
    def build(cls, topics: Iterable[Topic] | None = None) -> TopicModel:
        if topics is None:
            topics = Topic.objects.filter(is_active=True)
        topics = list(topics)
        return cls(topics, topic_matchers(topics))

    def features(
        self, vectors: np.ndarray, texts: Sequence[tuple[str, str, Sequence[str]]]
    ) -> np.ndarray:
        """(P, T, len(FEATURES)) for papers given as meaning vectors and (title, abstract,
        keywords)."""
        papers, topics = len(vectors), len(self.topics)
        out = np.zeros((papers, topics, len(FEATURES)), dtype=np.float32)
        if not papers or not topics:
            return out
        description = vectors @ self.descriptions.T
        phrase_meaning = np.full((papers, topics), -1.0, dtype=np.float32)
        if len(self.phrase_vectors):
            sims = vectors @ self.phrase_vectors.T  # (P, phrases)
            for column in range(topics):
                mine = self.phrase_owner == column
                if mine.any():
                    phrase_meaning[:, column] = sims[:, mine].max(axis=1)
        phrase_meaning = np.where(phrase_meaning < -0.5, description, phrase_meaning)
        out[:, :, 0] = description
        out[:, :, 1] = phrase_meaning
        out[:, :, 2] = description - description.max(axis=1, keepdims=True)
        out[:, :, 3] = phrase_meaning - phrase_meaning.max(axis=1, keepdims=True)
        for row, (title, abstract, keywords) in enumerate(texts):
            # Upstream's keywords are drawn from the abstract (a dozen a paper): they are
            # evidence of the abstract's kind, not of the title's.
            body = f"{abstract} ; {' ; '.join(keywords)}"
            for column, matcher in enumerate(self.matchers):
                if matcher is None:
                    continue
                found = len(matcher.found_in(body))
                if matcher.combined.search(title):
                    out[row, column, 4] = 1.0
                elif found:
                    out[row, column, 5] = 1.0
                # A subject the abstract names in several ways is central, not a mention.
                out[row, column, 6] = min(found, PHRASES_COUNTED) / PHRASES_COUNTED
        return out

    def score(self, vectors: np.ndarray, texts: Sequence[tuple[str, str, Sequence[str]]]) -> Scored:
        features = self.features(vectors, texts)
        probability = probabilities(features)
        return Scored(probability=probability, features=features, tags=choose_tags(probability))


def probabilities(features: np.ndarray, weights=WEIGHTS, bias=BIAS) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-(features @ weights + bias)))).astype(np.float32)


def choose_tags(
    probability: np.ndarray,
    *,
    threshold: float = THRESHOLD,
    best_threshold: float = BEST_THRESHOLD,
    max_tags: int = MAX_TAGS,
) -> list[list[int]]:
    """Per paper, the topic columns it is tagged with, most probable first."""
    tags = []
    for row in probability:
        order = np.argsort(-row, kind="stable")[:max_tags]
        chosen = [int(c) for c in order if row[c] >= threshold]
        if not chosen and len(order) and row[order[0]] >= best_threshold:
            chosen = [int(order[0])]
        tags.append(chosen)
    return tags
