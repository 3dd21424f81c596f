from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower


class Subscriber(models.Model):
    """One email address and what its owner wants from Paperboy.

    Rows change only through subscriptions.services; the status and the timestamps tell the
    story of the subscription (who may be mailed is subscriptions.selectors.subscribers_sendable).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    # Signed links carry this random key, never the row id: SQLite may hand a deleted row's id
    # to the next insert, and an old link must not reach a different person.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(max_length=254, help_text="Normalized: IDNA domain, lower case.")
    # SHA-256 of the normalized address: what Suppression rows are matched against.
    email_hash = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    topics = models.ManyToManyField("digests.Topic", related_name="subscribers", blank=True)

    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # When the signup form last caused a mail to this address (a confirmation or an "already
    # subscribed" note); at most one per SIGNUP_EMAIL_INTERVAL_SECONDS.
    form_email_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.email


class ConsentRecord(models.Model):
    """One request to subscribe: what the person saw and when they asked and confirmed.

    A confirmation link names the record it confirms, so a link from an earlier round (before
    an unsubscribe) cannot confirm a later request.
    """

    class Source(models.TextChoices):
        FORM = "form", "Signup form"
        IMPORT = "import", "Imported by an operator"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="consents")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FORM)
    requested_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    form_version = models.CharField(max_length=32)
    topics = models.JSONField(default=list, help_text="Topic slugs chosen on the form.")
    # For imports: where and how the person gave consent, as the operator stated it.
    note = models.CharField(max_length=300, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.source} consent {self.form_version} at {self.requested_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    """An address that must not be mailed (or must not be re-added without a new confirmation).

    Only a hash of the normalized address is kept, so an erased person's address is not stored,
    yet an import or a bounce for the same address is still recognised.
    """

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        ERASED = "erased", "Erased on request"
        BOUNCED = "bounced", "Hard bounce"
        COMPLAINED = "complained", "Spam complaint"
        MANUAL = "manual", "Suppressed by an operator"

    # A fresh double opt-in lifts these: the person proved they own the mailbox and asked again.
    # The others stop even confirmation mail (a bounce or a complaint must not be retried).
    LIFTED_BY_CONFIRMATION = frozenset({Reason.UNSUBSCRIBED, Reason.ERASED})

    email_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.email_hash[:12]}…"
