"""Seed the topics subscribers pick from and papers are tagged with.

The topics are data, in digests/data/topics.json (see digests/topic_catalog.py); this
migration creates them on a fresh database. Topics that exist are never overwritten, so
editors' edits survive; topics added to the file later arrive with `manage.py sync_topics`.
"""

from django.db import migrations

from digests.topic_catalog import topics_sync, topics_unsync


def seed_topics(apps, schema_editor):
    topics_sync(apps=apps)


def unseed_topics(apps, schema_editor):
    topics_unsync(apps=apps)


class Migration(migrations.Migration):
    dependencies = [("digests", "0002_papers_batches")]

    operations = [migrations.RunPython(seed_topics, unseed_topics)]
