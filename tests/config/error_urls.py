"""The site's URLs plus one view that fails, for the error-page tests."""

from __future__ import annotations

from django.urls import path

from config.urls import urlpatterns as site_urlpatterns


def boom(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [path("boom/", boom), *site_urlpatterns]
