from django.urls import path

from newsletter import views

app_name = "newsletter"

urlpatterns = [
    path("digests/", views.archive_index, name="archive"),
    path("digests/feed.atom", views.DigestFeed(), name="feed"),
    path("digests/<str:day>/", views.archive_day, name="archive-day"),
]
