"""Which topics a paper is about: its meaning and the topics' phrases, weighed by a small model.

Phrase matching alone tags by words: a music dataset whose abstract says "pre-training" became
a language-model paper, and a survey got ten topics. Here each (paper, topic) pair gets a
probability that an editor would give the paper that topic, from a logistic model over:

- how close the paper's meaning is to the topic's description, and to its closest phrase or
  example (each embedded on its own: "legged locomotion" is an example of Robotics), each
  relative to the paper's best topic: a topic is kept only if it is among the paper's main
  subjects, not merely near it. Only the relative closeness counts, not the raw one: how close
  a paper comes to any description depends on how it is written (its length, its upstream
  keywords, its field's vocabulary), and the upstream days came out less close to every
  description than the tuning papers (the best topic at 0.47-0.49 against 0.52), so a model
  weighing raw closeness gives every topic of such a paper a lower probability;
- whether a phrase occurs as whole words in the title, or only in the abstract or upstream
  keywords (drawn from the abstract, a dozen a paper), and how many distinct phrases of the
  topic the abstract names (a subject named several ways is central, not a passing mention).

A paper is tagged with its two most probable topics where they clear `THRESHOLD`, a third
only when it clears `THIRD_THRESHOLD` (an editor gives three when each is clearly central),
each only when it reaches `RELATIVE` times the best topic's probability (a second subject
must be nearly as clear as the first, not merely likely), and always with its best topic when
that one is at least `BEST_THRESHOLD`. The features and the rule were chosen by
cross-validation on the tuning papers of bench/data/editor_labels.json, in folds of
consecutive papers of a page ordered by field (`bench/tagging_eval.py --cv`, which also tried
a vote of the nearest editor-labelled papers, a separate title meaning, the best topic's lead,
a softmax share and an offset per topic: none did better there), the weights fitted on all
of them by `--fit`, and checked on the held-out upstream days (its table is in the README).
Editors' corrections in admin lock a paper's topics (Paper.topics_locked): tagging never
touches them again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from digests import embedding, text_vectors
from digests.models import Topic
from digests.phrases import TopicMatcher, topic_matchers

# Logistic weights over FEATURES, fitted on all the tuning papers by bench/tagging_eval.py --fit.
FEATURES = (
    "description_vs_best",
    "phrase_meaning_vs_best",
    "phrase_in_title",
    "phrase_in_abstract_or_keywords",
    "abstract_phrases",
)
WEIGHTS = np.array([3.276, 1.873, 3.346, 1.577, 2.634], dtype=np.float32)
BIAS = -3.007
# The rule, chosen by cross-validation on the tuning papers (bench/tagging_eval.py --fit).
THRESHOLD = 0.225
THIRD_THRESHOLD = 0.7
BEST_THRESHOLD = 0.05
# A topic is kept only if its probability is at least this share of the paper's best one.
RELATIVE = 0.5
MAX_TAGS = 3
# How much an untagged topic still counts for ranking, per unit of probability: a paper near
# a followed topic may surface with other evidence (what the reader wrote, what they liked),
# but never on this alone.
SOFT_AFFINITY = 0.3
PHRASES_COUNTED = 3  # distinct phrases of a topic in the abstract, counted up to this
# Papers' phrase features a topic model remembers (a week's batches are a few hundred papers;
# each entry holds a reference to its title and abstract, about 2 KB).
TEXTS_REMEMBERED = 2_000


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
    closeness: np.ndarray  # (P, T, 2): meaning vs description, vs closest phrase or example
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
        description, phrase = self.closeness[paper, column]
        return (
            f"meaning {description:.2f}/{phrase:.2f}, {words}, "
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

    def __init__(
        self,
        topics: Sequence[Topic],
        matchers: list[TopicMatcher],
        *,
        embed: Callable[[Sequence[str]], np.ndarray] = embedding.embed_texts,
    ) -> None:
        """``embed``: texts to unit vectors; ``build`` gives the one that reads kept vectors
        (digests/text_vectors.py), so ranking processes do not load the embedding model."""
        self.topics = list(topics)
        by_topic = {m.topic.pk: m for m in matchers}
        self.matchers = [by_topic.get(t.pk) for t in self.topics]
        descriptions = embed([topic_text(t) for t in self.topics])
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
            embed(phrases) if phrases else np.zeros((0, descriptions.shape[1]), np.float32)
        )
        self.phrase_owner = np.array(owner, dtype=np.int64)
        self._phrases_by_text: dict[tuple, np.ndarray] = {}

    @classmethod
    def build(cls, topics: Iterable[Topic] | None = None) -> TopicModel:
        if topics is None:
            topics = Topic.objects.filter(is_active=True)
        topics = list(topics)
        return cls(topics, topic_matchers(topics), embed=text_vectors.texts_embedded)

    def closeness(self, vectors: np.ndarray) -> np.ndarray:
        """(P, T, 2): each paper's meaning against each topic's description, and against the
        topic's closest phrase or example (its description when it has none)."""
        papers, topics = len(vectors), len(self.topics)
        out = np.zeros((papers, topics, 2), dtype=np.float32)
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
        out[:, :, 0] = description
        out[:, :, 1] = np.where(phrase_meaning < -0.5, description, phrase_meaning)
        return out

    def features(
        self,
        vectors: np.ndarray,
        texts: Sequence[tuple[str, str, Sequence[str]]],
        closeness: np.ndarray | None = None,
    ) -> np.ndarray:
        """(P, T, len(FEATURES)) for papers given as meaning vectors and (title, abstract,
        keywords)."""
        papers, topics = len(vectors), len(self.topics)
        out = np.zeros((papers, topics, len(FEATURES)), dtype=np.float32)
        if not papers or not topics:
            return out
        if closeness is None:
            closeness = self.closeness(vectors)
        out[:, :, 0:2] = closeness - closeness.max(axis=1, keepdims=True)
        for row, (title, abstract, keywords) in enumerate(texts):
            out[row, :, 2:5] = self._phrase_features(title, abstract, tuple(keywords))
        return out

    def _phrase_features(self, title: str, abstract: str, keywords: tuple[str, ...]) -> np.ndarray:
        """(T, 3): the phrase features of one paper's text, remembered by the text. Matching is
        most of what scoring a day costs, and the due tick scores the same day's papers every
        few minutes; the model itself is rebuilt when the topics' text changes
        (newsletter.services.planning), and its memory of texts with it."""
        key = (title, abstract, keywords)
        found = self._phrases_by_text.get(key)
        if found is not None:
            return found
        found = np.zeros((len(self.topics), 3), dtype=np.float32)
        # Upstream's keywords are drawn from the abstract (a dozen a paper): they are
        # evidence of the abstract's kind, not of the title's.
        body = f"{abstract} ; {' ; '.join(keywords)}"
        for column, matcher in enumerate(self.matchers):
            if matcher is None:
                continue
            named = len(matcher.found_in(body))
            if matcher.combined.search(title):
                found[column, 0] = 1.0
            elif named:
                found[column, 1] = 1.0
            # A subject the abstract names in several ways is central, not a mention.
            found[column, 2] = min(named, PHRASES_COUNTED) / PHRASES_COUNTED
        if len(self._phrases_by_text) >= TEXTS_REMEMBERED:
            self._phrases_by_text.clear()
        self._phrases_by_text[key] = found
        return found

    def score(self, vectors: np.ndarray, texts: Sequence[tuple[str, str, Sequence[str]]]) -> Scored:
        closeness = self.closeness(vectors)
        features = self.features(vectors, texts, closeness)
        probability = probabilities(features)
        return Scored(
            probability=probability,
            features=features,
            closeness=closeness,
            tags=choose_tags(probability),
        )


def probabilities(features: np.ndarray, weights=WEIGHTS, bias=BIAS) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-(features @ weights + bias)))).astype(np.float32)


def choose_tags(
    probability: np.ndarray,
    *,
    threshold: float = THRESHOLD,
    third_threshold: float = THIRD_THRESHOLD,
    best_threshold: float = BEST_THRESHOLD,
    relative: float = RELATIVE,
    max_tags: int = MAX_TAGS,
) -> list[list[int]]:
    """Per paper, the topic columns it is tagged with, most probable first: the first two
    that clear `threshold`, any further one (up to `max_tags`) only if it clears
    `third_threshold`, each only if it reaches `relative` times the best one's probability,
    and the best one alone when none clears but it reaches `best_threshold`."""
    tags = []
    for row in probability:
        order = np.argsort(-row, kind="stable")[:max_tags]
        floor = relative * row[order[0]] if len(order) else 0.0
        chosen = [
            int(c)
            for rank, c in enumerate(order)
            if row[c] >= (threshold if rank < 2 else max(threshold, third_threshold))
            and row[c] >= floor
        ]
        if not chosen and len(order) and row[order[0]] >= best_threshold:
            chosen = [int(order[0])]
        tags.append(chosen)
    return tags
