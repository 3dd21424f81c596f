from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("subscriptions.urls")),
    path("", include("newsletter.urls")),
    # Anymail's tracking webhooks (bounces, complaints, opens...), e.g. /anymail/postmark/tracking/
    path("anymail/", include("anymail.urls")),
]

if settings.DEBUG:
    # The local outbox: what Paperboy would have sent, readable in the browser.
    urlpatterns += [
        path("outbox/", views.outbox_index, name="outbox"),
        path("outbox/<str:name>/", views.outbox_detail, name="outbox-detail"),
    ]
