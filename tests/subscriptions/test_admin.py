from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from subscriptions.models import Subscriber, Suppression
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.org", "pw")
    client.force_login(user)
    return client


def test_it_lists_subscribers_read_only(admin_client):
    subscriber = SubscriberFactory(email="listed@example.org")
    page = admin_client.get("/admin/subscriptions/subscriber/")
    assert page.status_code == 200 and b"listed@example.org" in page.content
    assert admin_client.get("/admin/subscriptions/subscriber/add/").status_code == 403
    detail = admin_client.get(f"/admin/subscriptions/subscriber/{subscriber.pk}/change/")
    assert detail.status_code == 200 and b"192.0.2.10" in detail.content  # consent inline


def test_its_erase_action_keeps_a_suppression(admin_client):
    subscriber = SubscriberFactory()
    response = admin_client.post(
        "/admin/subscriptions/subscriber/",
        {"action": "erase", "_selected_action": [subscriber.pk]},
    )
    assert response.status_code == 302
    assert not Subscriber.objects.exists()
    assert Suppression.objects.get().reason == "erased"
