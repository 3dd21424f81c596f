from django.urls import path

from digests.models import DailyBatch
from newsletter import views, webhooks

WEEKLY = DailyBatch.Kind.WEEKLY

app_name = "newsletter"

urlpatterns = [
    path("digests/", views.archive_index, name="archive"),
    path("digests/feed.atom", views.DigestFeed(), name="feed"),
    path("digests/topics/<slug:slug>/", views.archive_topic, name="archive-topic"),
    path("digests/topics/<slug:slug>/feed.atom", views.TopicFeed(), name="topic-feed"),
    # A weekly issue: the week to that day, for the readers who chose a weekly email.
    path("digests/weeks/<str:day>/", views.archive_day, {"kind": WEEKLY}, name="archive-week"),
    path(
        "digests/weeks/<str:day>/yours/<str:token>/",
        views.archive_yours,
        {"kind": WEEKLY},
        name="archive-week-yours",
    ),
    path("digests/<str:day>/", views.archive_day, name="archive-day"),
    # "View in browser": one reader's own email of the day (their signed view token).
    path("digests/<str:day>/yours/<str:token>/", views.archive_yours, name="archive-yours"),
    # The configured provider's tracking webhook (bounces, complaints, opens...), e.g.
    # /anymail/postmark/tracking/; other providers' and all inbound URLs are not served.
    path("anymail/<slug:esp>/tracking/", webhooks.tracking_webhook, name="tracking-webhook"),
]
