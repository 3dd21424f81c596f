from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower

from subscriptions import schedule


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

    # The reader's rhythm (subscriptions.schedule). Written by subscriber_update_schedule.
    class Frequency(models.TextChoices):
        WEEKDAYS = schedule.WEEKDAYS, "Every weekday (Monday to Friday)"
        EVERY_DAY = schedule.EVERY_DAY, "Every day with new papers"
        WEEKLY = schedule.WEEKLY, "Once a week"

    # Database defaults too: rows written by code that predates these columns (a rolling
    # deploy, an old migration's model) get today's rhythm rather than failing.
    time_zone = models.CharField(
        max_length=64, default=schedule.DEFAULT_ZONE, db_default=schedule.DEFAULT_ZONE
    )
    delivery_hour = models.PositiveSmallIntegerField(
        default=schedule.DEFAULT_HOUR, db_default=schedule.DEFAULT_HOUR
    )
    frequency = models.CharField(
        max_length=16,
        choices=Frequency.choices,
        default=Frequency.WEEKDAYS,
        db_default=schedule.WEEKDAYS,
    )
    weekday = models.PositiveSmallIntegerField(
        default=0, db_default=0, help_text="Monday = 0 (weekly only)."
    )
    papers_per_email = models.PositiveSmallIntegerField(default=10, db_default=10)
    paused_until = models.DateField(null=True, blank=True)
    top_when_empty = models.BooleanField(
        default=False,
        db_default=False,
        help_text="On a day with nothing for them, send the day's top papers.",
    )
    # The next slot, in UTC: what "who is due now" reads, through subscriber_due_idx.
    next_due_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(delivery_hour__lte=23), name="subscriber_hour_range"
            ),
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="subscriber_weekday"),
            models.CheckConstraint(
                condition=models.Q(papers_per_email__in=schedule.PAPERS_CHOICES),
                name="subscriber_papers_choice",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            # Only active readers: the due query's cost follows who is due, not who is not.
            models.Index(
                fields=["next_due_at"],
                condition=models.Q(status="active"),
                name="subscriber_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def rhythm(self) -> schedule.Rhythm:
        return schedule.Rhythm(
            zone=self.time_zone,
            hour=self.delivery_hour,
            frequency=self.frequency,
            weekday=self.weekday,
            paused_until=self.paused_until,
        )


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
    # When the welcome email for this confirmation was claimed: one welcome per confirmed
    # request, however often the task runs (a redelivered task, a second click).
    welcomed_at = models.DateTimeField(null=True, blank=True, editable=False)

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


class Profile(models.Model):
    """What a subscriber told us beyond topics, and what their 👍/👎 taught us.

    Written only by subscriptions.profiles. Topics stay on Subscriber.topics.
    """

    INTERESTS_MAX = 500
    FOLLOWS_MAX = 20
    FOLLOW_LENGTH_MAX = 100
    MUTED_MAX = 30
    MUTED_LENGTH_MAX = 100
    FEEDBACK_KEPT = 50
    FOCUS_DEFAULT = 25

    subscriber = models.OneToOneField(Subscriber, on_delete=models.CASCADE, related_name="profile")
    interests = models.TextField(
        blank=True, max_length=INTERESTS_MAX, help_text="“What I work on”, in their own words."
    )
    # The embedding of `interests` (float32, digests.embedding), and the model it came from: a
    # vector from another model is not comparable with today's paper vectors.
    interest_vector = models.BinaryField(null=True, blank=True, editable=False)
    vector_model = models.CharField(max_length=100, blank=True, editable=False)
    follows = models.JSONField(
        default=list, blank=True, help_text="Author or organization names, as typed."
    )
    muted = models.JSONField(default=list, blank=True, help_text="Keywords never to show.")
    # 0 = "just my field" (personal relevance only) .. 100 = "what's hot" (upvotes only).
    focus = models.PositiveSmallIntegerField(default=FOCUS_DEFAULT)
    # Paper ids, most recent first, at most FEEDBACK_KEPT each: a copy of the Feedback rows the
    # daily ranking reads with the profile, so it never aggregates the feedback table.
    liked_ids = models.JSONField(default=list, blank=True, editable=False)
    disliked_ids = models.JSONField(default=list, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(focus__lte=100), name="profile_focus_range"),
        ]

    def __str__(self) -> str:
        return f"profile of subscriber #{self.subscriber_id}"


class Feedback(models.Model):
    """One 👍 or 👎 a subscriber gave a paper; giving the other one replaces it."""

    class Value(models.IntegerChoices):
        MORE = 1, "More like this"
        LESS = -1, "Less like this"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="feedback")
    paper = models.ForeignKey("digests.Paper", on_delete=models.CASCADE, related_name="feedback")
    value = models.SmallIntegerField(choices=Value.choices)
    created_at = models.DateTimeField()
    # When the value was last set: what "most recent first" means.
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="feedback_once_per_paper"),
            models.CheckConstraint(condition=models.Q(value__in=[1, -1]), name="feedback_value"),
        ]
        indexes = [models.Index(fields=["subscriber", "value", "-updated_at"])]

    def __str__(self) -> str:
        return f"{self.get_value_display()}: paper #{self.paper_id}"
