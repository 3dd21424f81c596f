"""``field__any_of``: the same rows as ``field__in``, with the list sent as one array."""

from __future__ import annotations

import pytest
from django.db import connection

from subscriptions.models import Profile, Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_any_of_finds_what_in_finds_for_ids_strings_and_foreign_keys():
    readers = [SubscriberFactory(email=f"r{i}@example.org") for i in range(5)]
    wanted = [readers[0].pk, readers[3].pk, 10**12]  # and one id that does not exist
    emails = {"r1@example.org", "r4@example.org", "nobody@example.org"}

    by_id = Subscriber.objects.filter(pk__any_of=wanted)
    by_email = Subscriber.objects.filter(email__any_of=emails)

    assert sorted(by_id.values_list("pk", flat=True)) == sorted(
        Subscriber.objects.filter(pk__in=wanted).values_list("pk", flat=True)
    )
    assert sorted(by_id.values_list("pk", flat=True)) == [readers[0].pk, readers[3].pk]
    assert sorted(by_email.values_list("email", flat=True)) == ["r1@example.org", "r4@example.org"]
    assert Subscriber.objects.filter(pk__any_of=[]).count() == 0
    profiles = Profile.objects.filter(subscriber_id__any_of=wanted)
    assert sorted(profiles.values_list("subscriber_id", flat=True)) == sorted(
        Profile.objects.filter(subscriber_id__in=wanted).values_list("subscriber_id", flat=True)
    )
    assert profiles.count() == 2


def test_any_of_sends_one_parameter_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the array form is PostgreSQL's; elsewhere it is IN")
    reader = SubscriberFactory()
    ids = [reader.pk, *range(10**9, 10**9 + 1999)]
    sent = []

    def record(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        found = list(Subscriber.objects.filter(pk__any_of=ids).values_list("pk", flat=True))
    assert found == [reader.pk]
    ((sql, params),) = sent
    assert "= ANY(%s::bigint[])" in sql
    assert list(params) == [ids]  # one parameter: the whole list
