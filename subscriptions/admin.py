from __future__ import annotations

from django.contrib import admin, messages

from subscriptions import services
from subscriptions.models import ConsentRecord, Subscriber, Suppression


class ConsentInline(admin.TabularInline):
    model = ConsentRecord
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in ConsentRecord._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    """Read-only: every change goes through a service (so suppressions and consent stay right)."""

    list_display = ["email", "status", "created_at", "confirmed_at"]
    list_filter = ["status", "topics"]
    search_fields = ["email"]
    date_hierarchy = "created_at"
    inlines = [ConsentInline]
    actions = ["unsubscribe", "erase"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A plain delete would leave no suppression behind; "erase" does it properly.
        return False

    def get_actions(self, request):
        # The action checkboxes need these even though plain change/delete are off.
        actions = super().get_actions(request)
        return actions if request.user.has_perm("subscriptions.change_subscriber") else {}

    @admin.action(description="Unsubscribe selected subscribers")
    def unsubscribe(self, request, queryset) -> None:
        count = sum(services.subscriber_unsubscribe(subscriber=s) for s in queryset)
        self.message_user(request, f"Unsubscribed {count}.", messages.SUCCESS)

    @admin.action(description="Erase selected subscribers (keeps a hashed suppression)")
    def erase(self, request, queryset) -> None:
        subscribers = list(queryset)
        for subscriber in subscribers:
            services.subscriber_erase(subscriber=subscriber)
        self.message_user(request, f"Erased {len(subscribers)}.", messages.SUCCESS)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email_hash", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email_hash"]

    def has_add_permission(self, request) -> bool:
        return False  # suppress through subscriber_suppress, which hashes the address

    def has_change_permission(self, request, obj=None) -> bool:
        return False
