"""The editor's curation screens for digests: topics, papers, and a day's batch.

Sending a batch (send now, cancel, preview as a subscriber) belongs to the newsletter app,
which extends DailyBatchAdmin in newsletter/admin.py: digests never imports newsletter.
Every write goes through digests.services; actions record what they did in the admin log.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from digests.models import BatchEntry, DailyBatch, IngestRun, Paper, PaperTopic, Topic
from digests.services import (
    batch_approve,
    batch_entries_reorder,
    batch_entry_set_flags,
    batch_ingest,
    paper_topics_lock,
    papers_retag_recent,
    papers_topics_unlock,
)
from digests.weekly import week_batch

RETAG_DAYS = 30
# The batch page shows its entries a page at a time and only the latest runs, so it renders
# in the same time at DIGEST_MAX_PAPERS_PER_BATCH as with a handful of papers.
ENTRIES_PER_PAGE = 50
ENTRIES_PAGE_PARAM = "entries_page"
RUNS_SHOWN = 10
MOVE_PARAM = "_move"  # "<entry id>:up" or ":down", from a row's buttons


# --- Topics ----------------------------------------------------------------------------------


class PhrasesField(forms.CharField):
    """The topic's phrases as one phrase per line: easier to edit than a JSON list."""

    widget = forms.Textarea(attrs={"rows": 8, "cols": 60})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        lines = (line.strip() for line in (value or "").splitlines())
        return list(dict.fromkeys(line for line in lines if line))


