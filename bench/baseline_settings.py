"""Settings for the django-newsletter baseline process (bench/baseline.py), nothing else.

django-newsletter's Python package is also called ``newsletter``, like Paperboy's app, so it
cannot live in Paperboy's settings; it runs in its own process on its own database, sending
through the same Anymail Postmark backend to the same fake provider.
"""

from __future__ import annotations

import os

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = "baseline-benchmark-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sites",
    "anymail",
    "sorl.thumbnail",  # django-newsletter's default thumbnailer (its Article image field)
    "newsletter",  # django-newsletter, put in place by bench.baseline
]
SITE_ID = 1
ROOT_URLCONF = "bench.baseline_urls"
DATABASES = {"default": env.db_url_config(os.environ["BASELINE_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
DEFAULT_FROM_EMAIL = "Paperboy <digest@paperboy.localhost>"
# Paperboy's Postmark backend (loaded by bench.baseline); django-newsletter sends one message
# per subscriber without merge data, so it posts each to Postmark's /email like Anymail does.
EMAIL_BACKEND = "paperboy_postmark_backend.PostmarkBatchEmailBackend"
ANYMAIL = {
    "POSTMARK_SERVER_TOKEN": os.environ["ANYMAIL_API_KEY"],
    "POSTMARK_API_URL": os.environ["ANYMAIL_API_URL"],
}
NEWSLETTER_CONFIRM_EMAIL = False
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = True
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
