"""The Editors group: curation rights only, and every editor action in the admin log."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.sql import emit_post_migrate_signal
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.demo import step_editor
from config.editors import PERMISSIONS, editors_sync
from tests.admin.conftest import editors_group, logged
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REACHABLE = [
    "/admin/",
    "/admin/digests/dailybatch/",
    "/admin/digests/paper/",
    "/admin/digests/topic/",
    "/admin/subscriptions/subscriber/",
    "/admin/subscriptions/subscriber/import/",
    "/admin/newsletter/issue/",
    "/admin/newsletter/issue/dashboard/",
    "/admin/newsletter/delivery/",
    "/admin/django_celery_beat/periodictask/",
]
FORBIDDEN = [
    "/admin/auth/user/",
    "/admin/auth/user/add/",
    "/admin/auth/group/",
    "/admin/auth/group/add/",
    "/admin/digests/topic/add/",
    "/admin/django_celery_beat/periodictask/add/",
]


@pytest.mark.parametrize("url", REACHABLE)
def test_an_editor_reaches_the_curation_screens(editor_client, url):
    assert editor_client.get(url).status_code == 200


@pytest.mark.parametrize("url", FORBIDDEN)
def test_an_editor_cannot_reach_what_the_group_does_not_allow(editor_client, url):
    assert editor_client.get(url).status_code == 403


def test_an_editor_cannot_make_themselves_a_superuser(editor_client, editor):
    response = editor_client.post(
        f"/admin/auth/user/{editor.pk}/change/", {"username": editor.username, "is_superuser": "on"}
    )
    assert response.status_code == 403
    editor.refresh_from_db()
    assert not editor.is_superuser and not editor.user_permissions.exists()


def test_a_staff_user_outside_the_group_reaches_nothing(client):
    client.force_login(UserFactory(username="outsider"))
    assert client.get("/admin/digests/dailybatch/").status_code == 403
    assert client.get("/admin/newsletter/issue/dashboard/").status_code == 403


def test_the_group_has_only_view_change_and_the_adds_it_needs():
    codenames = set(editors_group().permissions.values_list("codename", flat=True))
    assert not {c for c in codenames if c.startswith("delete_")} - {"delete_papertopic"}
    assert {c for c in codenames if c.startswith("add_")} == {
        "add_subscriber",
        "add_issue",
        "add_papertopic",
        "add_crontabschedule",
    }
    assert not any(c.endswith(("_user", "_group", "_permission")) for c in codenames)
    assert {"change_periodictask", "change_dailybatch", "change_subscriber"} <= codenames


def test_the_sync_can_run_again_without_duplicates():
    group = editors_group()
    before = set(group.permissions.all())
    editors_sync()
    assert set(group.permissions.all()) == before


def test_migrate_syncs_the_group_to_its_declaration():
    group = editors_group()
    group.permissions.remove(*group.permissions.filter(codename="change_subscriber"))
    group.permissions.add(*Permission.objects.filter(codename="delete_user"))

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    assert sorted(group.permissions.values_list("content_type__app_label", "codename")) == sorted(
        (app_label, codename)
        for app_label, codenames in PERMISSIONS.items()
        for codename in codenames
    )


def test_an_editor_changes_a_schedule_and_it_is_logged(editor_client, editor):
    crontab = CrontabSchedule.objects.create(minute="0", hour="7")
    task = PeriodicTask.objects.create(
        name="send", task="newsletter.tasks.send_daily_digest", crontab=crontab
    )
    page = editor_client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    assert page.status_code == 200
    # The form as posted with "Enabled" unticked and a description.
    data = {
        "name": "send",
        "regtask": "newsletter.tasks.send_daily_digest",
        "crontab": crontab.pk,
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
        "description": "paused by an editor",
    }
    response = editor_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert not task.enabled and task.description == "paused by an editor"
    assert logged(editor, task)


def test_the_demo_creates_an_editor_once_and_prints_the_login(settings, tmp_path):
    settings.PAPERBOY_VAR_DIR = tmp_path
    said: list[str] = []
    step_editor(said.append)
    step_editor(said.append)
    user = get_user_model().objects.get(username="editor")
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["Editors"]
    assert said[0] == said[1] and said[0].startswith("Editor login: ")
    assert "user: editor  password: " in said[0]
