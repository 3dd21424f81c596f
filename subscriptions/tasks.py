from __future__ import annotations

from anymail.exceptions import AnymailAPIError
from celery import shared_task

from subscriptions import address_change, services


def _transient(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    return status is None or status == 429 or status >= 500


@shared_task(bind=True, max_retries=5)
def send_form_email(self, subscriber_id: int, kind: str) -> None:
    """Send the confirmation (or "already subscribed") mail the signup form asked for."""
    try:
        services.subscriber_form_email_send(subscriber_id=subscriber_id, kind=kind)
    except (OSError, AnymailAPIError) as exc:
        # Only network trouble and provider 5xx/429 are worth another try; a 4xx will not heal.
        if isinstance(exc, AnymailAPIError) and not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(bind=True, max_retries=5)
def send_address_email(self, kind: str, subscriber_id: int, to: str) -> None:
    """Send a change-of-address email: the new address's link or note, the old one's notice."""
    try:
        address_change.address_email_send(kind=kind, subscriber_id=subscriber_id, to=to)
    except (OSError, AnymailAPIError) as exc:
        if isinstance(exc, AnymailAPIError) and not _transient(exc):
            raise
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task
def purge_stale_pending() -> int:
    """Delete pending subscribers who never confirmed; run daily by beat."""
    return services.subscriber_purge_stale_pending()
