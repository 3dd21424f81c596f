from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0005_subscriber_rhythm"),
    ]

    operations = [
        migrations.AddField(
            model_name="consentrecord",
            name="welcomed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
