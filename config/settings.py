"""Paperboy settings: one module, every value from the environment.

Defaults serve a newcomer (SQLite under var/, tasks run in-process, mail written to var/outbox/).
Production sets DEBUG=false and supplies the rest; anything missing or malformed stops start-up
with an error that names the variable. The README has the full table.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_choice,
    env_database,
    env_date,
    env_int,
    env_int_list,
    env_list,
    env_str,
    env_time_zone,
    env_url,
)
from config.mail_providers import provider_settings, smtp_settings
from config.schedules import schedules_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
PAPERBOY_VAR_DIR = Path(env_str("PAPERBOY_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", default=True)

# --- Secrets and hosts -----------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "insecure-dev-key-only-for-local-use-never-in-production-0123456789"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off")

# The port `python3 dev.py up` serves on. In development the site URL follows it, so every
# link in a confirmation email, a digest and List-Unsubscribe reaches the server that is running.
PORT = env_int("PORT", default=8000, minimum=1)
if PORT > 65535:
    raise ImproperlyConfigured(f"PORT={PORT} is not valid: must be at most 65535")
SITE_URL = env_url("SITE_URL", default="", schemes={"http", "https"}).rstrip("/")
if not SITE_URL:
    if not DEBUG:
        # Links in mail must reach the public site; no guess is right in production.
        raise ImproperlyConfigured(
            "SITE_URL is required when DEBUG is off (e.g. https://paperboy.example.org)"
        )
    SITE_URL = f"http://127.0.0.1:{PORT}"
if not DEBUG and urlsplit(SITE_URL).scheme != "https":
    raise ImproperlyConfigured(f"SITE_URL={SITE_URL!r} must use https when DEBUG is off")
CSRF_TRUSTED_ORIGINS = [SITE_URL]

# --- Applications --------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "anymail",
    "axes",
    "csp",
    "config",
    "digests",
    "subscriptions",
    "newsletter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.csp.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
CSRF_FAILURE_VIEW = "config.views.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------------
DATABASES = {
    "default": {
        **env_database(
            "DATABASE_URL", default=f"sqlite:///{PAPERBOY_VAR_DIR / 'paperboy.sqlite3'}"
        ),
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", default=0, minimum=0),
        "CONN_HEALTH_CHECKS": True,
    }
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, beat and in-process tasks share one file: wait for the lock rather than fail.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits, throttles) --------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", default="", schemes={"redis", "rediss"})
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery --------------------------------------------------------------------------------
# Without a broker URL tasks run in-process (eagerly), which is what a newcomer wants.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", default="", schemes={"redis", "rediss"})
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", default=600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = max(1, CELERY_TASK_TIME_LIMIT - 30)
# A task not acknowledged within this many seconds is redelivered to another worker; no task
# is scheduled with an ETA further out than this (see the guide).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", default=3600, minimum=60)
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the worker's database connection around every task unless this
# is set, and then once every this many tasks. A new PostgreSQL session costs its backend tens
# of milliseconds of CPU; between tasks config/celery.py applies CONN_MAX_AGE and the health
# check instead, as Django does between requests. 0 closes the connection after every task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", default=1000, minimum=0)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# Periodic tasks (defined in config/schedules.py, each crontab from its *_CRON variable),
# installed into django-celery-beat's tables by `manage.py install_schedules` when missing.
# After that, admin is where times are changed (an editor's change is kept).
PAPERBOY_SCHEDULES = schedules_from_env()

# --- Digests: fetching each day's trending papers (issue 3) -------------------------------
# Which source the beat job and `manage.py ingest_papers` read: the Hugging Face JSON API,
# the Hugging Face papers web page, or a local file in either format (the bundled sample).
DIGEST_SOURCES = ("hf_api", "hf_page", "file")
DIGEST_SOURCE = env_choice("DIGEST_SOURCE", default="hf_api", choices=DIGEST_SOURCES)
DIGEST_SOURCE_FILE = env_str(
    "DIGEST_SOURCE_FILE", default=str(BASE_DIR / "digests" / "sample" / "hf_daily_papers.json")
)
DIGEST_HF_API_URL = env_url(
    "DIGEST_HF_API_URL",
    default="https://huggingface.co/api/daily_papers",
    schemes={"http", "https"},
)
DIGEST_HF_PAGE_URL = env_url(
    "DIGEST_HF_PAGE_URL",
    default="https://huggingface.co/papers/date/{date}",
    schemes={"http", "https"},
)
DIGEST_HF_TOKEN = env_str("DIGEST_HF_TOKEN", default="")  # optional; raises rate limits
# Per-request timeout (seconds), retries after the first attempt for 429/5xx/timeouts, and
# the backoff: base * 2**attempt, or the server's Retry-After, never more than the max.
DIGEST_HTTP_TIMEOUT = env_int("DIGEST_HTTP_TIMEOUT", default=15, minimum=1)
DIGEST_HTTP_RETRIES = env_int("DIGEST_HTTP_RETRIES", default=3, minimum=0)
DIGEST_HTTP_BACKOFF = env_int("DIGEST_HTTP_BACKOFF", default=2, minimum=0)
DIGEST_HTTP_BACKOFF_MAX = env_int("DIGEST_HTTP_BACKOFF_MAX", default=60, minimum=0)
DIGEST_API_PAGE_SIZE = env_int("DIGEST_API_PAGE_SIZE", default=50, minimum=1)
DIGEST_API_MAX_PAGES = env_int("DIGEST_API_MAX_PAGES", default=10, minimum=1)
# Papers kept per day, upstream's top ones by rank; the rest are left out and the run says so.
DIGEST_MAX_PAPERS_PER_BATCH = env_int("DIGEST_MAX_PAPERS_PER_BATCH", default=200, minimum=1)
# When on, a successful ingest moves a draft batch that has papers straight to approved.
DIGEST_AUTO_APPROVE = env_bool("DIGEST_AUTO_APPROVE", default=False)
# The beat job ingests today and re-fetches this many previous days (upvotes keep moving).
DIGEST_REFRESH_DAYS = env_int("DIGEST_REFRESH_DAYS", default=2, minimum=0)

# --- Email ---------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", default="Paperboy <digest@paperboy.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The sender's postal address, in every email's footer: anti-spam laws (CAN-SPAM, and the
# e-commerce rules of many countries) ask commercial mail to carry one. Lines split at "\n"
# or ";". Production must give a real one; development shows a placeholder so mail looks whole.
SENDER_POSTAL_ADDRESS = env_str("SENDER_POSTAL_ADDRESS", default="").strip()
if not SENDER_POSTAL_ADDRESS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SENDER_POSTAL_ADDRESS is required when DEBUG is off: anti-spam law asks every "
            "email to carry the sender's postal address (e.g. 'Paperboy; 1 Main St; Springfield')"
        )
    SENDER_POSTAL_ADDRESS = (
        "Paperboy demo; 1 Example Street; 00000 Sample Town (set SENDER_POSTAL_ADDRESS)"
    )
EMAIL_OUTBOX_DIR = PAPERBOY_VAR_DIR / "outbox"

# Providers the digest can go through, and the setting that carries each one's key (None:
# no key; Amazon SES takes AWS credentials the AWS way, SMTP its EMAIL_HOST_* settings). The
# digest fills per-recipient links into the body, which Postmark (newsletter/backends.py),
# Mailgun, SendGrid, SparkPost, Brevo and Mailjet do on their side and the others get one
# filled copy per recipient (newsletter/providers.py says which).
ANYMAIL_ESP_KEYS = {
    "postmark": "POSTMARK_SERVER_TOKEN",
    "mailgun": "MAILGUN_API_KEY",
    "sendgrid": "SENDGRID_API_KEY",
    "resend": "RESEND_API_KEY",
    "brevo": "BREVO_API_KEY",
    "mailjet": "MAILJET_API_KEY",
    "sparkpost": "SPARKPOST_API_KEY",
    "amazon_ses": None,
    "smtp": None,
}
ANYMAIL_ESP = env_choice("ANYMAIL_ESP", default="", choices=ANYMAIL_ESP_KEYS, fold=str.lower)
ANYMAIL: dict[str, object] = {
    "WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET", default="") or None,
    # SendGrid substitutes merge fields spelled exactly like the digest's "{{name}}".
    "SENDGRID_MERGE_FIELD_FORMAT": "{{{{{}}}}}",
}
if ANYMAIL_ESP:
    EMAIL_BACKEND, ANYMAIL_API_URL = provider_settings(ANYMAIL_ESP, ANYMAIL_ESP_KEYS, ANYMAIL)
    if ANYMAIL_ESP == "smtp":
        EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = smtp_settings()
        EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=EMAIL_PORT == 587)
        EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=EMAIL_PORT == 465)
    # Mailgun signs its webhooks with a key of its own (its "HTTP webhook signing key");
    # without one Anymail checks signatures against the API key.
    ANYMAIL_WEBHOOK_SIGNING_KEY = env_str("ANYMAIL_WEBHOOK_SIGNING_KEY", default="")
    if ANYMAIL_WEBHOOK_SIGNING_KEY and ANYMAIL_ESP != "mailgun":
        raise ImproperlyConfigured("ANYMAIL_WEBHOOK_SIGNING_KEY is read only for mailgun")
    if ANYMAIL_WEBHOOK_SIGNING_KEY:
        ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"] = ANYMAIL_WEBHOOK_SIGNING_KEY
elif DEBUG:
    EMAIL_BACKEND = "config.outbox.OutboxEmailBackend"
else:
    raise ImproperlyConfigured("ANYMAIL_ESP is required when DEBUG is off (mail needs a provider)")
if not DEBUG and not ANYMAIL["WEBHOOK_SECRET"]:
    raise ImproperlyConfigured(
        "ANYMAIL_WEBHOOK_SECRET is required when DEBUG is off (it guards the tracking webhooks)"
    )

# --- Subscriptions (signup, confirmation, abuse limits) -----------------------------------
# Confirmation links expire after this many days; preference and unsubscribe links do not.
CONFIRM_LINK_MAX_AGE_DAYS = env_int("CONFIRM_LINK_MAX_AGE_DAYS", default=7, minimum=1)
# Pending subscribers whose last request is older than this are deleted by the purge task. It
# must outlast the confirmation link, or a link that still works would find nobody.
PENDING_PURGE_AFTER_DAYS = env_int("PENDING_PURGE_AFTER_DAYS", default=14, minimum=1)
if PENDING_PURGE_AFTER_DAYS < CONFIRM_LINK_MAX_AGE_DAYS:
    raise ImproperlyConfigured(
        f"PENDING_PURGE_AFTER_DAYS={PENDING_PURGE_AFTER_DAYS} must be at least "
        f"CONFIRM_LINK_MAX_AGE_DAYS={CONFIRM_LINK_MAX_AGE_DAYS}"
    )
# At most one mail caused by the signup form per address per this many seconds.
SIGNUP_EMAIL_INTERVAL_SECONDS = env_int("SIGNUP_EMAIL_INTERVAL_SECONDS", default=3600, minimum=1)
# Per client IP: at most SIGNUP_RATE_LIMIT form posts per SIGNUP_RATE_WINDOW_SECONDS, counted in
# the cache (Redis when REDIS_URL is set, so all web processes share the count); then 429.
SIGNUP_RATE_LIMIT = env_int("SIGNUP_RATE_LIMIT", default=30, minimum=1)
SIGNUP_RATE_WINDOW_SECONDS = env_int("SIGNUP_RATE_WINDOW_SECONDS", default=600, minimum=1)
# How many reverse proxies in front of Paperboy append to X-Forwarded-For. 0 trusts only the
# socket address; behind one proxy set 1, or every visitor shares the proxy's rate limit.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", default=0, minimum=0)

# --- The daily digest (newsletter app) ----------------------------------------------------
# Where an editor may send a test of a digest besides their own address and the addresses of
# the other staff accounts: a comma-separated list (the team's shared inbox, say).
PREVIEW_TEST_RECIPIENTS = [a.lower() for a in env_list("PREVIEW_TEST_RECIPIENTS", default=[])]
DIGEST_MAX_PAPERS = env_int("DIGEST_MAX_PAPERS", default=20, minimum=1)
DIGEST_NO_MATCH = env_choice("DIGEST_NO_MATCH", default="skip", choices=("skip", "top"))
DIGEST_LIST_ID = env_str(
    "DIGEST_LIST_ID", default=f"Paperboy daily digest <daily.{urlsplit(SITE_URL).hostname}>"
)
# 0 = the provider's per-call limit (Postmark 500, Mailgun 1,000, ...); smaller values cap it.
DIGEST_BATCH_SIZE = env_int("DIGEST_BATCH_SIZE", default=0, minimum=0)
DIGEST_MAX_ATTEMPTS = env_int("DIGEST_MAX_ATTEMPTS", default=10, minimum=1)
# First retry after a transient provider error waits about this long, doubling each time.
DIGEST_RETRY_BACKOFF_SECONDS = env_int("DIGEST_RETRY_BACKOFF_SECONDS", default=5, minimum=1)
# A claimed delivery not settled within this many seconds is reconciled by the sweeper.
DIGEST_CLAIM_LEASE_SECONDS = env_int("DIGEST_CLAIM_LEASE_SECONDS", default=600, minimum=1)
ANYMAIL_TIMEOUT_SECONDS = env_int("ANYMAIL_TIMEOUT_SECONDS", default=30, minimum=1)
ANYMAIL["REQUESTS_TIMEOUT"] = ANYMAIL_TIMEOUT_SECONDS
EMAIL_TIMEOUT = ANYMAIL_TIMEOUT_SECONDS  # SMTP: the same bound the claim lease relies on
# How long after our client gave up the provider may still accept a call (its own processing
# time). Only once a call is older than the timeout plus this margin does "the provider's
# search does not have it" mean it was not taken, so the lease must be longer than both.
DIGEST_LEASE_MARGIN_SECONDS = env_int("DIGEST_LEASE_MARGIN_SECONDS", default=30, minimum=1)
if DIGEST_CLAIM_LEASE_SECONDS <= ANYMAIL_TIMEOUT_SECONDS + DIGEST_LEASE_MARGIN_SECONDS:
    raise ImproperlyConfigured(
        f"DIGEST_CLAIM_LEASE_SECONDS={DIGEST_CLAIM_LEASE_SECONDS} must exceed "
        f"ANYMAIL_TIMEOUT_SECONDS={ANYMAIL_TIMEOUT_SECONDS} plus DIGEST_LEASE_MARGIN_SECONDS="
        f"{DIGEST_LEASE_MARGIN_SECONDS}: a shorter lease settles a call the provider may still "
        "accept, and its rows are sent twice"
    )
# Pending rows of a sending issue that no task has claimed or worked on for this long are
# enqueued again by the sweeper (their tasks were lost: a broker restarted empty).
DIGEST_REQUEUE_SECONDS = env_int("DIGEST_REQUEUE_SECONDS", default=60, minimum=1)
# Per-recipient outcomes are recorded on each Delivery; a refused recipient is not an exception.
ANYMAIL["IGNORE_RECIPIENT_STATUS"] = True

# --- Send rate (newsletter/services/rate.py): shared by every worker through Redis ----------
# The provider's limits; 0 (the default) sets none. A chunk is never larger than the per-second
# limit, so no single call exceeds it.
SEND_RATE_PER_SECOND = env_int("SEND_RATE_PER_SECOND", default=0, minimum=0)
# Copies in flight at once per worker for providers that take one copy per call (their round
# trip is each copy's cost); 1 sends them one after another.
SEND_CONCURRENCY = env_int("SEND_CONCURRENCY", default=8, minimum=1)
SEND_QUOTA_PER_HOUR = env_int("SEND_QUOTA_PER_HOUR", default=0, minimum=0)
SEND_QUOTA_PER_DAY = env_int("SEND_QUOTA_PER_DAY", default=0, minimum=0)
# Warm-up of a new sending domain: the cap of each UTC day from SEND_WARMUP_START on
# ("50,100,250,500,1000"); after the last one only the quotas above apply. What does not fit in
# a day stays pending, in order, for the next.
SEND_WARMUP_DAILY_CAPS = env_int_list("SEND_WARMUP_DAILY_CAPS", minimum=1)
SEND_WARMUP_START = env_date("SEND_WARMUP_START")
if SEND_WARMUP_DAILY_CAPS and SEND_WARMUP_START is None:
    raise ImproperlyConfigured(
        "SEND_WARMUP_START is required with SEND_WARMUP_DAILY_CAPS (the day the first cap applies)"
    )
if SEND_WARMUP_START is not None and not SEND_WARMUP_DAILY_CAPS:
    raise ImproperlyConfigured("SEND_WARMUP_DAILY_CAPS is required with SEND_WARMUP_START")
# A wait for the budget up to this long is a task retry; longer (the hour's or day's quota is
# used up), the issue waits and the sweeper enqueues its rows again when the time comes. Kept
# under the broker's visibility timeout, which a retry's countdown must not outlast.
SEND_RATE_PARK_AFTER_SECONDS = env_int("SEND_RATE_PARK_AFTER_SECONDS", default=300, minimum=1)
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= SEND_RATE_PARK_AFTER_SECONDS:
    raise ImproperlyConfigured(
        f"SEND_RATE_PARK_AFTER_SECONDS={SEND_RATE_PARK_AFTER_SECONDS} must be shorter than "
        "CELERY_VISIBILITY_TIMEOUT: a longer retry countdown gets the task delivered twice"
    )
# How long every worker holds off the provider once it answers that its own daily quota is
# used up (Amazon SES's ACCOUNT_DAILY_QUOTA_EXCEEDED); why an hour:
# newsletter/services/provider_quota.py.
SEND_PROVIDER_QUOTA_RETRY_SECONDS = env_int(
    "SEND_PROVIDER_QUOTA_RETRY_SECONDS", default=3600, minimum=1
)
# Where the shared budget lives: REDIS_URL, else the Celery broker when it is Redis.
SEND_RATE_REDIS_URL = env_url("SEND_RATE_REDIS_URL", default="", schemes={"redis", "rediss"}) or (
    REDIS_URL or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
)
if (
    SEND_RATE_PER_SECOND or SEND_QUOTA_PER_HOUR or SEND_QUOTA_PER_DAY or SEND_WARMUP_DAILY_CAPS
) and not SEND_RATE_REDIS_URL:
    raise ImproperlyConfigured(
        "SEND_RATE_REDIS_URL (or REDIS_URL) is required with a send rate or quota: every worker "
        "must share one budget"
    )

# --- Internationalization ------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = PAPERBOY_VAR_DIR / "static"
# The site's own stylesheets: the Content-Security-Policy below allows no inline styles.
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin login lockout (django-axes) -----------------------------------------------------
# After ADMIN_LOGIN_FAILURE_LIMIT wrong passwords an account is locked, from any address, and
# so is the client address, for any account; both for ADMIN_LOGIN_COOLOFF_MINUTES, or until an
# admin deletes the lockout under "Axes" in admin. Attempts are kept in the database, so every
# web process sees them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", default=30, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# The same client address the signup rate limit uses (the trusted-proxy count applies).
AXES_CLIENT_IP_CALLABLE = "subscriptions.abuse.client_ip"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"

# --- Production hardening ------------------------------------------------------------------
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto. /healthz stays reachable over
# plain HTTP for the container healthcheck.
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- Content-Security-Policy (django-csp) --------------------------------------------------
# On every page: scripts and stylesheets only from the site's own static files, no inline
# script or style, no plugins, forms post only here, and no other site may frame a page. The
# two pages that show an email inside a sandboxed frame also allow its inline styles (see
# config/csp.py); scripts stay blocked there too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF],
        "img-src": [CSP_SELF, "data:"],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_NONE],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    }
}

# --- Logging: one line per event on stdout -------------------------------------------------
LOG_LEVEL = env_choice(
    "LOG_LEVEL",
    default="INFO",
    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    fold=str.upper,
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
