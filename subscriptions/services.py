"""Every write to subscribers, consent records and suppressions goes through here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from digests.models import Topic
from subscriptions import schedule
from subscriptions.addresses import email_hash, email_normalize
from subscriptions.consent import CONSENT_TEXTS, IMPORT_VERSION
from subscriptions.emails import email_build
from subscriptions.exports import export_sections
from subscriptions.links import confirm_url, preferences_url
from subscriptions.models import ConsentRecord, Feedback, Profile, Subscriber, Suppression
from subscriptions.profiles import interests_clean, profile_create

ERASED_REPR = "erased subscriber #{pk}"
FORM_EMAIL_CONFIRM = "confirm"
FORM_EMAIL_ALREADY = "already-subscribed"
FORM_EMAIL_WELCOME = "welcome"  # after a confirmation: what they will get, and when
FORM_EMAIL_LINK = "your-link"  # "Email me my link": the preference link again

Status = Subscriber.Status


class SubscriberSuppressed(Exception):
    """An import was refused: the address is on the suppression list."""


class ConfirmationInvalid(Exception):
    """A confirmation link that no longer matches the subscription (it moved on since)."""


def _active_topics(topics: Iterable[Topic], *, allow_none: bool = False) -> list[Topic]:
    chosen = [t for t in topics if t.is_active]
    if not chosen and not allow_none:
        raise ValidationError("Choose at least one topic.", code="no_topics")
    return chosen


def _suppression_for(address_hash: str) -> Suppression | None:
    return Suppression.objects.filter(email_hash=address_hash).first()


def _locked(subscriber: Subscriber) -> Subscriber:
    return Subscriber.objects.select_for_update().get(pk=subscriber.pk)


@transaction.atomic
def subscriber_subscribe(
    *,
    email: str,
    topics: Iterable[Topic],
    ip: str | None,
    user_agent: str,
    form_version: str,
    interests: str = "",
    follows: Iterable[str] = (),
    muted: Iterable[str] = (),
    time_zone: str = schedule.DEFAULT_ZONE,
) -> None:
    """Handle a signup form submission: a pending subscriber and a confirmation email.

    Returns nothing on purpose: the caller must answer a new, pending, active, unsubscribed or
    suppressed address identically, so it is not told which one this was. At most one email
    per address per SIGNUP_EMAIL_INTERVAL_SECONDS leaves, whatever the state.

    A person needs at least one topic or a "what I work on" line.
    """
    address = email_normalize(email)
    interests = interests_clean(interests)
    chosen = _active_topics(topics, allow_none=True)
    if not chosen and not interests:
        raise ValidationError(
            "Choose at least one topic or tell us what you work on.", code="no_interest"
        )
    if form_version not in CONSENT_TEXTS:
        raise ValidationError("Unknown consent text version.", code="consent_version")
    address_hash = email_hash(address)
    now = timezone.now()

    suppression = _suppression_for(address_hash)
    if suppression is not None and suppression.reason not in Suppression.LIFTED_BY_CONFIRMATION:
        return  # bounced, complained or blocked: not even a confirmation mail may go there

    subscriber = Subscriber.objects.select_for_update().filter(email_hash=address_hash).first()
    if subscriber is None:
        try:
            # A savepoint, so a concurrent submission for the same address that wins the
            # unique index leaves this transaction usable.
            with transaction.atomic():
                subscriber = Subscriber.objects.create(
                    email=address,
                    email_hash=address_hash,
                    created_at=now,
                    # Only a new address takes the form's zone: the form must not change an
                    # existing reader's schedule without their link.
                    time_zone=time_zone
                    if schedule.time_zone_valid(time_zone)
                    else schedule.DEFAULT_ZONE,
                )
        except IntegrityError:
            subscriber = Subscriber.objects.select_for_update().get(email_hash=address_hash)

    consent_fields = {
        "requested_at": now,
        "ip": ip,
        "user_agent": user_agent[:512],
        "form_version": form_version,
        "topics": [t.slug for t in chosen],
    }
    if subscriber.status in (Status.ACTIVE, Status.PAUSED) and suppression is None:
        # Someone typed a confirmed address: changing its topics from an unauthenticated form
        # would let anyone edit anyone's subscription, so only a reminder with the link goes.
        # (An active row whose address is suppressed as unsubscribed is not mailed: it is
        # treated as unsubscribed and goes through confirmation again, below.)
        kind = FORM_EMAIL_ALREADY
    else:
        kind = FORM_EMAIL_CONFIRM
        pending = subscriber.consents.filter(confirmed_at__isnull=True).first()
        if subscriber.status == Status.PENDING and pending is not None:
            # Still the same request: update it in place so the link already mailed keeps
            # working, and repeated posts do not pile up records.
            for field, value in consent_fields.items():
                setattr(pending, field, value)
            pending.save()
        else:
            # New, or coming back after an unsubscribe: a fresh round of confirmation.
            ConsentRecord.objects.create(subscriber=subscriber, **consent_fields)
            subscriber.status = Status.PENDING
            subscriber.confirmed_at = None
            subscriber.paused_at = None
            subscriber.save(update_fields=["status", "confirmed_at", "paused_at"])
        subscriber.topics.set(chosen)
        profile_create(
            subscriber=subscriber, interests=interests, follows=list(follows), muted=list(muted)
        )

    _form_email_enqueue_once(subscriber=subscriber, kind=kind, now=now)


def _form_email_enqueue_once(*, subscriber: Subscriber, kind: str, now: datetime) -> None:
    """Queue a form email unless one went to this address within the interval.

    Every form email (signup, resend, an import's confirmation) passes here. The right to mail
    is claimed with one conditional UPDATE, so concurrent posts send once.
    """
    interval = timedelta(seconds=settings.SIGNUP_EMAIL_INTERVAL_SECONDS)
    claimed = (
        Subscriber.objects.filter(pk=subscriber.pk)
        .filter(Q(form_email_sent_at__isnull=True) | Q(form_email_sent_at__lte=now - interval))
        .update(form_email_sent_at=now)
    )
    if claimed:
        # The one place services enqueue a task, imported here rather than at the top: the
        # tasks module imports this one (tasks call services, never the other way round).
        from subscriptions.tasks import send_form_email

        send_form_email.delay_on_commit(subscriber.pk, kind)


@transaction.atomic
def subscriber_confirmation_resend(*, subscriber_key: str, consent_id: int) -> None:
    """Send a fresh confirmation link for an expired one, if the request is still pending.

    Subject to the same once-per-interval limit as the form; answers nothing, like the form.
    """
    subscriber = Subscriber.objects.select_for_update().filter(key=subscriber_key).first()
    if subscriber is None or subscriber.status != Status.PENDING:
        return
    if not subscriber.consents.filter(pk=consent_id, confirmed_at__isnull=True).exists():
        return
    suppression = _suppression_for(subscriber.email_hash)
    if suppression is not None and suppression.reason not in Suppression.LIFTED_BY_CONFIRMATION:
        return
    _form_email_enqueue_once(subscriber=subscriber, kind=FORM_EMAIL_CONFIRM, now=timezone.now())


@transaction.atomic
def subscriber_link_request(*, email: str) -> None:
    """ "Email me my link": mail the address its preference link again, if it has one.

    Returns nothing on purpose, like the signup form: the caller answers every address the
    same (active, paused, pending, unsubscribed, unknown, erased, suppressed). A pending
    address gets its confirmation link again instead. Shares the signup form's limit of one
    form email per address per SIGNUP_EMAIL_INTERVAL_SECONDS.
    """
    address_hash = email_hash(email_normalize(email))
    suppression = _suppression_for(address_hash)
    if suppression is not None and suppression.reason not in Suppression.LIFTED_BY_CONFIRMATION:
        return  # bounced, complained or blocked: nothing goes there
    subscriber = Subscriber.objects.select_for_update().filter(email_hash=address_hash).first()
    if subscriber is None:
        return  # unknown or erased
    if subscriber.status == Status.PENDING:
        if subscriber.consents.filter(confirmed_at__isnull=True).exists():
            _form_email_enqueue_once(
                subscriber=subscriber, kind=FORM_EMAIL_CONFIRM, now=timezone.now()
            )
        return
    # Unsubscribed people get it too: their preference page is where they subscribe again,
    # download their data or erase it.
    _form_email_enqueue_once(subscriber=subscriber, kind=FORM_EMAIL_LINK, now=timezone.now())


def subscriber_form_email_send(*, subscriber_id: int, kind: str) -> bool:
    """Render and send one form email; False when there is nothing (left) to send."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return False  # erased or purged after the email was queued
    if kind == FORM_EMAIL_CONFIRM:
        consent = subscriber.consents.filter(confirmed_at__isnull=True).first()
        if subscriber.status != Status.PENDING or consent is None:
            return False  # confirmed (or unsubscribed) in the meantime
        context = {
            "confirm_url": confirm_url(subscriber, consent),
            "max_age_days": settings.CONFIRM_LINK_MAX_AGE_DAYS,
            "topics": list(subscriber.topics.all()),
            "schedule_text": schedule.describe(subscriber.rhythm),
        }
    elif kind == FORM_EMAIL_ALREADY:
        if subscriber.status not in (Status.ACTIVE, Status.PAUSED):
            return False
        context = {
            "preferences_url": preferences_url(subscriber),
            "paused": subscriber.status == Status.PAUSED,
        }
    elif kind == FORM_EMAIL_LINK:
        if subscriber.status == Status.PENDING:
            return False
        context = {
            "preferences_url": preferences_url(subscriber),
            "unsubscribed": subscriber.status == Status.UNSUBSCRIBED,
        }
    elif kind == FORM_EMAIL_WELCOME:
        return _welcome_send(subscriber)
    else:
        raise ValueError(f"unknown form email {kind!r}")
    email_build(kind, to=subscriber.email, context=context).send()
    return True


def welcome_context(subscriber: Subscriber) -> dict[str, Any]:
    """What the welcome email says: the reader's own schedule, topics and how to change them."""
    profile = Profile.objects.filter(subscriber=subscriber).first()
    rhythm = subscriber.rhythm
    first = subscriber.next_due_at or schedule.next_slot(rhythm, timezone.now())
    return {
        "schedule_text": schedule.describe(rhythm),
        # Naive local time: the date filter would convert an aware one to the site's zone.
        "first_digest": first.astimezone(ZoneInfo(rhythm.zone)).replace(tzinfo=None),
        "time_zone": rhythm.zone,
        "papers_per_email": subscriber.papers_per_email,
        "weekly": rhythm.frequency == schedule.WEEKLY,
        "topics": list(subscriber.topics.order_by("position", "name")),
        "interests": profile.interests if profile else "",
        "preferences_url": preferences_url(subscriber),
    }


def _welcome_send(subscriber: Subscriber) -> bool:
    """The welcome email, once per confirmed request: claimed with one conditional UPDATE, and
    given back if the provider refused it (so the task's retry sends it)."""
    if subscriber.status != Status.ACTIVE:
        return False  # paused or unsubscribed in the minutes since: no welcome now
    consent = subscriber.consents.filter(confirmed_at__isnull=False).first()
    if consent is None:
        return False
    claimed = ConsentRecord.objects.filter(pk=consent.pk, welcomed_at__isnull=True).update(
        welcomed_at=timezone.now()
    )
    if not claimed:
        return False
    try:
        email_build(
            FORM_EMAIL_WELCOME, to=subscriber.email, context=welcome_context(subscriber)
        ).send()
    except BaseException:
        ConsentRecord.objects.filter(pk=consent.pk).update(welcomed_at=None)
        raise
    return True


@transaction.atomic
def subscriber_confirm(*, subscriber: Subscriber, consent_id: int) -> Subscriber:
    """Activate a pending subscriber from their confirmation link (idempotent).

    Lifts an unsubscribed/erased suppression: the person just proved they own the mailbox and
    asked again. Raises ConfirmationInvalid if the link belongs to an earlier round.
    """
    subscriber = _locked(subscriber)
    consent = subscriber.consents.filter(pk=consent_id).first()
    if consent is None:
        raise ConfirmationInvalid("this link belongs to an earlier subscription")
    if consent.confirmed_at is not None:
        if subscriber.status in (Status.ACTIVE, Status.PAUSED):
            return subscriber  # a second click: already done
        raise ConfirmationInvalid("this subscription was ended since")
    if subscriber.status != Status.PENDING:
        raise ConfirmationInvalid("this subscription is not waiting for confirmation")
    now = timezone.now()
    consent.confirmed_at = now
    consent.save(update_fields=["confirmed_at"])
    subscriber.status = Status.ACTIVE
    subscriber.confirmed_at = now
    subscriber.next_due_at = schedule.next_slot(subscriber.rhythm, now)
    subscriber.save(update_fields=["status", "confirmed_at", "next_due_at"])
    Suppression.objects.filter(
        email_hash=subscriber.email_hash, reason__in=Suppression.LIFTED_BY_CONFIRMATION
    ).delete()
    # Not through the form-email interval: the confirmation mail went minutes ago, and this
    # one follows the person's own click. Once per confirmed request (ConsentRecord.welcomed_at).
    from subscriptions.tasks import send_form_email

    send_form_email.delay_on_commit(subscriber.pk, FORM_EMAIL_WELCOME)
    return subscriber


@transaction.atomic
def subscriber_import(
    *, email: str, topics: Iterable[Topic], consent_note: str = "", confirmed: bool = True
) -> tuple[Subscriber, bool]:
    """Add an address an operator brought (a CSV import, the demo). Returns (subscriber, created).

    confirmed=True: the person consented elsewhere (consent_note records where), so they are
    active at once. confirmed=False: they are pending and get a confirmation link, and become
    active only by confirming, as with the signup form.

    Refuses any suppressed address, including unsubscribed and erased ones: only the person,
    through double opt-in, can bring those back, and an operator's list must not be a way to
    reach someone who left or bounced. An existing subscriber is left as it is.
    """
    address = email_normalize(email)
    chosen = _active_topics(topics)
    address_hash = email_hash(address)
    if _suppression_for(address_hash) is not None:
        raise SubscriberSuppressed(address)
    existing = Subscriber.objects.filter(email_hash=address_hash).first()
    if existing is not None:
        return existing, False
    now = timezone.now()
    confirmed_at = now if confirmed else None
    subscriber = Subscriber.objects.create(
        email=address,
        email_hash=address_hash,
        status=Status.ACTIVE if confirmed else Status.PENDING,
        created_at=now,
        confirmed_at=confirmed_at,
        next_due_at=schedule.next_slot(schedule.Rhythm(), now) if confirmed else None,
    )
    subscriber.topics.set(chosen)
    profile_create(subscriber=subscriber)
    ConsentRecord.objects.create(
        subscriber=subscriber,
        source=ConsentRecord.Source.IMPORT,
        requested_at=now,
        form_version=IMPORT_VERSION,
        topics=[t.slug for t in chosen],
        note=consent_note[:300],
        confirmed_at=confirmed_at,
    )
    if not confirmed:
        _form_email_enqueue_once(subscriber=subscriber, kind=FORM_EMAIL_CONFIRM, now=now)
    return subscriber, True


@transaction.atomic
def subscriber_update_topics(
    *, subscriber: Subscriber, topics: Iterable[Topic], allow_none: bool = False
) -> Subscriber:
    """allow_none: the reader told us what they work on (subscriptions.profiles checks)."""
    chosen = _active_topics(topics, allow_none=allow_none)
    subscriber = _locked(subscriber)
    if subscriber.status == Status.UNSUBSCRIBED:
        raise ValidationError("Subscribe again before choosing topics.", code="unsubscribed")
    subscriber.topics.set(chosen)
    return subscriber


@transaction.atomic
def subscriber_pause(*, subscriber: Subscriber) -> Subscriber:
    subscriber = _locked(subscriber)
    if subscriber.status == Status.PAUSED:
        return subscriber
    if subscriber.status != Status.ACTIVE:
        raise ValidationError("Only an active subscription can be paused.", code="not_active")
    subscriber.status = Status.PAUSED
    subscriber.paused_at = timezone.now()
    subscriber.save(update_fields=["status", "paused_at"])
    return subscriber


@transaction.atomic
def subscriber_resume(*, subscriber: Subscriber) -> Subscriber:
    subscriber = _locked(subscriber)
    if subscriber.status == Status.ACTIVE:
        return subscriber
    if subscriber.status != Status.PAUSED:
        raise ValidationError("Only a paused subscription can be resumed.", code="not_paused")
    subscriber.status = Status.ACTIVE
    subscriber.paused_at = None
    # From the next slot on: no catching up on what came out while paused.
    subscriber.next_due_at = schedule.next_slot(subscriber.rhythm, timezone.now())
    subscriber.save(update_fields=["status", "paused_at", "next_due_at"])
    return subscriber


SCHEDULE_FIELDS = (
    "time_zone",
    "delivery_hour",
    "frequency",
    "weekday",
    "papers_per_email",
    "paused_until",
    "top_when_empty",
)


@transaction.atomic
def subscriber_update_schedule(*, subscriber: Subscriber, **changes: Any) -> Subscriber:
    """Set the reader's rhythm (any of SCHEDULE_FIELDS) and their next slot from now.

    Values are checked here too, not only by the form: a bad zone or hour raises
    ValidationError and changes nothing.
    """
    unknown = set(changes) - set(SCHEDULE_FIELDS)
    if unknown:
        raise TypeError(f"not schedule fields: {sorted(unknown)}")
    subscriber = _locked(subscriber)
    for name, value in changes.items():
        setattr(subscriber, name, value)
    problems = schedule.rhythm_problems(
        zone=subscriber.time_zone,
        hour=subscriber.delivery_hour,
        frequency=subscriber.frequency,
        weekday=subscriber.weekday,
        papers=subscriber.papers_per_email,
    )
    if problems:
        raise ValidationError(problems)
    # The next slot from now: a reader who moves their hour later today gets today's email
    # then unless they already had it (one per local day, by the delivery's period key).
    subscriber.next_due_at = schedule.next_slot(subscriber.rhythm, timezone.now())
    subscriber.save(update_fields=[*SCHEDULE_FIELDS, "next_due_at"])
    return subscriber


@transaction.atomic
def subscriber_unsubscribe(*, subscriber: Subscriber) -> bool:
    """Stop all mail to this subscriber; True if this call changed anything.

    Repeating it (a second one-click POST, a retrying mailbox provider) changes nothing, the
    first timestamp included. A suppression is kept so an import cannot quietly re-add them.
    """
    now = timezone.now()
    changed = (
        Subscriber.objects.filter(pk=subscriber.pk)
        .exclude(status=Status.UNSUBSCRIBED)
        .update(status=Status.UNSUBSCRIBED, unsubscribed_at=now, paused_at=None)
    )
    _suppression_add(subscriber.email_hash, Suppression.Reason.UNSUBSCRIBED, now)
    return bool(changed)


def _suppression_add(address_hash: str, reason: str, now) -> None:
    # An existing entry keeps its reason: an unsubscribe must not soften a complaint.
    Suppression.objects.get_or_create(
        email_hash=address_hash, defaults={"reason": reason, "created_at": now}
    )


# Suppressions that mean the person asked to stop: their subscription ends with them, so the
# preference center and the signup form see an unsubscribed person, who may come back through a
# new double opt-in (as far as the reason allows: see Suppression.LIFTED_BY_CONFIRMATION).
ENDS_SUBSCRIPTION = frozenset({Suppression.Reason.UNSUBSCRIBED, Suppression.Reason.COMPLAINED})


@transaction.atomic
def subscriber_suppress(*, email: str, reason: str) -> None:
    """Stop mailing an address (bounce, complaint or unsubscribe webhook, an operator's block).

    Works for addresses Paperboy does not know (the entry then blocks a later signup). A
    stronger reason replaces "unsubscribed"/"erased", which a confirmation could lift. An
    unsubscribe or a complaint also ends the subscription (ENDS_SUBSCRIPTION); a bounce does
    not: the person asked for nothing, and the provider may take the address again.
    """
    if reason not in Suppression.Reason.values:
        raise ValueError(f"unknown suppression reason {reason!r}")
    address_hash = email_hash(email_normalize(email))
    now = timezone.now()
    if reason in ENDS_SUBSCRIPTION:
        Subscriber.objects.filter(email_hash=address_hash).exclude(
            status=Status.UNSUBSCRIBED
        ).update(status=Status.UNSUBSCRIBED, unsubscribed_at=now, paused_at=None)
    entry, created = Suppression.objects.select_for_update().get_or_create(
        email_hash=address_hash, defaults={"reason": reason, "created_at": now}
    )
    if (
        not created
        and entry.reason in Suppression.LIFTED_BY_CONFIRMATION
        and reason not in Suppression.LIFTED_BY_CONFIRMATION
    ):
        entry.reason = reason
        entry.created_at = now
        entry.save(update_fields=["reason", "created_at"])


@transaction.atomic
def subscriber_reactivate_at_provider(*, email: str) -> bool:
    """The provider takes mail for this address again (Postmark's SubscriptionChange with
    SuppressSending false, say): lift a bounce suppression, a fact only the provider knows.
    True if one was lifted.

    An unsubscribe, a complaint, an erasure or an operator's block stays: those were the
    person's (or the operator's) decision, and coming back takes the person's new double
    opt-in, never a provider's flag.
    """
    address_hash = email_hash(email_normalize(email))
    lifted, _ = Suppression.objects.filter(
        email_hash=address_hash, reason=Suppression.Reason.BOUNCED
    ).delete()
    return bool(lifted)


@transaction.atomic
def subscriber_erase(*, subscriber: Subscriber) -> None:
    """Delete the subscriber, their consent records, profile and feedback; keep only a hashed
    suppression.

    Delivery history in other apps goes with the row (their foreign keys cascade or null).
    """
    subscriber = _locked(subscriber)
    entry = Suppression.objects.select_for_update().filter(email_hash=subscriber.email_hash).first()
    if entry is None:
        Suppression.objects.create(
            email_hash=subscriber.email_hash,
            reason=Suppression.Reason.ERASED,
            created_at=timezone.now(),
        )
    elif entry.reason == Suppression.Reason.UNSUBSCRIBED:
        entry.reason = Suppression.Reason.ERASED
        entry.save(update_fields=["reason"])
    # The admin log names objects by their str() (the address): drop it from past entries.
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Subscriber), object_id=str(subscriber.pk)
    ).update(object_repr=ERASED_REPR.format(pk=subscriber.pk))
    subscriber.delete()


