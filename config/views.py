from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from kombu import Connection

from config.outbox import outbox_list, outbox_read
from config.postal import postal_address_lines

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        # Any failure here means "unhealthy"; the reason goes to the log, not the response.
        logger.exception("healthz: database unreachable")
        return False


def _broker_ok() -> bool:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return True  # tasks run in-process: there is no broker to reach
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return True
    except Exception:
        logger.exception("healthz: broker unreachable")
        return False


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": "ok" if checks["database"] else "unreachable",
        "broker": (
            "in-process"
            if settings.CELERY_TASK_ALWAYS_EAGER
            else ("ok" if checks["broker"] else "unreachable")
        ),
    }
    return JsonResponse(body, status=200 if healthy else 503)


def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy.html", {"postal_address": postal_address_lines()})


def favicon(request: HttpRequest) -> HttpResponse:
    return redirect(static("paperboy/favicon.svg"), permanent=True)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a stale or cookie-less form gets a page that says what to do, not
    Django's technical one. `reason` is for developers: it goes to the log only."""
    logger.warning("form refused by the CSRF check: %s", reason, extra={"path": request.path})
    # The form's page (a POST address would answer 405 to a GET), when it is one of ours.
    referer = request.META.get("HTTP_REFERER", "")
    same_site = url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()})
    back = referer if referer and same_site else "/"
    return render(request, "csrf_failure.html", {"back": back}, status=403)


def outbox_index(request: HttpRequest) -> HttpResponse:
    return render(request, "outbox/index.html", {"messages_": outbox_list()})


def outbox_detail(request: HttpRequest, name: str) -> HttpResponse:
    message = outbox_read(name)
    if message is None:
        raise Http404("No such message in the outbox")
    context = {
        "message": message,
        "headers": list(message.parsed.items()),
        "text_body": message.body("plain"),
        "html_body": message.body("html"),
    }
    return render(request, "outbox/detail.html", context)
