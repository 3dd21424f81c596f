"""The suppression check scales with the readers asked about, not with every address ever
suppressed (who is mailable at all: test_data_rights.py)."""

from __future__ import annotations

import pytest
from django.db import connection

from subscriptions.models import Subscriber
from subscriptions.selectors import subscribers_mailable

pytestmark = pytest.mark.django_db


def test_the_suppression_check_is_an_anti_join_not_a_subplan_over_the_whole_list():
    # NOT IN (subquery) makes PostgreSQL read the whole suppression list per query (or per
    # reader, once it outgrows work_mem); an anti-join probes its index.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    query = subscribers_mailable().filter(pk__any_of=[1, 2, 3]).values("pk")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Anti Join" in plan, plan
    assert "SubPlan" not in plan, plan
    assert Subscriber.objects.count() == 0  # the plan was read, nothing else