class TopicForm(forms.ModelForm):
    phrases = PhrasesField(
        required=False,
        help_text="One phrase per line, matched as whole words in title, keywords and abstract. "
        'After a change, run "Re-tag recent papers" to apply it.',
    )

    examples = PhrasesField(
        required=False,
        help_text='One per line, short phrases of what belongs, e.g. "legged locomotion". '
        "Compared by meaning, not matched as words.",
    )

    class Meta:
        model = Topic
        fields = ["name", "slug", "description", "examples", "phrases", "is_active", "position"]
        help_texts = {
            "description": "What belongs to the topic and what does not, as you would explain "
            "it to a colleague: automatic tagging compares each paper's meaning with it.",
        }


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    form = TopicForm
    list_display = ["name", "slug", "is_active", "position", "phrase_count", "paper_count"]
    list_editable = ["is_active", "position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "description", "phrases"]
    actions = ["retag_recent"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_papers=Count("paper_topics"))

    @admin.display(description="phrases")
    def phrase_count(self, topic: Topic) -> int:
        return len(topic.phrases) if isinstance(topic.phrases, list) else 0

    @admin.display(description="papers", ordering="_papers")
    def paper_count(self, topic: Topic) -> int:
        return topic._papers

    @admin.action(
        description=f"Re-tag papers of the last {RETAG_DAYS} days and count matches",
        permissions=["change"],
    )
    def retag_recent(self, request, queryset):
        # Tagging always uses every active topic (a partial run would drop the others' tags);
        # the counts shown are those of the selected topics.
        report = papers_retag_recent(days=RETAG_DAYS)
        selected = set(queryset.values_list("pk", flat=True))
        counts = ", ".join(
            f"{topic.name}: {count}"
            for topic, count in report.matches.items()
            if topic.pk in selected
        )
        summary = (
            f"Re-tagged {report.papers} papers of the last {RETAG_DAYS} days "
            f"({report.changes} tags added or removed; {report.locked} with editor's topics "
            f"left as they are). Papers per topic: {counts or 'none'}"
        )
        for topic in queryset:
            self.log_change(
                request, topic, f"Re-tagged recent papers: {report.matches.get(topic, 0)} match"
            )
        self.message_user(request, summary, messages.SUCCESS)


# --- Papers ----------------------------------------------------------------------------------


class PaperTopicForm(forms.ModelForm):
    reason = forms.CharField(required=False, max_length=200)

    class Meta:
        model = PaperTopic
        fields = ["topic", "reason"]

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"] or "set by an editor"


class PaperTopicInline(admin.TabularInline):
    model = PaperTopic
    form = PaperTopicForm
    extra = 1
    fields = ["topic", "reason", "is_manual"]
    readonly_fields = ["is_manual"]
    autocomplete_fields = ["topic"]


def upstream_links(paper: Paper) -> str:
    links = [
        (url, label)
        for label, url in (
            ("HF", paper.hf_url),
            ("arXiv", paper.arxiv_url),
            ("PDF", paper.pdf_url),
            ("Code", paper.code_url),
            ("Project", paper.project_url),
        )
        if url
    ]
    return format_html_join(
        " · ", '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', links
    )


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    """Upstream's fields are read-only (the next ingest would overwrite them); editors set
    topics. Once an editor changes a paper's topics here, they are the paper's topics: all
    become manual and the paper is locked, so no ingest or re-tag changes them again (until
    "Let automatic tagging manage topics again")."""

    list_display = [
        "arxiv_id",
        "title",
        "topic_list",
        "topics_locked",
        "upvotes",
        "links",
        "first_seen_at",
    ]
    search_fields = ["arxiv_id", "title"]
    list_filter = [
        "topics",
        "topics_locked",
        ("entries__batch__date", admin.DateFieldListFilter),
    ]
    actions = ["unlock_topics"]
    readonly_fields = [
        "links",
        *(f.name for f in Paper._meta.fields if f.name != "id"),
    ]
    inlines = [PaperTopicInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    def has_add_permission(self, request) -> bool:
        return False  # papers come from upstream

    @admin.display(description="topics")
    def topic_list(self, paper: Paper) -> str:
        return ", ".join(t.name for t in paper.topics.all())

    @admin.display(description="upstream")
    def links(self, paper: Paper) -> str:
        return upstream_links(paper)

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            if inline_form.has_changed() and not inline_form.cleaned_data.get("DELETE"):
                inline_form.instance.is_manual = True
        super().save_formset(request, form, formset, change)
        if formset.model is PaperTopic and formset.has_changed():
            # Added, edited or removed: the editor has decided this paper's topics.
            paper_topics_lock(paper=form.instance)

    @admin.action(description="Let automatic tagging manage topics again", permissions=["change"])
    def unlock_topics(self, request, queryset):
        papers = list(queryset)
        unlocked = papers_topics_unlock(papers=papers)
        for paper in papers:
            self.log_change(request, paper, "Topics handed back to automatic tagging")
        self.message_user(
            request,
            f"{len(papers)} paper(s) re-tagged automatically ({unlocked} had editor's topics).",
            messages.SUCCESS,
        )


# --- Batches ---------------------------------------------------------------------------------


class PagedInlineFormSet(forms.BaseInlineFormSet):
    """An inline formset over one page of its rows (Django's inlines show every row).

    The page number comes from the request (see PagedInlineMixin.get_formset); a POST goes
    back to the same URL, so it is bound to the same page of rows it was rendered with.
    """

    per_page = ENTRIES_PER_PAGE
    page_number: str | int = 1

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            paginator = Paginator(super().get_queryset(), self.per_page)
            self.page = paginator.get_page(self.page_number)
            self._queryset = self.page.object_list
        return self._queryset


class PagedInlineMixin:
    page_param = ""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        page = request.GET.get(self.page_param, 1) if self.page_param else 1
        return type(formset.__name__, (formset,), {"page_number": page})


# Each row's boxes named after its paper: the column headings alone do not say which paper a
# checkbox is for to a screen reader (or to a test that finds things by their labels).
ENTRY_FIELD_LABELS = {
    "rank": "Rank",
    "pinned": "Pin",
    "hidden": "Hide",
    "editor_note": "Editor's note",
}


class BatchEntryFormSet(PagedInlineFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        if form.instance.pk is None:
            return
        title = form.instance.paper.title[:80]
        for name, label in ENTRY_FIELD_LABELS.items():
            if name in form.fields:
                form.fields[name].widget.attrs["aria-label"] = f"{label}: {title}"

    def clean(self):
        super().clean()
        batch = self.instance
        if batch.status == DailyBatch.Status.SENT and any(f.has_changed() for f in self.forms):
            raise ValidationError("This batch was sent; its entries can no longer change.")
        shown = [f for f in self.forms if hasattr(f, "cleaned_data")]
        if (
            batch.status == DailyBatch.Status.APPROVED
            and all(f.cleaned_data.get("hidden") for f in shown)
            # Entries on other pages count too.
            and not batch.entries.filter(hidden=False)
            .exclude(pk__in=[f.instance.pk for f in shown])
            .exists()
        ):
            raise ValidationError("An approved batch must keep at least one visible paper.")


class BatchEntryInline(PagedInlineMixin, admin.TabularInline):
    model = BatchEntry
    formset = BatchEntryFormSet
    page_param = ENTRIES_PAGE_PARAM
    template = "admin/digests/dailybatch/entries_inline.html"
    extra = 0
    can_delete = False
    fields = [
        "rank",
        "move",
        "paper_title",
        "paper_topics",
        "upvotes_at_fetch",
        "pinned",
        "hidden",
        "editor_note",
    ]
    readonly_fields = ["move", "paper_title", "paper_topics", "upvotes_at_fetch"]
    # The list shows the batch's order itself (rank, 1 = first), so a row stays where it was
    # put; pinned papers are marked, not moved. A total order, so pages never overlap.
    ordering = ["rank", "pk"]
    formfield_overrides = {
        models.TextField: {"widget": forms.Textarea(attrs={"rows": 1, "cols": 30})}
    }
    verbose_name_plural = "Entries"

    def get_queryset(self, request):
        # The batch too: each row's title (its __str__) names the batch's date.
        return (
            super()
            .get_queryset(request)
            .select_related("paper", "batch")
            .prefetch_related("paper__topics")
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status == DailyBatch.Status.SENT:
            return False
        return super().has_change_permission(request, obj)

    def entries_movable(self, batch: DailyBatch) -> bool:
        return batch.status != DailyBatch.Status.SENT

    @admin.display(description="move")
    def move(self, entry: BatchEntry) -> str:
        # Submit buttons of the batch's form: without JavaScript a click saves the page and
        # moves the row one place (save_formset); with it, batch-order.js moves the row at once.
        if not self.entries_movable(entry.batch):
            return ""
        title = entry.paper.title[:80]
        return format_html(
            '<span class="pb-move">'
            '<button type="submit" name="{}" value="{}:up" class="pb-move-up" '
            'aria-label="Move up: {}" title="Move up">↑</button>'
            '<button type="submit" name="{}" value="{}:down" class="pb-move-down" '
            'aria-label="Move down: {}" title="Move down">↓</button></span>',
            MOVE_PARAM,
            entry.pk,
            title,
            MOVE_PARAM,
            entry.pk,
            title,
        )

    @admin.display(description="paper")
    def paper_title(self, entry: BatchEntry) -> str:
        url = reverse("admin:digests_paper_change", args=[entry.paper_id])
        return format_html(
            '<a href="{}">{}</a><br><small>{} · {}</small>',
            url,
            entry.paper.title,
            entry.paper.arxiv_id,
            upstream_links(entry.paper),
        )

    @admin.display(description="topics")
    def paper_topics(self, entry: BatchEntry) -> str:
        return ", ".join(t.name for t in entry.paper.topics.all())


class LatestRunsFormSet(PagedInlineFormSet):
    per_page = RUNS_SHOWN


class IngestRunInline(PagedInlineMixin, admin.TabularInline):
    model = IngestRun
    formset = LatestRunsFormSet
    template = "admin/digests/dailybatch/runs_inline.html"
    extra = 0
    fields = ["started_at", "source", "ok", "item_count", "new_count", "error_count", "error"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False
    verbose_name_plural = f"Ingest runs (the latest {RUNS_SHOWN})"

    def get_queryset(self, request):
        # Raw responses are what makes a run heavy; the run's own page shows them.
        return super().get_queryset(request).select_related("batch").defer("raw_payload")

    def has_add_permission(self, request, obj=None):
        return False


def _tie_break(new: int, old: int) -> int:
    """Where a moved entry goes among the entries already at the rank typed for it: before
    them when it moved up, after them when it moved down. So the position typed (or dragged
    to) is the position it gets: moving 5 to 2 puts it 2nd, moving 2 to 5 puts it 5th."""
    return -1 if new < old else 1 if new > old else 0


def _moved(order: list[int], move: str) -> list[int]:
    """`order` with the entry named by a row's button ("<id>:up" / "<id>:down") one place on."""
    pk, _, direction = move.partition(":")
    if not pk.isdigit() or int(pk) not in order or direction not in ("up", "down"):
        return order
    at = order.index(int(pk))
    to = at - 1 if direction == "up" else at + 1
    if 0 <= to < len(order):
        order[at], order[to] = order[to], order[at]
    return order


@admin.register(DailyBatch)
class DailyBatchAdmin(admin.ModelAdmin):
    list_display = [
        "date",
        "kind",
        "status",
        "paper_count",
        "visible_count",
        "pinned_count",
        "hidden_count",
        "source",
        "fetched_at",
        "approved_by",
    ]
    list_filter = ["kind", "status", "source"]
    date_hierarchy = "date"
    actions = ["approve", "refetch", "compose_week"]
    readonly_fields = [
        "date",
        "kind",
        "status",
        "source",
        "fetched_at",
        "entry_count",
        "new_count",
        "updated_count",
        "skipped_count",
        "error_count",
        "error",
        "approved_at",
        "approved_by",
        "reordered_at",
        "created_at",
    ]
    inlines = [BatchEntryInline, IngestRunInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("approved_by")
            .annotate(
                _papers=Count("entries"),
                _visible=Count("entries", filter=Q(entries__hidden=False)),
                _pinned=Count("entries", filter=Q(entries__pinned=True, entries__hidden=False)),
                _hidden=Count("entries", filter=Q(entries__hidden=True)),
            )
        )

    def has_add_permission(self, request) -> bool:
        return False  # a day's batch comes from an ingest ("Re-fetch from upstream")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/approve/", view(self.approve_view), name="digests_dailybatch_approve"),
            path("<int:pk>/refetch/", view(self.refetch_view), name="digests_dailybatch_refetch"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_curate": self.has_change_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def response_change(self, request, obj):
        if MOVE_PARAM in request.POST:
            # A row's up/down button: back to the same page of entries, moved.
            self.message_user(request, "Moved. The new order is saved.", messages.SUCCESS)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)

    def _batch_button_view(self, request, pk: int, run) -> HttpResponseRedirect:
        """A POST from one of the batch page's buttons: run it on the batch, then back."""
        batch = get_object_or_404(DailyBatch, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, batch):
            raise PermissionDenied
        run(request, DailyBatch.objects.filter(pk=batch.pk))
        return HttpResponseRedirect(reverse("admin:digests_dailybatch_change", args=[batch.pk]))

    def approve_view(self, request, pk: int):
        return self._batch_button_view(request, pk, self.approve)

    def refetch_view(self, request, pk: int):
        return self._batch_button_view(request, pk, self.refetch)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # an issue refers to its batch; history stays

    @admin.display(description="papers", ordering="_papers")
    def paper_count(self, batch: DailyBatch) -> int:
        return batch._papers

    @admin.display(description="visible", ordering="_visible")
    def visible_count(self, batch: DailyBatch) -> int:
        return batch._visible

    @admin.display(description="pinned", ordering="_pinned")
    def pinned_count(self, batch: DailyBatch) -> int:
        return batch._pinned

    @admin.display(description="hidden", ordering="_hidden")
    def hidden_count(self, batch: DailyBatch) -> int:
        return batch._hidden

    def save_formset(self, request, form, formset, change):
        if formset.model is not BatchEntry:
            return super().save_formset(request, form, formset, change)
        # Through the services rather than formset.save(), so the rules (a sent batch is
        # frozen, ranks stay 1..n, the order survives a re-fetch) hold here as everywhere.
        batch = form.instance
        # Every entry, in one query: the formset holds one page of them, and the order of
        # the others decides where a retyped rank lands.
        entries = {entry.pk: entry for entry in BatchEntry.objects.filter(batch=batch)}
        ranks = {pk: (entry.rank, 0, entry.rank, pk) for pk, entry in entries.items()}
        changed = []
        for entry_form in formset.forms:
            entry = entries.get(entry_form.instance.pk)
            if entry is None:
                continue  # gone since the page was shown
            data = entry_form.cleaned_data
            new = data.get("rank", entry.rank)
            ranks[entry.pk] = (new, _tie_break(new, entry.rank), entry.rank, entry.pk)
            if not entry_form.has_changed():
                continue
            batch_entry_set_flags(
                entry=entry,
                pinned=data.get("pinned"),
                hidden=data.get("hidden"),
                editor_note=data.get("editor_note"),
            )
            changed.append((entry_form.instance, entry_form.changed_data))
        order = [pk for *_, pk in sorted(ranks.values())]
        order = _moved(order, request.POST.get(MOVE_PARAM, ""))
        if order != [pk for *_, pk in sorted((e.rank, e.pk) for e in entries.values())]:
            # The typed ranks and a row's up/down decide the order.
            batch_entries_reorder(batch=batch, entry_ids=order)
        # What construct_change_message reads to write the admin log entry.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], changed, []

    @admin.action(description="Approve selected draft batches", permissions=["change"])
    def approve(self, request, queryset):
        for batch in queryset:
            try:
                batch_approve(batch=batch, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{batch.date}: {exc.messages[0]}", messages.WARNING)
            else:
                self.log_change(request, batch, "Approved")
                self.message_user(request, f"{batch.date}: approved", messages.SUCCESS)

    @admin.action(
        description="Make the weekly batch of the week to the selected day", permissions=["change"]
    )
    def compose_week(self, request, queryset):
        # The due tick composes it when the first weekly reader's slot comes; an editor who
        # wants to curate or send the week before that makes it here (it is made once).
        for batch in queryset:
            if batch.is_weekly or batch.status not in (
                DailyBatch.Status.APPROVED,
                DailyBatch.Status.SENT,
            ):
                note = "choose an approved day: a week is made to an approved daily batch"
                self.message_user(request, f"{batch}: {note}", messages.WARNING)
                continue
            week = week_batch(end=batch)
            self.log_change(request, week, f"Composed from the week to {batch.date}")
            self.message_user(
                request, f"{week}: {week.entry_count} papers of the week", messages.SUCCESS
            )

    @admin.action(description="Re-fetch selected days from upstream", permissions=["change"])
    def refetch(self, request, queryset):
        # Synchronous on purpose: the editor waits for the answer (the HTTP client has
        # timeouts and a bounded number of retries).
        for batch in queryset:
            if batch.is_weekly:
                note = "is composed from the week's daily batches: re-fetch those days"
                self.message_user(request, f"{batch}: {note}", messages.WARNING)
                continue
            report = batch_ingest(day=batch.date)
            self.log_change(request, batch, f"Re-fetched: {report.summary()}")
            level = messages.ERROR if report.failed else messages.SUCCESS
            self.message_user(request, report.summary(), level)


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    list_display = ["batch", "source", "started_at", "ok", "item_count", "error_count"]
    list_filter = ["ok", "source"]
    list_select_related = ["batch"]
    readonly_fields = [f.name for f in IngestRun._meta.fields]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            return queryset.defer("raw_payload")  # up to 100 rows of raw responses otherwise
        return queryset

    def has_add_permission(self, request):
        return False
