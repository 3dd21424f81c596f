from __future__ import annotations

import io

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from digests.models import Topic
from subscriptions import csv_io, services
from subscriptions.models import ConsentRecord, Subscriber, Suppression


class ConsentInline(admin.TabularInline):
    model = ConsentRecord
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in ConsentRecord._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SubscriberImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text='UTF-8, first row naming the columns: "email", and optionally "topics" '
        '(topic names or slugs separated by ";", listed below). An export from this page can be '
        "imported again.",
    )
    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.filter(is_active=True),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="For rows without topics of their own.",
    )
    mode = forms.ChoiceField(
        label="Consent",
        widget=forms.RadioSelect,
        choices=[
            (
                csv_io.IMPORT_CONFIRM,
                "Send each new address a confirmation email; they are subscribed once they confirm",
            ),
            (
                csv_io.IMPORT_CONSENTED,
                "They already gave consent elsewhere (recorded as an import, with the note below)",
            ),
        ],
        initial=csv_io.IMPORT_CONFIRM,
    )
    consent_note = forms.CharField(
        label="Where consent was given",
        required=False,
        max_length=300,
        help_text='e.g. "Signup sheet at the ML reading group, 2026-11-20". Required when '
        "they already consented; kept on each consent record.",
    )

    def clean(self):
        data = super().clean()
        if data.get("mode") == csv_io.IMPORT_CONSENTED and not data.get("consent_note"):
            self.add_error("consent_note", "Say where these people gave their consent.")
        return data


class ConsentSourceFilter(admin.SimpleListFilter):
    title = "consent source"
    parameter_name = "consent"

    def lookups(self, request, model_admin):
        return ConsentRecord.Source.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(consents__source=self.value()).distinct()
        return queryset


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    """Read-only: every change goes through a service (so suppressions and consent stay right).

    Import needs the "add subscriber" permission, the actions "change subscriber".
    """

    list_display = ["email", "status", "topic_list", "created_at", "confirmed_at"]
    list_filter = [
        "status",
        "topics",
        ("created_at", admin.DateFieldListFilter),
        ConsentSourceFilter,
    ]
    search_fields = ["email"]
    date_hierarchy = "created_at"
    inlines = [ConsentInline]
    actions = ["resend_confirmation", "export_csv", "unsubscribe", "erase"]
    change_list_template = "admin/subscriptions/subscriber/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("topics")

    @admin.display(description="topics")
    def topic_list(self, subscriber: Subscriber) -> str:
        return ", ".join(t.name for t in subscriber.topics.all())

    def has_add_permission(self, request) -> bool:
        return False  # the CSV import (or the person's own signup) adds subscribers

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A plain delete would leave no suppression behind; "erase" does it properly.
        return False

    def has_import_permission(self, request) -> bool:
        return request.user.has_perm("subscriptions.add_subscriber")

    def has_act_permission(self, request) -> bool:
        # The action checkboxes need this even though the plain change form is off.
        return request.user.has_perm("subscriptions.change_subscriber")

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm("subscriptions.view_subscriber")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="subscriptions_subscriber_import",
            ),
            *super().get_urls(),
        ]

    def _log(self, request, subscribers, flag: int, message: str) -> None:
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=subscribers, action_flag=flag, change_message=message
        )

    def import_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = SubscriberImportForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8-sig")
                report = csv_io.subscribers_import_csv(
                    text=text,
                    topics=form.cleaned_data["topics"],
                    mode=form.cleaned_data["mode"],
                    consent_note=form.cleaned_data["consent_note"],
                )
            except UnicodeDecodeError:
                form.add_error("file", "The file is not UTF-8 text.")
            except ValidationError as exc:
                form.add_error("file", exc)
            else:
                how = (
                    "confirmation email sent"
                    if form.cleaned_data["mode"] == csv_io.IMPORT_CONFIRM
                    else "imported with recorded consent"
                )
                self._log(request, report.created, ADDITION, f"Imported from CSV: {how}")
                level = messages.SUCCESS if report.created else messages.WARNING
                self.message_user(request, f"Import: {report.summary()}", level)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import subscribers from CSV",
            "form": form,
            "report": report,
            "topics": Topic.objects.filter(is_active=True).order_by("position", "name"),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/subscriptions/subscriber/import.html", context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_act_permission(request):
            actions = {k: v for k, v in actions.items() if k == "export_csv"}
        if not self.has_export_permission(request):
            actions.pop("export_csv", None)
        return actions

    @admin.action(description="Export selected subscribers as CSV")
    def export_csv(self, request, queryset):
        out = io.StringIO()
        csv_io.subscribers_export_csv(subscribers=queryset, out=out)
        # The export holds personal data: who took it is on record.
        self._log(request, queryset, CHANGE, "Exported to CSV")
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{stamp}.csv"'
        return response

    @admin.action(description="Resend the confirmation email (pending only)")
    def resend_confirmation(self, request, queryset) -> None:
        asked = []
        for subscriber in queryset.filter(status=Subscriber.Status.PENDING):
            consent = subscriber.consents.filter(confirmed_at__isnull=True).first()
            if consent is None:
                continue
            services.subscriber_confirmation_resend(
                subscriber_key=subscriber.key, consent_id=consent.pk
            )
            asked.append(subscriber)
        self._log(request, asked, CHANGE, "Asked to resend the confirmation email")
        self.message_user(
            request,
            f"Confirmation email requested for {len(asked)} pending subscriber(s); an address "
            "mailed within the last hour is not mailed again yet.",
            messages.SUCCESS,
        )

    @admin.action(description="Unsubscribe selected subscribers")
    def unsubscribe(self, request, queryset) -> None:
        changed = [s for s in queryset if services.subscriber_unsubscribe(subscriber=s)]
        self._log(request, changed, CHANGE, "Unsubscribed")
        self.message_user(request, f"Unsubscribed {len(changed)}.", messages.SUCCESS)

    @admin.action(description="Erase selected subscribers (keeps a hashed suppression)")
    def erase(self, request, queryset) -> None:
        subscribers = list(queryset)
        for subscriber in subscribers:
            pk = subscriber.pk
            services.subscriber_erase(subscriber=subscriber)
            # Logged without the address: the log must not keep what the erasure removed.
            LogEntry.objects.create(
                user_id=request.user.pk,
                content_type_id=self._content_type_id(),
                object_id=str(pk),
                object_repr=services.ERASED_REPR.format(pk=pk),
                action_flag=DELETION,
                change_message="Erased (hashed suppression kept)",
            )
        self.message_user(request, f"Erased {len(subscribers)}.", messages.SUCCESS)

    def _content_type_id(self) -> int:
        from django.contrib.contenttypes.models import ContentType

        return ContentType.objects.get_for_model(Subscriber).pk


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email_hash", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email_hash"]

    def has_add_permission(self, request) -> bool:
        return False  # suppress through subscriber_suppress, which hashes the address

    def has_change_permission(self, request, obj=None) -> bool:
        return False