def subscriber_export(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything Paperboy holds about a subscriber, as JSON-able data."""
    data: dict[str, Any] = {
        "format": "paperboy-export/1",
        "exported_at": timezone.now().isoformat(),
        "profile": {
            "email": subscriber.email,
            "status": subscriber.status,
            "created_at": _iso(subscriber.created_at),
            "confirmed_at": _iso(subscriber.confirmed_at),
            "paused_at": _iso(subscriber.paused_at),
            "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        },
        "topics": [{"slug": t.slug, "name": t.name} for t in subscriber.topics.all()],
        "schedule": {
            **{name: getattr(subscriber, name) for name in SCHEDULE_FIELDS},
            "paused_until": subscriber.paused_until.isoformat()
            if subscriber.paused_until
            else None,
            "next_due_at": _iso(subscriber.next_due_at),
        },
        "personalization": _profile_export(subscriber),
        "feedback": [
            {
                "paper": f.paper.title,
                "arxiv_id": f.paper.arxiv_id,
                "value": "more like this" if f.value == Feedback.Value.MORE else "less like this",
                "created_at": _iso(f.created_at),
                "updated_at": _iso(f.updated_at),
            }
            for f in subscriber.feedback.select_related("paper")
        ],
        "consent_records": [
            {
                "source": c.source,
                "requested_at": _iso(c.requested_at),
                "confirmed_at": _iso(c.confirmed_at),
                "welcome_email_at": _iso(c.welcomed_at),
                "ip": c.ip,
                "user_agent": c.user_agent,
                "form_version": c.form_version,
                "form_text": CONSENT_TEXTS.get(c.form_version, ""),
                "topics": c.topics,
            }
            for c in subscriber.consents.all()
        ],
    }
    for name, fn in export_sections().items():
        data[name] = fn(subscriber)
    return data


def _profile_export(subscriber: Subscriber) -> dict[str, Any] | None:
    profile = Profile.objects.filter(subscriber=subscriber).first()
    if profile is None:
        return None
    return {
        "what_i_work_on": profile.interests,
        "follows": profile.follows,
        "muted_keywords": profile.muted,
        "focus": profile.focus,
        # The vector itself is only numbers derived from what_i_work_on; saying it exists is
        # what matters to the reader.
        "interest_vector_model": profile.vector_model or None,
        "updated_at": _iso(profile.updated_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


@transaction.atomic
def subscriber_purge_stale_pending() -> int:
    """Delete subscribers still pending PENDING_PURGE_AFTER_DAYS after their last request.

    Their suppression entries (if they had unsubscribed before) stay.
    """
    cutoff = timezone.now() - timedelta(days=settings.PENDING_PURGE_AFTER_DAYS)
    stale = list(
        Subscriber.objects.filter(status=Status.PENDING)
        .annotate(last_request=Coalesce(Max("consents__requested_at"), "created_at"))
        .filter(last_request__lt=cutoff)
        .values_list("pk", flat=True)
    )
    Subscriber.objects.filter(pk__in=stale).delete()
    return len(stale)
