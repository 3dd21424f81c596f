"""Change of address: the new address confirmed from its own mailbox, the old one told after.

Until the link mailed to the new address is confirmed nothing changes: digests keep going to
the old address, and nothing about the new one is stored (the link carries it, signed; see
subscriptions.links). The answer to a request is the same whether the new address is free,
already subscribed or suppressed, so the preference center tells nobody who else subscribes.
Only the owner of the new mailbox, after clicking, learns that it has a subscription of its own.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from subscriptions.addresses import email_hash, email_normalize
from subscriptions.emails import email_build
from subscriptions.links import ADDRESS_HASH_PREFIX, address_change_url
from subscriptions.models import Subscriber, Suppression

ADDRESS_CONFIRM = "address-confirm"  # to the new address: the link that makes the change
ADDRESS_TAKEN = "address-taken"  # to the new address, when it already has a subscription
ADDRESS_CHANGED = "address-changed"  # to the old address, once the change is made
KINDS = (ADDRESS_CONFIRM, ADDRESS_TAKEN, ADDRESS_CHANGED)

Status = Subscriber.Status


class AddressChangeRefused(Exception):
    """A confirmed change that cannot be made; the message is for the new mailbox's owner."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(title)
        self.title = title
        self.message = message


def _blocked(address_hash: str) -> bool:
    # Bounced, complained or blocked by an operator: nothing may go there. An unsubscribed or
    # erased address may: confirming from that mailbox is the person asking again.
    return (
        Suppression.objects.filter(email_hash=address_hash)
        .exclude(reason__in=Suppression.LIFTED_BY_CONFIRMATION)
        .exists()
    )


@transaction.atomic
def address_change_request(*, subscriber: Subscriber, new_email: str) -> None:
    """Mail the new address a confirmation link (or, if it is subscribed itself, a note).

    Returns nothing on purpose: the page says the same for every new address. At most one
    email per new address per SIGNUP_EMAIL_INTERVAL_SECONDS, whoever asks, so the form
    cannot be used to flood someone else's mailbox.
    """
    new_address = email_normalize(new_email)
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status not in (Status.ACTIVE, Status.PAUSED):
        raise ValidationError(
            "Subscribe again before changing your address.", code="not_subscribed"
        )
    if new_address == subscriber.email:
        raise ValidationError("That is already your address.", code="same_address")
    new_hash = email_hash(new_address)
    if not cache.add(
        f"address-change:{new_hash}", 1, timeout=settings.SIGNUP_EMAIL_INTERVAL_SECONDS
    ):
        return
    if _blocked(new_hash):
        return
    taken = (
        Subscriber.objects.filter(email_hash=new_hash, status__in=[Status.ACTIVE, Status.PAUSED])
        .exclude(pk=subscriber.pk)
        .exists()
    )
    from subscriptions.tasks import send_address_email  # tasks import this module

    kind = ADDRESS_TAKEN if taken else ADDRESS_CONFIRM
    send_address_email.delay_on_commit(kind, subscriber.pk, new_address)


@transaction.atomic
def address_change_confirm(
    *, subscriber: Subscriber, old_hash_prefix: str, new_address: str
) -> Subscriber:
    """Move the subscription to the new address (idempotent); AddressChangeRefused if it
    cannot be made. The old address is told, by an email enqueued on commit."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.email == new_address:
        return subscriber  # a second click
    if subscriber.email_hash[:ADDRESS_HASH_PREFIX] != old_hash_prefix:
        raise AddressChangeRefused(
            "This link is no longer valid",
            "The subscription's address changed since this email was sent. Ask for a new "
            "link from your preferences page.",
        )
    if subscriber.status not in (Status.ACTIVE, Status.PAUSED):
        raise AddressChangeRefused(
            "This subscription has ended",
            "It was unsubscribed after this email was sent, so its address was not changed.",
        )
    new_hash = email_hash(new_address)
    if _blocked(new_hash):
        raise AddressChangeRefused(
            "We cannot send to this address",
            "Mail to it bounced or was reported before, so Paperboy does not send to it. "
            "Nothing changed; your digests still go to your previous address.",
        )
    taken = AddressChangeRefused(
        "This address has a subscription of its own",
        "Nothing changed. To manage the subscription this address already has, ask for its "
        "link on the “Email me my link” page.",
    )
    if Subscriber.objects.filter(email_hash=new_hash).exclude(pk=subscriber.pk).exists():
        raise taken
    old_address = subscriber.email
    subscriber.email, subscriber.email_hash = new_address, new_hash
    try:
        with transaction.atomic():  # a concurrent signup may take the address first
            subscriber.save(update_fields=["email", "email_hash"])
    except IntegrityError:
        raise taken from None
    # Confirming from the mailbox is the person asking for mail there again.
    Suppression.objects.filter(
        email_hash=new_hash, reason__in=Suppression.LIFTED_BY_CONFIRMATION
    ).delete()
    from subscriptions.tasks import send_address_email

    send_address_email.delay_on_commit(ADDRESS_CHANGED, subscriber.pk, old_address)
    return subscriber


def address_email_send(*, kind: str, subscriber_id: int, to: str) -> bool:
    """Render and send one change-of-address email; False when it no longer applies."""
    if kind not in KINDS:
        raise ValueError(f"unknown address email {kind!r}")
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if kind == ADDRESS_CHANGED:
        # The change happened: the old address is told even if the subscription is gone since.
        context = {"new_address": subscriber.email if subscriber else ""}
    elif subscriber is None or subscriber.email == to:
        return False  # erased, or the change was already made
    elif kind == ADDRESS_CONFIRM:
        context = {
            "confirm_url": address_change_url(subscriber, to),
            "max_age_days": settings.CONFIRM_LINK_MAX_AGE_DAYS,
        }
    else:
        context = {}
    email_build(kind, to=to, context=context).send()
    return True
