from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("privacy/", views.privacy, name="privacy"),
    # Browsers ask for /favicon.ico whatever the page says; the icon itself is a static file.
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("", include("subscriptions.urls")),
    # Also the configured provider's tracking webhook, /anymail/<esp>/tracking/.
    path("", include("newsletter.urls")),
]

if settings.DEBUG:
    # The local outbox: what Paperboy would have sent, readable in the browser.
    urlpatterns += [
        path("outbox/", views.outbox_index, name="outbox"),
        path("outbox/<str:name>/", views.outbox_detail, name="outbox-detail"),
    ]
