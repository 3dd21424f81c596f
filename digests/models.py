from __future__ import annotations

from django.conf import settings
from django.db import models


class Topic(models.Model):
    """A research area subscribers follow and papers are tagged with."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    phrases = models.JSONField(
        default=list,
        blank=True,
        help_text="Phrases matched as whole words, case-insensitively, in title, abstract and "
        "upstream keywords.",
    )
    examples = models.JSONField(
        default=list,
        blank=True,
        help_text='Short phrases of what belongs to the topic, e.g. "legged locomotion": '
        "automatic tagging compares each paper's meaning with them (they are not matched as "
        "words).",
    )
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order on the signup form.")

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class TextVector(models.Model):
    """The vector of a short text the tagging compares papers with (a topic's description,
    phrases and examples), kept by text and model.

    Loading the embedding model costs a process about 80 MB resident, more than a worker's
    whole send; the planner and the due tick need only these few hundred vectors (papers carry
    their own), so they read them here and never load the model. Whoever first needs a text's
    vector computes and keeps it (digests/text_vectors.py); a topic edited gets new texts, so
    new rows, and a new model name never meets the old vectors."""

    model = models.CharField(max_length=80)
    text_sha256 = models.CharField(max_length=64)
    vector = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "text_sha256"], name="textvector_model_text")
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.text_sha256[:12]}"


class Paper(models.Model):
    """One research paper, stored once however many days it trends.

    Text fields hold plain text (cleaned on ingest, see digests/text.py); templates escape it.
    """

    arxiv_id = models.CharField(
        max_length=40, unique=True, help_text="arXiv id without its version, e.g. 2503.02130."
    )
    arxiv_version = models.PositiveSmallIntegerField(null=True, blank=True)
    title = models.CharField(max_length=300)
    abstract = models.TextField(blank=True)
    authors = models.JSONField(default=list, blank=True, help_text="Author names, in order.")
    published_at = models.DateTimeField(null=True, blank=True)
    hf_url = models.URLField(max_length=500, blank=True)
    arxiv_url = models.URLField(max_length=500, blank=True)
    pdf_url = models.URLField(max_length=500, blank=True)
    project_url = models.URLField(max_length=500, blank=True)
    code_url = models.URLField(max_length=500, blank=True)
    thumbnail_url = models.URLField(max_length=500, blank=True)
    upvotes = models.PositiveIntegerField(default=0)
    comment_count = models.PositiveIntegerField(default=0)
    ai_summary = models.TextField(blank=True)
    ai_keywords = models.JSONField(default=list, blank=True)
    organization = models.CharField(
        max_length=200, blank=True, help_text="The organization upstream credits, if any."
    )
    # The paper's meaning (digests.embedding): DIMS float32 values, computed once at ingest.
    # embedding_model names the model, so vectors of two models are never compared.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=80, blank=True, editable=False)
    # Set when an editor changes the paper's topics in admin: from then on automatic tagging
    # leaves this paper alone, so the editor's correction wins over every later ingest.
    topics_locked = models.BooleanField(
        default=False,
        help_text="Topics were corrected by an editor; automatic tagging leaves them alone.",
    )
    topics = models.ManyToManyField(Topic, through="PaperTopic", related_name="papers", blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-first_seen_at", "arxiv_id"]

    def __str__(self) -> str:
        return f"{self.arxiv_id} {self.title[:60]}"


class PaperTopic(models.Model):
    """Why a paper carries a topic. Automatic tags are recomputed on every ingest; manual ones
    (set by an editor) are left alone."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="paper_topics")
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="paper_topics")
    reason = models.CharField(max_length=200, help_text='e.g. title matched "diffusion"')
    is_manual = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["paper", "topic"], name="paper_topic_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.paper.arxiv_id} -> {self.topic.slug}"


class BatchQuerySet(models.QuerySet):
    def daily(self) -> BatchQuerySet:
        """Upstream's days only: what ingest fills, the archive shows and the day's send sends."""
        return self.filter(kind=DailyBatch.Kind.DAILY)


class DailyBatch(models.Model):
    """The papers that trended on one day: what editors curate and the newsletter sends.

    A weekly batch (kind "weekly") is the week to its date: the visible papers of the approved
    daily batches of those seven days, composed once by digests.weekly for the readers who
    chose a weekly email, and sent as an issue of its own.
    """

    class Kind(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        APPROVED = "approved", "Approved"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        EMPTY = "empty", "Empty"

    date = models.DateField(
        help_text="The day upstream trended the papers; a weekly batch's last day."
    )
    kind = models.CharField(
        max_length=6, choices=Kind.choices, default=Kind.DAILY, db_default=Kind.DAILY
    )
    source = models.CharField(max_length=20, blank=True, help_text="Source of the last fetch.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    fetched_at = models.DateTimeField(null=True, blank=True)
    # Counts from the last ingest run (entry_count is the batch's size after it).
    entry_count = models.PositiveIntegerField(default=0)
    new_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="What went wrong in the last run, if anything.")
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approved_batches",
    )
    intro = models.TextField(
        "editorial intro",
        blank=True,
        # A database default too: code of older migrations (and their tests) creates batches
        # without knowing this column.
        db_default="",
        max_length=4000,
        help_text="A few paragraphs shown above the papers, in the email and the archive. "
        "A blank line starts a paragraph; **bold**, *emphasis* and [a link](https://…) work, "
        "anything else shows as typed.",
    )
    # Set when an editor reorders the entries: from then on a re-fetch keeps their order.
    reordered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "kind"]
        verbose_name_plural = "daily batches"
        constraints = [
            models.UniqueConstraint(fields=["date", "kind"], name="one_batch_per_day_and_kind"),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.WEEKLY:
            return f"Week to {self.date} ({self.status})"
        return f"{self.date} ({self.status})"

    @property
    def is_weekly(self) -> bool:
        return self.kind == self.Kind.WEEKLY


class BatchEntry(models.Model):
    batch = models.ForeignKey(DailyBatch, on_delete=models.CASCADE, related_name="entries")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="entries")
    rank = models.PositiveIntegerField(
        help_text="Position in the batch, 1 = first: upstream's order until an editor reorders."
    )
    upvotes_at_fetch = models.PositiveIntegerField(default=0)
    pinned = models.BooleanField(
        default=False,
        help_text="Sent to every subscriber, even those whose topics it does not match (not to "
        "those who muted its words or got it before), at the top of their digest; pinned papers "
        "keep the order of this list.",
    )
    hidden = models.BooleanField(default=False, help_text="Never sent, not in the archive.")
    editor_note = models.TextField(
        blank=True,
        max_length=1000,
        help_text='Shown under the paper in the email and the archive as "Editor\'s note: …".',
    )

    class Meta:
        ordering = ["-pinned", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "paper"], name="batch_entry_unique"),
        ]
        verbose_name_plural = "batch entries"

    def __str__(self) -> str:
        return f"{self.batch.date} #{self.rank} {self.paper.arxiv_id}"


class IngestRun(models.Model):
    """One fetch of one day from one source, kept verbatim for audit."""

    batch = models.ForeignKey(DailyBatch, on_delete=models.CASCADE, related_name="runs")
    source = models.CharField(max_length=20)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField(default=False)
    item_count = models.PositiveIntegerField(default=0)
    new_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Bodies are kept as decoded, less the NUL and control characters PostgreSQL refuses (the
    # run's error says how many); a binary body is not kept, only its size.
    raw_payload = models.JSONField(
        default=list,
        blank=True,
        help_text="Each response as received: [{url, status, body}], body verbatim text.",
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.batch.date} {self.source} {'ok' if self.ok else 'failed'}"
