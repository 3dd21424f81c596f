"""Every existing subscriber gets an empty profile; their topics stay on Subscriber.topics."""

from django.db import migrations

BATCH = 5000


def create_profiles(apps, schema_editor):
    Subscriber = apps.get_model("subscriptions", "Subscriber")
    Profile = apps.get_model("subscriptions", "Profile")
    missing = (
        Subscriber.objects.filter(profile__isnull=True).order_by("pk").values_list("pk", flat=True)
    )
    batch = []
    for pk in missing.iterator(chunk_size=BATCH):
        batch.append(Profile(subscriber_id=pk))
        if len(batch) == BATCH:
            Profile.objects.bulk_create(batch)
            batch = []
    Profile.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0003_profile_feedback")]

    operations = [migrations.RunPython(create_profiles, migrations.RunPython.noop)]
