"""The shipped topics are data (digests/data/topics.json), created where missing, never
overwriting what editors changed."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from digests.models import Topic
from digests.topic_catalog import PREVIOUS, topics_catalog, topics_refresh

pytestmark = pytest.mark.django_db

FIELDS = ("name", "slug", "description", "phrases", "position")


def test_it_seeded_every_catalog_topic_through_the_migration():
    seeded = {t.slug: {f: getattr(t, f) for f in FIELDS} for t in Topic.objects.all()}
    assert seeded == {entry["slug"]: {f: entry[f] for f in FIELDS} for entry in topics_catalog()}


def test_its_catalog_names_slugs_and_positions_are_unique():
    catalog = topics_catalog()
    for key in ("name", "slug", "position"):
        assert len({entry[key] for entry in catalog}) == len(catalog), key


def test_sync_topics_creates_what_is_missing_and_keeps_editors_edits():
    first, second, third = topics_catalog()[:3]
    Topic.objects.filter(slug=first["slug"]).delete()
    Topic.objects.filter(slug=second["slug"]).update(phrases=["edited"], description="mine")
    Topic.objects.filter(slug=third["slug"]).update(slug="renamed-by-an-editor")

    out = StringIO()
    call_command("sync_topics", stdout=out)

    assert out.getvalue() == f"created topic: {first['slug']}\n"
    back = Topic.objects.get(slug=first["slug"])
    assert (back.name, back.phrases, back.position) == (
        first["name"],
        first["phrases"],
        first["position"],
    )
    edited = Topic.objects.get(slug=second["slug"])
    assert (edited.phrases, edited.description) == (["edited"], "mine")
    assert not Topic.objects.filter(slug=third["slug"]).exists()
    assert Topic.objects.count() == len(topics_catalog())

    call_command("sync_topics", stdout=out)
    assert out.getvalue().endswith("every topic of topics.json exists already\n")


def test_it_brings_topics_still_as_first_shipped_up_to_date_and_keeps_editors_edits():
    previous = {e["slug"]: e for e in json.loads(PREVIOUS.read_text("utf-8"))}
    catalog = {e["slug"]: e for e in topics_catalog()}
    # A database from before: every topic as first shipped, one description edited by hand.
    for slug, old in previous.items():
        Topic.objects.filter(slug=slug).update(
            description=old["description"], phrases=old["phrases"], examples=[]
        )
    Topic.objects.filter(slug="robotics").update(description="Our own words.")

    changed = topics_refresh()

    assert set(changed) == set(catalog)
    robotics = Topic.objects.get(slug="robotics")
    assert robotics.description == "Our own words."
    assert robotics.phrases == catalog["robotics"]["phrases"]
    assert robotics.examples == catalog["robotics"]["examples"]
    llm = Topic.objects.get(slug="large-language-models")
    assert llm.description == catalog["large-language-models"]["description"]
    assert "pre-training" not in llm.phrases
    assert topics_refresh() == []


def test_it_seeded_every_topic_with_its_examples():
    examples = {t.slug: t.examples for t in Topic.objects.all()}
    assert examples == {e["slug"]: e["examples"] for e in topics_catalog()}
    assert all(examples.values())
