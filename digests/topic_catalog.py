"""The topics Paperboy ships with, kept as data in digests/data/topics.json.

Developers add or refine a topic by editing that file; topics_sync then creates the topics a
database lacks. It never changes a topic that exists: from its creation on, editors own it in
admin. Migration 0003 runs it on a fresh database, `manage.py sync_topics` on an existing one.

Each topic has a description and examples, which the topic model (digests.tagging) compares
with a paper's meaning, and phrases, matched as whole words, case-insensitively, in title,
upstream keywords and abstract (digests.phrases). Phrases too generic to tell a topic (their
precision on the tuning papers of bench/data/editor_labels.json) were dropped; the catalog as
it shipped before is topics-v1.json (topics_refresh and the tagging benchmark read it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.apps import apps as installed_apps
from django.apps.registry import Apps
from django.db.models import Q

CATALOG = Path(__file__).resolve().parent / "data" / "topics.json"
# The catalog as it shipped before descriptions were rewritten for meaning and examples were
# added (migration 0006): what topics_refresh may overwrite, and the phrase-only baseline of
# bench/tagging_eval.py.
PREVIOUS = CATALOG.with_name("topics-v1.json")


def topics_catalog() -> list[dict[str, Any]]:
    """The file's topics: name, slug, description, position and phrases, in form order."""
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def topics_sync(*, apps: Apps | None = None) -> list[str]:
    """Create each catalog topic that no topic matches by slug or name; returns their slugs.

    `apps` is a migration's app registry (its historical Topic model); by default the
    installed one. Only the catalog's fields are written, so it works at any migration state.
    """
    Topic = (apps or installed_apps).get_model("digests", "Topic")
    created = []
    for entry in topics_catalog():
        # Matching the name too: an editor who changed a slug keeps their topic, and the
        # unique name would refuse a second one anyway.
        if Topic.objects.filter(Q(slug=entry["slug"]) | Q(name=entry["name"])).exists():
            continue
        fields = {
            "slug": entry["slug"],
            "name": entry["name"],
            "description": entry["description"],
            "phrases": entry["phrases"],
            "position": entry["position"],
        }
        if _has_field(Topic, "examples"):  # from migration 0006 on
            fields["examples"] = entry.get("examples", [])
        Topic.objects.create(**fields)
        created.append(entry["slug"])
    return created


def _has_field(model, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def topics_refresh(*, apps: Apps | None = None, previous: Path = PREVIOUS) -> list[str]:
    """Bring the shipped topics up to the catalog where editors have not changed them.

    A description or phrase list still equal to what `previous` shipped becomes the catalog's;
    examples are filled in where a topic has none. Anything an editor wrote stays. Returns
    the slugs of the topics changed.
    """
    Topic = (apps or installed_apps).get_model("digests", "Topic")
    before = {entry["slug"]: entry for entry in json.loads(previous.read_text("utf-8"))}
    changed = []
    for entry in topics_catalog():
        topic = Topic.objects.filter(slug=entry["slug"]).first()
        if topic is None:
            continue
        old = before.get(entry["slug"], {})
        fields = []
        for name in ("description", "phrases"):
            if name in old and getattr(topic, name) == old[name] != entry[name]:
                setattr(topic, name, entry[name])
                fields.append(name)
        if not topic.examples and entry.get("examples"):
            topic.examples = entry["examples"]
            fields.append("examples")
        if fields:
            topic.save(update_fields=fields)
            changed.append(entry["slug"])
    return changed


def topics_unsync(*, apps: Apps | None = None) -> None:
    """Delete the catalog's topics (by slug): what undoing migration 0003 does."""
    Topic = (apps or installed_apps).get_model("digests", "Topic")
    Topic.objects.filter(slug__in=[entry["slug"] for entry in topics_catalog()]).delete()
