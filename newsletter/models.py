from __future__ import annotations

from django.db import models


class Issue(models.Model):
    """The digest of one day's batch: created once, sent once."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    batch = models.OneToOneField(
        "digests.DailyBatch", on_delete=models.PROTECT, related_name="issue"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when the send rate's hourly or daily budget (or a long provider pause) is used up:
    # the pending rows wait, in order, until then, and the sweeper does not take them for
    # lost before it; it enqueues them again after.
    send_waiting_until = models.DateTimeField(null=True, blank=True)
    # Counts at creation; live per-status counts come from issue_stats().
    recipient_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    content_count = models.PositiveIntegerField(
        default=0, help_text="Distinct email bodies (subscribers with the same papers share one)."
    )

    class Meta:
        ordering = ["-batch__date"]

    def __str__(self) -> str:
        if self.batch.is_weekly:
            return f"Weekly digest to {self.batch.date:%Y-%m-%d}"
        return f"Digest of {self.batch.date:%Y-%m-%d}"


class Delivery(models.Model):
    """One subscriber's copy of one issue. The unit of "exactly once"."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        # The provider may have accepted it and cannot say yet (its message search is down):
        # counted as possibly sent, settled when the provider answers, never retried blindly.
        UNKNOWN = "unknown", "Unknown"
        FAILED = "failed", "Failed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        SKIPPED = "skipped", "Skipped"

    # Neither foreign key has an index of its own: the claim index starts with the issue, the
    # unique (subscriber, issue) index with the subscriber, and every index of a row is
    # written again at each of its status changes.
    issue = models.ForeignKey(
        Issue, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # Kept (without the person) when a subscriber is erased, so issue statistics stay right.
    subscriber = models.ForeignKey(
        "subscriptions.Subscriber",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # What this subscriber gets: the key of the issue's IssueContent (empty when skipped).
    # Subscribers with the same key share one rendered body.
    content_key = models.CharField(max_length=40, blank=True)
    # The reader's period this row serves (their local date, subscriptions.schedule.period_key)
    # when the due tick wrote it; empty for an editor's "Send now". One row per reader and
    # period: a tick run again after a crash, or a newer batch approved meanwhile, finds the
    # period taken and sends nothing more.
    period = models.CharField(max_length=10, blank=True, default="", db_default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # Set when a worker claims the row; a row left in "sending" past its lease is reconciled
    # with the provider by the sweeper (claim identifies the provider call).
    claim = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # When the row was last handed to the provider in a call whose answer is not recorded yet:
    # that call may have been accepted. Cleared when the provider certainly did not take it
    # (it answered 429/5xx), so a retry of the claim knows whether it must ask first.
    handed_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=128, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "issue"], name="one_delivery_per_issue_and_subscriber"
            ),
            models.UniqueConstraint(
                fields=["subscriber", "period"],
                condition=~models.Q(period=""),
                name="one_delivery_per_subscriber_and_period",
            ),
        ]
        indexes = [
            models.Index(fields=["issue", "status", "content_key"], name="delivery_claim_idx"),
            # Only the rows being sent or whose outcome is unknown, a few thousand at most: a
            # claim's rows, and the sweeper's look for leases run out and for unknown rows.
            models.Index(
                fields=["claim", "claimed_at"],
                condition=models.Q(status__in=["sending", "unknown"]),
                name="delivery_unsettled_idx",
            ),
            # Rows get a message id when sent; claiming a row then writes no entry here.
            models.Index(
                fields=["provider_message_id"],
                condition=~models.Q(provider_message_id=""),
                name="delivery_message_id_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.status})"


class IssueContent(models.Model):
    """One distinct email of an issue: its papers, stored once for all who get it.

    A million subscribers share a few thousand contents. Kept on each Delivery, the selection
    was two thirds of the row, and every claim and status write copies the whole row.
    """

    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="contents")
    # A hash of the selection (newsletter.ranking.content_key): the same in any issue.
    key = models.CharField(max_length=40)
    # [[paper_id, [matched topic ids]], ...] in ranked order.
    selection = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issue", "key"], name="one_content_per_issue_and_key")
        ]

    def __str__(self) -> str:
        return f"Content {self.key[:8]} of issue {self.issue_id}"


class TrackingEvent(models.Model):
    """A provider webhook event, stored once (event_key is unique) and applied once."""

    event_key = models.CharField(max_length=200, unique=True)
    event_type = models.CharField(max_length=20)
    # No address is stored here: an erased subscriber must leave nothing personal behind.
    provider_message_id = models.CharField(max_length=128, blank=True)
    delivery = models.ForeignKey(
        Delivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    description = models.TextField(blank=True)
    # Anymail's normalized reason of a bounce or complaint ("invalid", "blocked", "spam", ...).
    reject_reason = models.CharField(max_length=20, blank=True)
    # The link a click was on, with the personal token of our own links replaced
    # (services.tracking.click_url_without_tokens): it counts clicks per link, it must not let
    # anyone act as the reader.
    click_url = models.CharField(max_length=2000, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_key}"


class TickMark(models.Model):
    """How far the due tick got: one row. Readers due before `covered_until` were all looked
    at against `batch`; while that is still the latest approved batch, a tick reads only the
    readers who became due since, so readers waiting for a batch (their slot came, nothing new
    was approved) are not read again every few minutes. A newer batch resets it."""

    batch = models.ForeignKey(
        "digests.DailyBatch", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    covered_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Tick covered until {self.covered_until}"
