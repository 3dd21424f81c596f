"""Each distinct email of an issue is stored once (IssueContent), not on every Delivery."""

import django.db.models.deletion
from django.db import migrations, models

BATCH = 2000


def contents_from_deliveries(apps, schema_editor):
    """One IssueContent per (issue, content key), from the first delivery that carries it."""
    Delivery = apps.get_model("newsletter", "Delivery")
    IssueContent = apps.get_model("newsletter", "IssueContent")
    firsts = (
        Delivery.objects.exclude(content_key="")
        .values("issue_id", "content_key")
        .annotate(first=models.Min("id"))
        .values("first")
    )
    rows = Delivery.objects.filter(pk__in=firsts).values_list(
        "issue_id", "content_key", "selection"
    )
    contents = []
    for issue_id, key, selection in rows.iterator(chunk_size=BATCH):
        contents.append(IssueContent(issue_id=issue_id, key=key, selection=selection))
        if len(contents) == BATCH:
            IssueContent.objects.bulk_create(contents)
            contents = []
    IssueContent.objects.bulk_create(contents)


def selections_onto_deliveries(apps, schema_editor):
    Delivery = apps.get_model("newsletter", "Delivery")
    IssueContent = apps.get_model("newsletter", "IssueContent")
    for content in IssueContent.objects.iterator(chunk_size=BATCH):
        Delivery.objects.filter(issue_id=content.issue_id, content_key=content.key).update(
            selection=content.selection
        )


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0003_delivery_leaner_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="IssueContent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=40)),
                ("selection", models.JSONField()),
                (
                    "issue",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="contents",
                        to="newsletter.issue",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("issue", "key"), name="one_content_per_issue_and_key"
                    )
                ],
            },
        ),
        migrations.RunPython(contents_from_deliveries, selections_onto_deliveries),
        migrations.RemoveField(
            model_name="delivery",
            name="selection",
        ),
    ]
