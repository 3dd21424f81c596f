"""Tracking events: Anymail's normalized tracking signal -> delivery status and suppression.

Each event is applied once (replays from the provider are recognised by their key); a
permanent bounce, a complaint or an unsubscribe also puts the address on the suppression list.
"""

from __future__ import annotations

import hashlib

from anymail.signals import tracking
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from newsletter import providers
from newsletter.models import Delivery, TrackingEvent
from subscriptions.services import subscriber_suppress

SUPPRESSING_EVENTS = {
    "bounced": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    "rejected": "bounced",
}
DELIVERY_STATUS_FOR_EVENT = {
    "bounced": Delivery.Status.BOUNCED,
    "rejected": Delivery.Status.BOUNCED,
    "complained": Delivery.Status.COMPLAINED,
}
TIMESTAMP_FIELD_FOR_EVENT = {
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "bounced": "bounced_at",
    "rejected": "bounced_at",
    "complained": "complained_at",
}


def _event_key(event) -> str:
    """The provider's event id, or (for events without one, such as Postmark's deliveries and
    opens) a digest of what identifies the event: never the address itself."""
    if event.event_id:
        return f"{event.event_type}:{event.event_id}"[:200]
    stamp = event.timestamp.isoformat() if event.timestamp else ""
    identity = f"{event.message_id}|{event.recipient}|{stamp}".encode()
    return f"{event.event_type}:{hashlib.sha256(identity).hexdigest()}"


def tracking_event_record(*, event) -> bool:
    """Apply one Anymail tracking event once. Returns False for a replayed event."""
    metadata = event.metadata or {}
    delivery = None
    if str(metadata.get("delivery", "")).isdigit():
        delivery = Delivery.objects.filter(pk=int(metadata["delivery"])).first()
    if delivery is None and event.message_id:
        delivery = Delivery.objects.filter(provider_message_id=event.message_id).first()
    with transaction.atomic():
        _, created = TrackingEvent.objects.get_or_create(
            event_key=_event_key(event),
            defaults={
                "event_type": event.event_type,
                "provider_message_id": event.message_id or "",
                "delivery": delivery,
                "occurred_at": event.timestamp,
                "description": (event.description or "")[:2000],
            },
        )
        if not created:
            return False
        if delivery is not None:
            stamp_field = TIMESTAMP_FIELD_FOR_EVENT.get(event.event_type)
            changes = {}
            if stamp_field and getattr(delivery, stamp_field) is None:
                changes[stamp_field] = event.timestamp or timezone.now()
            if event.event_type in DELIVERY_STATUS_FOR_EVENT and (
                event.event_type != "bounced" or providers.bounce_is_permanent(event)
            ):
                changes["status"] = DELIVERY_STATUS_FOR_EVENT[event.event_type]
            if changes:
                Delivery.objects.filter(pk=delivery.pk).update(**changes)
        permanent = event.event_type != "bounced" or providers.bounce_is_permanent(event)
        if event.event_type in SUPPRESSING_EVENTS and event.recipient and permanent:
            subscriber_suppress(email=event.recipient, reason=SUPPRESSING_EVENTS[event.event_type])
    return True


# Connected when the app is ready (NewsletterConfig.ready imports this module).
@receiver(tracking, dispatch_uid="newsletter.tracking")
def handle_tracking_event(sender, event, esp_name, **kwargs) -> None:
    tracking_event_record(event=event)
