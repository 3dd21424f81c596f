"""Editors in the admin: an account in the "Editors" group (config/editors.py), mail on Anymail's
test backend, and tasks enqueued on commit run as a request returns."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.core import mail

from config.editors import EDITORS, editors_sync
from tests.factories import UserFactory
from tests.newsletter.conftest import day_batch  # noqa: F401 - a fixture the admin tests share


def editors_group() -> Group:
    """The group migrate synced (a transactional test's flush syncs it again)."""
    if not Group.objects.filter(name=EDITORS).exists():
        editors_sync()
    return Group.objects.get(name=EDITORS)


@pytest.fixture
def editor(db):
    user = UserFactory(username="eddie", email="eddie@paperboy.localhost")
    user.set_password("pw")
    user.save()
    user.groups.add(editors_group())
    return user


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.SITE_URL = "https://paperboy.example.org"
    mail.outbox = []


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Use as `with on_commit(): client.post(...)`: what the request enqueued runs after it."""

    def run():
        return django_capture_on_commit_callbacks(execute=True)

    return run


def logged(user, obj=None) -> list[str]:
    """The admin log's messages for `user` (about `obj`, if given), oldest first."""
    entries = LogEntry.objects.filter(user=user).order_by("action_time", "pk")
    if obj is not None:
        entries = entries.filter(object_id=str(obj.pk), content_type__model=obj._meta.model_name)
    return [e.get_change_message() for e in entries]


def changeform_data(response) -> dict:
    """The POST a browser would send back from an admin change page, inlines included."""
    data: dict = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[f"{formset.prefix}-{name}"] = management[name].value()
        for form in formset.forms:
            for name in form.fields:
                value = form[name].value()
                if value is None or value is False:
                    continue
                data[form.add_prefix(name)] = "on" if value is True else value
    return data


def entry_prefix(response, entry) -> str:
    """The form prefix of a batch entry on the batch's change page."""
    for inline in response.context["inline_admin_formsets"]:
        for form in inline.formset.forms:
            if form.instance.pk == entry.pk and form.instance.__class__ is entry.__class__:
                return form.prefix
    raise AssertionError(f"{entry} is not on the page")
