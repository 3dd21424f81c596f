"""Plain admin for digests; the editor's curation screens come with a later issue."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from digests.models import BatchEntry, DailyBatch, IngestRun, Paper, PaperTopic, Topic
from digests.services import batch_approve


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "position"]
    list_editable = ["is_active", "position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "description"]


class PaperTopicInline(admin.TabularInline):
    model = PaperTopic
    extra = 0
    fields = ["topic", "reason", "is_manual"]


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ["arxiv_id", "title", "upvotes", "first_seen_at", "updated_at"]
    search_fields = ["arxiv_id", "title"]
    list_filter = ["topics"]
    readonly_fields = ["first_seen_at", "updated_at"]
    inlines = [PaperTopicInline]


class BatchEntryInline(admin.TabularInline):
    model = BatchEntry
    extra = 0
    fields = ["rank", "paper", "upvotes_at_fetch", "pinned", "hidden", "editor_note"]
    readonly_fields = ["rank", "paper", "upvotes_at_fetch"]
    ordering = ["-pinned", "rank"]

    def has_add_permission(self, request, obj=None):
        return False


class IngestRunInline(admin.TabularInline):
    model = IngestRun
    extra = 0
    fields = ["started_at", "source", "ok", "item_count", "new_count", "error_count", "error"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DailyBatch)
class DailyBatchAdmin(admin.ModelAdmin):
    list_display = [
        "date",
        "status",
        "source",
        "entry_count",
        "new_count",
        "updated_count",
        "error_count",
        "fetched_at",
    ]
    list_filter = ["status", "source"]
    date_hierarchy = "date"
    actions = ["approve"]
    readonly_fields = [
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
        "created_at",
    ]
    inlines = [BatchEntryInline, IngestRunInline]

    @admin.action(description="Approve selected draft batches")
    def approve(self, request, queryset):
        for batch in queryset:
            try:
                batch_approve(batch=batch, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{batch.date}: {exc.messages[0]}", messages.WARNING)
            else:
                self.message_user(request, f"{batch.date}: approved", messages.SUCCESS)


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    list_display = ["batch", "source", "started_at", "ok", "item_count", "error_count"]
    list_filter = ["ok", "source"]
    readonly_fields = [f.name for f in IngestRun._meta.fields]

    def has_add_permission(self, request):
        return False
