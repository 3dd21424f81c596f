"""The "Editors" group and its permissions: declared here once, synced after every migrate.

Editors curate batches, papers and topics, manage subscribers through the admin's actions and
import, send and watch digests, and change schedules. They cannot manage users or groups,
delete history, or touch what other apps keep (sessions, raw ingest payloads stay view-only).
Superusers keep everything. A sync sets the group's permissions to exactly PERMISSIONS, so
changing this list and running migrate is how the group changes.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, transaction

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


def editors_sync(*, using: str = DEFAULT_DB_ALIAS) -> Group:
    """Create the group if needed and give it exactly PERMISSIONS (safe to run again)."""
    # auth creates permissions after migrate app by app, and this may run before it reaches
    # the last app; creating them here first (idempotent) makes the order not matter.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    with transaction.atomic(using=using):
        group, _ = Group.objects.using(using).get_or_create(name=EDITORS)
        wanted = []
        for app_label, codenames in PERMISSIONS.items():
            found = list(
                Permission.objects.using(using).filter(
                    content_type__app_label=app_label, codename__in=codenames
                )
            )
            missing = set(codenames) - {p.codename for p in found}
            if missing:
                raise RuntimeError(f"permissions missing for {app_label}: {sorted(missing)}")
            wanted += found
        group.permissions.set(wanted)
    return group


def editors_post_migrate(sender: Any, *, using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    """post_migrate receiver (connected in config.apps): keep the group as declared here."""
    editors_sync(using=using)
