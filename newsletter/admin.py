"""The editor's sending screens: send a batch now, cancel, preview as a subscriber, issue and
delivery statistics, retries and the dashboard.

The day's batch screen is digests' DailyBatchAdmin, extended here with what needs the
newsletter (digests must not import it). Every write is a service call, logged in the admin log.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from digests.admin import BatchEntryInline, IngestRunInline
from digests.admin import DailyBatchAdmin as CurationBatchAdmin
from digests.models import DailyBatch
from digests.services import batch_unapprove
from newsletter import charts, providers
from newsletter.models import Delivery, Issue, TrackingEvent
from newsletter.selectors import (
    STAT_COUNTS,
    STATUS_COUNTS,
    dashboard_series,
    issue_link_clicks,
    issue_rate,
    issue_stats,
    issues_with_counts,
    tracking_problems_recent,
    tracking_reason,
)
from newsletter.services.issues import (
    issue_cancel,
    issue_create,
    issue_send_everyone,
    issue_start,
)
from newsletter.services.previews import (
    digest_preview,
    digest_preview_send,
    preview_pins_outside_interests,
    preview_recipient_refusal,
)
from newsletter.services.rate import send_rate_rows
from newsletter.services.sending import deliveries_retry
from subscriptions.models import Subscriber
from subscriptions.selectors import subscribers_sendable

PREVIEW_SEARCH_LIMIT = 20
DASHBOARD_SPANS = (30, 90)


# --- The day's batch: sending ------------------------------------------------------------------


class SendingBatchEntryInline(BatchEntryInline):
    def entries_movable(self, batch: DailyBatch) -> bool:
        movable = getattr(self, "_movable", None)
        if movable is None or movable[0] != batch.pk:
            planned = Issue.objects.filter(batch_id=batch.pk).exists()
            self._movable = movable = (batch.pk, not planned and super().entries_movable(batch))
        return movable[1]

    def has_change_permission(self, request, obj=None) -> bool:
        # Once an issue exists its deliveries are planned: a change now would make what was
        # previewed differ from what is sent.
        if obj is not None and Issue.objects.filter(batch=obj).exists():
            return False
        return super().has_change_permission(request, obj)


class PreviewForm(forms.Form):
    subscriber = forms.ModelChoiceField(queryset=Subscriber.objects.all(), widget=forms.HiddenInput)


class DailyBatchAdmin(CurationBatchAdmin):
    inlines = [SendingBatchEntryInline, IngestRunInline]
    list_display = [*CurationBatchAdmin.list_display, "issue_link"]
    actions = [*CurationBatchAdmin.actions, "send_now", "cancel_send"]
    change_form_template = "admin/digests/dailybatch/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("issue")

    @admin.display(description="issue")
    def issue_link(self, batch: DailyBatch) -> str:
        issue = getattr(batch, "issue", None)
        if issue is None:
            return "—"
        url = reverse("admin:newsletter_issue_change", args=[issue.pk])
        return format_html('<a href="{}">{}</a>', url, issue.get_status_display())

    def has_send_permission(self, request) -> bool:
        return request.user.has_perm("newsletter.add_issue") and request.user.has_perm(
            "digests.change_dailybatch"
        )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/send/", view(self.send_view), name="digests_dailybatch_send"),
            path("<int:pk>/preview/", view(self.preview_view), name="digests_dailybatch_preview"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_send": self.has_send_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # Send now ----------------------------------------------------------------------------------

    @admin.action(description="Send now (asks to confirm)", permissions=["send"])
    def send_now(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select one batch to send.", messages.WARNING)
            return None
        return HttpResponseRedirect(
            reverse("admin:digests_dailybatch_send", args=[queryset.get().pk])
        )

    def _send_refusal(self, batch: DailyBatch) -> str:
        issue = Issue.objects.filter(batch=batch).first()
        # The due tick's readers in a started issue do not make it sent: the rest can still
        # be sent now. An editor's own send (rows of no period) can be made once.
        sent_now = issue is not None and (
            issue.status == Issue.Status.CANCELLED
            or (
                issue.status != Issue.Status.SCHEDULED
                and Delivery.objects.filter(issue=issue, period="").exists()
            )
        )
        if sent_now:
            return f"The digest of {batch.date} is already {issue.get_status_display().lower()}."
        if batch.status != DailyBatch.Status.APPROVED:
            return f"Only an approved batch can be sent; this one is {batch.get_status_display()}."
        return ""

    def send_view(self, request, pk: int):
        if not self.has_send_permission(request):
            raise PermissionDenied
        batch = get_object_or_404(DailyBatch, pk=pk)
        change_url = reverse("admin:digests_dailybatch_change", args=[batch.pk])
        refusal = self._send_refusal(batch)
        if refusal:
            self.message_user(request, refusal, messages.WARNING)
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            issue = Issue.objects.filter(batch=batch).first()
            if issue is None:
                issue = issue_create(batch=batch)
                started = False
            else:
                # The due tick started it for some readers: everyone else joins now.
                started = issue_send_everyone(issue=issue) > 0
                issue.refresh_from_db()
            # issue_start moves the issue to "sending" with one conditional UPDATE: a second
            # click, another editor or the scheduled job cannot send it again.
            if issue_start(issue=issue) or started:
                self.log_change(
                    request, batch, f"Sent now: issue {issue.pk} to {issue.recipient_count}"
                )
                self.message_user(
                    request,
                    f"Sending the digest of {batch.date} to {issue.recipient_count} subscribers "
                    f"({issue.skipped_count} skipped: nothing matches their topics).",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, "This digest was already started.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:newsletter_issue_change", args=[issue.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Send the digest of {batch.date} now?",
            "batch": batch,
            "visible": batch.entries.filter(hidden=False).count(),
            "hidden": batch.entries.filter(hidden=True).count(),
            "sendable": subscribers_sendable().count(),
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/digests/dailybatch/send_confirm.html", context)

    # Cancel ------------------------------------------------------------------------------------

    @admin.action(description="Cancel the scheduled send", permissions=["send"])
    def cancel_send(self, request, queryset):
        for batch in queryset:
            issue = Issue.objects.filter(batch=batch).first()
            if issue is not None:
                if issue_cancel(issue=issue):
                    self.log_change(request, batch, f"Cancelled issue {issue.pk} before sending")
                    self.message_user(request, f"{batch.date}: send cancelled", messages.SUCCESS)
                else:
                    self.message_user(
                        request,
                        f"{batch.date}: cannot cancel, the digest is "
                        f"{issue.get_status_display().lower()}",
                        messages.WARNING,
                    )
                continue
            # No issue yet: the day's scheduled job sends approved batches, so going back to
            # draft is what cancels it (and approving again puts it back on schedule).
            try:
                batch_unapprove(batch=batch)
            except ValidationError as exc:
                self.message_user(request, f"{batch.date}: {exc.messages[0]}", messages.WARNING)
            else:
                self.log_change(request, batch, "Cancelled the scheduled send: back to draft")
                self.message_user(
                    request,
                    f"{batch.date}: scheduled send cancelled; the batch is a draft again",
                    messages.SUCCESS,
                )

    # Preview as a subscriber -------------------------------------------------------------------

    def preview_view(self, request, pk: int):
        batch = get_object_or_404(DailyBatch, pk=pk)
        if not (
            self.has_view_permission(request, batch)
            and request.user.has_perm("subscriptions.view_subscriber")
        ):
            raise PermissionDenied
        query = request.GET.get("q", "").strip()
        matches = []
        if query:
            matches = list(
                Subscriber.objects.filter(email__icontains=query).order_by("email")[
                    :PREVIEW_SEARCH_LIMIT
                ]
            )
        subscriber = None
        chosen = request.POST.get("subscriber") or request.GET.get("subscriber")
        if chosen:
            form = PreviewForm({"subscriber": chosen})
            if form.is_valid():
                subscriber = form.cleaned_data["subscriber"]
        preview = digest_preview(batch=batch, subscriber=subscriber) if subscriber else None
        if request.method == "POST" and "send_test" in request.POST:
            return self._send_test(request, batch, subscriber, preview)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Preview the digest of {batch.date} as a subscriber",
            "batch": batch,
            "query": query,
            "matches": matches,
            "subscriber": subscriber,
            "preview": preview,
            "pins_outside": self._pins_outside(batch, subscriber, preview),
            "test_to": request.POST.get("to") or request.user.email,
            "change_url": reverse("admin:digests_dailybatch_change", args=[batch.pk]),
            # The phone and desktop previews (375 + 720 px) sit side by side only without
            # the navigation sidebar at 1280 px; this page is about the email, not the menu.
            "is_nav_sidebar_enabled": False,
        }
        return TemplateResponse(request, "admin/digests/dailybatch/preview.html", context)

    def _pins_outside(self, batch, subscriber, preview) -> list[str]:
        if preview is None:
            return []
        ids = preview_pins_outside_interests(preview=preview, subscriber=subscriber)
        titles = dict(
            batch.entries.filter(paper_id__in=ids).values_list("paper_id", "paper__title")
        )
        return [titles[pid] for pid in ids if pid in titles]

    def _send_test(self, request, batch, subscriber, preview):
        back = request.get_full_path()
        to = (request.POST.get("to") or request.user.email or "").strip()
        refusal = preview_recipient_refusal(user=request.user, address=to)
        if preview is None:
            self.message_user(
                request, "Nothing to send: pick a subscriber with papers.", messages.WARNING
            )
        elif refusal:
            self.message_user(request, refusal, messages.ERROR)
        else:
            digest_preview_send(preview=preview, to=to)
            # The subscriber by id only: the log must not keep an address an erasure removes.
            self.log_change(
                request, batch, f"Sent a test of subscriber {subscriber.pk}'s digest to {to}"
            )
            self.message_user(request, f"Test sent to {to}.", messages.SUCCESS)
        return HttpResponseRedirect(back)


admin.site.unregister(DailyBatch)
admin.site.register(DailyBatch, DailyBatchAdmin)


# --- Issues ------------------------------------------------------------------------------------


def _count_column(name: str):
    @admin.display(description=name, ordering=f"c_{name}")
    def column(self, issue: Issue) -> str:
        count = getattr(issue, f"c_{name}")
        if name in STATUS_COUNTS:
            url = reverse("admin:newsletter_delivery_changelist")
            return format_html(
                '<a href="{}?issue__id__exact={}&status__exact={}">{}</a>',
                url,
                issue.pk,
                name,
                count,
            )
        return str(count)

    return column


def _rate_column(name: str):
    @admin.display(description=f"{name} %")
    def column(self, issue: Issue) -> str:
        return f"{issue_rate(issue, name) * 100:.1f}"

    return column


RATES = ("bounced", "complained", "opened", "clicked")


class IssueAdmin(admin.ModelAdmin):
    list_display = [
        "batch_date",
        "kind",
        "status",
        "recipient_count",
        *(f"count_{name}" for name in STAT_COUNTS),
        *(f"rate_{name}" for name in RATES),
        "started_at",
        "finished_at",
    ]
    list_filter = ["batch__kind", "status"]
    readonly_fields = [
        "batch",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "recipient_count",
        "skipped_count",
        "content_count",
        "stats",
        "link_clicks",
        "provider",
        "send_rate",
    ]
    actions = ["cancel"]
    change_list_template = "admin/newsletter/issue/change_list.html"

    def get_queryset(self, request):
        return issues_with_counts()

    def has_add_permission(self, request) -> bool:
        return False  # an issue is created by sending its batch

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="date", ordering="batch__date")
    def batch_date(self, issue: Issue):
        return issue.batch.date

    @admin.display(description="kind", ordering="batch__kind")
    def kind(self, issue: Issue) -> str:
        """Daily, or weekly: the week to its date, for the readers who chose a weekly email."""
        return issue.batch.get_kind_display()

    @admin.display(description="provider")
    def provider(self, issue: Issue) -> str:
        return providers.crash_recovery_note()

    @admin.display(description="deliveries")
    def stats(self, issue: Issue) -> str:
        counts = issue_stats(issue)
        rows = [
            (name, counts[name], f"{counts[f'{name}_rate'] * 100:.1f} %")
            if f"{name}_rate" in counts
            else (name, counts[name], "")
            for name in (
                "total",
                *(s.value for s in Delivery.Status),
                "delivered",
                "opened",
                "clicked",
            )
        ]
        body = format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows)
        return format_html('<table id="issue-stats">{}</table>', body)

    @admin.display(description="clicks per link")
    def link_clicks(self, issue: Issue) -> str:
        return link_clicks_table(issue_link_clicks(issue))

    @admin.display(description="send rate")
    def send_rate(self, issue: Issue) -> str:
        rows = send_rate_rows(issue)
        body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        return format_html('<table id="send-rate">{}</table>', body)

    def get_urls(self):
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="newsletter_dashboard",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Cancel selected issues (only before sending)")
    def cancel(self, request, queryset):
        for issue in queryset:
            if issue_cancel(issue=issue):
                self.log_change(request, issue, "Cancelled before sending")
                self.message_user(request, f"{issue}: cancelled", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"{issue}: already {issue.get_status_display().lower()}",
                    messages.WARNING,
                )

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = int(request.GET.get("days", DASHBOARD_SPANS[0]))
        except ValueError:
            days = DASHBOARD_SPANS[0]
        days = days if days in DASHBOARD_SPANS else DASHBOARD_SPANS[0]
        data = dashboard_series(days=days)
        last_issue = (
            issues_with_counts()
            .filter(status__in=[Issue.Status.SENDING, Issue.Status.SENT])
            .order_by("-batch__date")
            .first()
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Paperboy dashboard: the last {days} days",
            "days": days,
            "spans": DASHBOARD_SPANS,
            "data": data,
            "rows": list(
                zip(
                    data.days,
                    data.subscribers,
                    data.signups,
                    data.unsubscribes,
                    data.sends,
                    data.opens,
                    data.clicks,
                    data.bounces,
                    data.complaints,
                    strict=True,
                )
            )[::-1],
            "deliveries_chart": charts.line_chart(
                title=f"Deliveries per day, last {days} days",
                days=data.days,
                series={
                    "Sent": data.sends,
                    "Opened": data.opens,
                    "Clicked": data.clicks,
                    "Bounced": data.bounces,
                    "Complained": data.complaints,
                },
            ),
            "audience_chart": charts.line_chart(
                title=f"Signups and unsubscribes per day, last {days} days",
                days=data.days,
                series={"Signups": data.signups, "Unsubscribes": data.unsubscribes},
            ),
            "subscribers_chart": charts.line_chart(
                title=f"Subscribers, last {days} days",
                days=data.days,
                series={"Subscribers": data.subscribers},
                levels=True,
            ),
            "problems": [(event, tracking_reason(event)) for event in tracking_problems_recent()],
            "last_issue": last_issue,
            "last_issue_clicks": link_clicks_table(issue_link_clicks(last_issue))
            if last_issue
            else "",
            "recent_issues": issues_with_counts().order_by("-batch__date")[:10],
        }
        return TemplateResponse(request, "admin/newsletter/dashboard.html", context)


def link_clicks_table(rows) -> str:
    if not rows:
        return format_html('<p class="pb-empty">{}</p>', "No clicks on this issue's links yet.")
    body = format_html_join(
        "",
        '<tr><td class="pb-url">{}</td><td>{}</td><td>{}</td></tr>',
        ((row.url, row.clicks, row.readers) for row in rows),
    )
    return format_html(
        '<table class="pb-link-clicks"><thead><tr><th>Link</th><th>Clicks</th>'
        "<th>Readers</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


# One column per count and rate, linked to the matching deliveries where that helps.
for _name in STAT_COUNTS:
    setattr(IssueAdmin, f"count_{_name}", _count_column(_name))
for _name in RATES:
    setattr(IssueAdmin, f"rate_{_name}", _rate_column(_name))
admin.site.register(Issue, IssueAdmin)


# --- Deliveries --------------------------------------------------------------------------------


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "issue",
        "recipient",
        "status",
        "attempts",
        "sent_at",
        "opened_at",
        "clicked_at",
        "last_error",
    ]
    list_filter = ["status", "issue"]
    search_fields = ["subscriber__email", "provider_message_id"]
    list_select_related = ["issue__batch", "subscriber"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Rows change only through the sending code; "change" here means "may retry".
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="subscriber", ordering="subscriber__email")
    def recipient(self, delivery: Delivery) -> str:
        return delivery.subscriber.email if delivery.subscriber else "(erased)"

    @admin.action(description="Retry selected failed deliveries", permissions=["change"])
    def retry(self, request, queryset):
        failed = list(queryset.filter(status=Delivery.Status.FAILED))
        count = deliveries_retry(deliveries=queryset)
        for delivery in failed:
            self.log_change(request, delivery, "Retried")
        self.message_user(
            request,
            f"Retrying {count} failed deliveries (deliveries in any other state are left alone).",
            messages.SUCCESS,
        )


@admin.register(TrackingEvent)
class TrackingEventAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "event_type",
        "delivery",
        "occurred_at",
        "reject_reason",
        "description",
        "click_url",
    ]
    list_filter = ["event_type"]
    readonly_fields = [f.name for f in TrackingEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
