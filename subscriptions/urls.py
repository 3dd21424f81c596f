from __future__ import annotations

from django.urls import path

from subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("link/", views.link_request, name="link-request"),
    path("address/<str:token>/", views.address_confirm, name="address-confirm"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm/<str:token>/resend", views.confirm_resend, name="confirm-resend"),
    # Short, because it goes into every digest's List-Unsubscribe header.
    path("u/<str:token>", views.unsubscribe, name="unsubscribe"),
    path("p/<str:token>/", views.preferences, name="preferences"),
    path("p/<str:token>/topics", views.preferences_topics, name="preferences-topics"),
    path("p/<str:token>/schedule", views.preferences_schedule, name="preferences-schedule"),
    path("p/<str:token>/address", views.preferences_address, name="preferences-address"),
    path("p/<str:token>/pause", views.preferences_pause, name="preferences-pause"),
    path("p/<str:token>/resume", views.preferences_resume, name="preferences-resume"),
    path(
        "p/<str:token>/unsubscribe", views.preferences_unsubscribe, name="preferences-unsubscribe"
    ),
    path(
        "p/<str:token>/resubscribe", views.preferences_resubscribe, name="preferences-resubscribe"
    ),
    path(
        "p/<str:token>/feedback/<int:paper_id>/undo",
        views.preferences_feedback_undo,
        name="preferences-feedback-undo",
    ),
    path("p/<str:token>/reset", views.preferences_reset, name="preferences-reset"),
    path("p/<str:token>/export", views.preferences_export, name="preferences-export"),
    path("p/<str:token>/erase", views.preferences_erase, name="preferences-erase"),
    # Short: a digest carries two of these for every paper. The reader's token, then the paper
    # and the vote (subscriptions.links says why they need no signature of their own).
    path("f/<str:token>/<int:paper_id>/<str:vote>", views.feedback, name="feedback-vote"),
    path(
        "f/<str:token>/<int:paper_id>/<str:vote>/undo",
        views.feedback_undo,
        name="feedback-vote-undo",
    ),
    # One signed token per link, as digests carried them before; read until they expire.
    path("f/<str:token>/", views.feedback, name="feedback"),
    path("f/<str:token>/undo", views.feedback_undo, name="feedback-undo"),
]
