from __future__ import annotations

from django.db import migrations, models


def refresh(apps, schema_editor):
    # Databases made before this migration get the rewritten descriptions, phrases and the
    # examples, except where an editor changed them (see topics_refresh).
    from digests.topic_catalog import topics_refresh

    topics_refresh(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("digests", "0005_paper_meaning"),
    ]

    operations = [
        migrations.AddField(
            model_name="topic",
            name="examples",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='Short phrases of what belongs to the topic, e.g. "legged '
                "locomotion\": automatic tagging compares each paper's meaning with them "
                "(they are not matched as words).",
            ),
        ),
        migrations.RunPython(refresh, migrations.RunPython.noop),
    ]
