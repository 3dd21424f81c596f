"""Anymail's normalized tracking signal -> delivery status and suppression."""

from __future__ import annotations

from anymail.signals import tracking
from django.dispatch import receiver

from newsletter.services import tracking_event_record


@receiver(tracking, dispatch_uid="newsletter.tracking")
def handle_tracking_event(sender, event, esp_name, **kwargs) -> None:
    tracking_event_record(event=event)
