from __future__ import annotations

from django.db.models import QuerySet

from subscriptions.models import Subscriber, Suppression


def subscribers_sendable() -> QuerySet[Subscriber]:
    """Subscribers that may be mailed now: active, confirmed, and not suppressed."""
    return Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, confirmed_at__isnull=False
    ).exclude(email_hash__in=Suppression.objects.values("email_hash"))
