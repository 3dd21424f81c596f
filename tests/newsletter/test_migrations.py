"""The migration that moved selections from every Delivery into one IssueContent each."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("newsletter", "0003_delivery_leaner_indexes")]
AFTER = [("newsletter", "0004_issue_content")]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def test_it_keeps_one_content_per_issue_and_key_and_can_go_back():
    apps = _migrate(BEFORE)
    DailyBatch = apps.get_model("digests", "DailyBatch")
    Issue = apps.get_model("newsletter", "Issue")
    Subscriber = apps.get_model("subscriptions", "Subscriber")
    Delivery = apps.get_model("newsletter", "Delivery")
    issue = Issue.objects.create(batch=DailyBatch.objects.create(date=dt.date(2026, 3, 10)))
    readers = [
        Subscriber.objects.create(
            email=f"r{i}@example.org", email_hash=str(i), created_at=dt.datetime.now(dt.UTC)
        )
        for i in range(4)
    ]
    contents = [("k1", [[1, [2]]]), ("k1", [[1, [2]]]), ("k2", [[3, []]]), ("", [])]
    for reader, (key, selection) in zip(readers, contents, strict=True):
        Delivery.objects.create(
            issue=issue, subscriber=reader, content_key=key, selection=selection
        )

    apps = _migrate(AFTER)
    IssueContent = apps.get_model("newsletter", "IssueContent")
    assert sorted(IssueContent.objects.values_list("issue_id", "key", "selection")) == [
        (issue.pk, "k1", [[1, [2]]]),
        (issue.pk, "k2", [[3, []]]),
    ]

    apps = _migrate(BEFORE)
    Delivery = apps.get_model("newsletter", "Delivery")
    assert sorted(Delivery.objects.values_list("content_key", "selection")) == sorted(contents)
    # Back to the latest schema: the tests after this one (and the worker processes they
    # start) use columns of later migrations.
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
