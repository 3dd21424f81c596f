from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.schedules import schedules_install
from subscriptions.models import Subscriber, Suppression
from subscriptions.tasks import purge_stale_pending
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_it_purges_pending_subscribers_past_the_limit(signup):
    now = timezone.now()
    stale = SubscriberFactory(pending=True, created_at=now - timedelta(days=15))
    fresh = SubscriberFactory(pending=True, created_at=now - timedelta(days=13))
    old_active = SubscriberFactory(created_at=now - timedelta(days=400))
    # Created long ago but asked again yesterday: their request is recent.
    with time_machine.travel(now - timedelta(days=1)):
        signup(stale.email.replace("reader", "again"))
    again = Subscriber.objects.get(email__startswith="again")
    Subscriber.objects.filter(pk=again.pk).update(created_at=now - timedelta(days=30))
    Suppression.objects.create(email_hash=stale.email_hash, reason="unsubscribed", created_at=now)

    assert purge_stale_pending.delay().get() == 1

    remaining = set(Subscriber.objects.values_list("pk", flat=True))
    assert remaining == {fresh.pk, old_active.pk, again.pk}
    assert Suppression.objects.filter(email_hash=stale.email_hash).exists()


def test_it_reads_the_purge_age_from_settings(settings):
    settings.PENDING_PURGE_AFTER_DAYS = 30
    SubscriberFactory(pending=True, created_at=timezone.now() - timedelta(days=20))
    assert purge_stale_pending.delay().get() == 0
    assert Subscriber.objects.count() == 1


def test_it_is_scheduled_daily_by_beat():
    entry = django_settings.PAPERBOY_SCHEDULES["Purge unconfirmed subscribers"]
    assert entry["task"] == "subscriptions.tasks.purge_stale_pending"
    schedules_install()
    task = PeriodicTask.objects.get(name="Purge unconfirmed subscribers")
    assert task.task == purge_stale_pending.name
    assert task.crontab.hour == "4"
