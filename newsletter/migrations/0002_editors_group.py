"""The "Editors" group: curation rights only.

Editors curate batches, papers and topics, manage subscribers through the admin's actions and
import, send and watch digests, and change schedules. They cannot manage users or groups,
delete history, or touch what other apps keep (sessions, raw ingest payloads stay view-only).
Superusers keep everything. Re-running sets the group's permissions to exactly this list.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

EDITORS = "Editors"

PERMISSIONS = {
    "digests": [
        "view_dailybatch",
        "change_dailybatch",
        "view_batchentry",
        "change_batchentry",
        "view_paper",
        "change_paper",
        "view_papertopic",
        "add_papertopic",
        "change_papertopic",
        "delete_papertopic",
        "view_topic",
        "change_topic",
        "view_ingestrun",
    ],
    "subscriptions": [
        "view_subscriber",
        "change_subscriber",
        "add_subscriber",  # the CSV import
        "view_consentrecord",
        "view_suppression",
    ],
    "newsletter": [
        "view_issue",
        "add_issue",  # "send now" creates the day's issue
        "change_issue",
        "view_delivery",
        "change_delivery",  # the retry action
        "view_trackingevent",
    ],
    "django_celery_beat": [
        "view_periodictask",
        "change_periodictask",
        "view_crontabschedule",
        "add_crontabschedule",  # a new time for a periodic task
        "change_crontabschedule",
        "view_intervalschedule",
        "view_solarschedule",
        "view_clockedschedule",
    ],
}


def create_editors(apps, schema_editor):
    # Permissions are normally created after migrate (post_migrate); on a fresh database they
    # do not exist yet when this runs, so create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=EDITORS)
    wanted = []
    for app_label, codenames in PERMISSIONS.items():
        found = list(
            Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        )
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"permissions missing for {app_label}: {sorted(missing)}")
        wanted += found
    group.permissions.set(wanted)


def remove_editors(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=EDITORS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0001_initial"),
        ("digests", "0004_editor_order"),
        ("subscriptions", "0002_consent_note"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_editors, remove_editors)]
