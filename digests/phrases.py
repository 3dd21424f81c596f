"""Topic phrases as whole-word regexes: which topics a text names, and where.

Pure reads over Topic rows (no writes), shared by the topic model in digests.tagging, the
tagging evaluation and the phrase-only baseline it is compared with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from digests.models import Topic


def _phrase_regex(phrase: str) -> str:
    words = [re.escape(word) for word in re.split(r"[\s\-]+", phrase.strip()) if word]
    # "multi-agent" also matches "multi agent"; a plural "s"/"es" is allowed so "agent" finds
    # "agents" but not "agentic" (a phrase of its own).
    return r"[\s\-]+".join(words) + r"(?:e?s)?" if words else ""


def _whole_words(body: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


@dataclass
class TopicMatcher:
    """One topic's phrases as a single regex (one search per field instead of one per phrase,
    which made tagging the slowest part of an ingest), plus each phrase's own regex to name
    the one that matched."""

    topic: Topic
    phrases: list[tuple[str, re.Pattern[str]]]
    combined: re.Pattern[str]

    def found_in(self, value: str) -> set[str]:
        """The distinct phrases that occur in value as whole words."""
        return {
            next(p for p, regex in self.phrases if regex.fullmatch(match.group(0)))
            for match in self.combined.finditer(value)
        }

    def reason(self, fields: list[tuple[str, str]]) -> str:
        """Why the paper matches (the first field with a match), or ""."""
        for field_name, value in fields:
            match = self.combined.search(value)
            if match:
                phrase = next(p for p, regex in self.phrases if regex.fullmatch(match.group(0)))
                return f'{field_name} matched "{phrase}"'[:200]
        return ""


def topic_matchers(topics: Iterable[Topic] | None = None) -> list[TopicMatcher]:
    if topics is None:
        topics = Topic.objects.filter(is_active=True)
    matchers = []
    for topic in topics:
        phrases = topic.phrases if isinstance(topic.phrases, list) else []
        bodies = [
            (phrase, body)
            for phrase in phrases
            if isinstance(phrase, str) and (body := _phrase_regex(phrase))
        ]
        if bodies:
            matchers.append(
                TopicMatcher(
                    topic=topic,
                    phrases=[(p, re.compile(b, re.IGNORECASE)) for p, b in bodies],
                    combined=_whole_words("|".join(b for _, b in bodies)),
                )
            )
    return matchers


def topics_match(
    *, title: str, abstract: str = "", keywords: Iterable[str] = (), matchers=None
) -> dict[Topic, str]:
    """The topics a text matches, each with the reason. Pure: usable on unsaved text."""
    fields = [("title", title), ("keywords", " ; ".join(keywords)), ("abstract", abstract)]
    found = {}
    for matcher in matchers if matchers is not None else topic_matchers():
        reason = matcher.reason(fields)
        if reason:
            found[matcher.topic] = reason
    return found
