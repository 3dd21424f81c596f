from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from digests.models import DailyBatch
from digests.selectors import batch_preview_latest
from subscriptions import services
from subscriptions.abuse import client_ip, ip_rate_limited
from subscriptions.consent import CONSENT_TEXTS, CONSENT_VERSION
from subscriptions.forms import EraseForm, SubscribeForm, TopicsForm
from subscriptions.links import (
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenExpired,
    TokenInvalid,
    confirm_token_read,
    key_token_read,
    preferences_url,
)
from subscriptions.models import Subscriber


def _latest_preview() -> list:
    # Only what editors let through (approved or sent), never a draft still under review.
    entries = batch_preview_latest(
        limit=5, statuses=(DailyBatch.Status.APPROVED, DailyBatch.Status.SENT)
    )
    return [entry.paper for entry in entries]


def _problem(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    context = {"title": title, "message": message}
    return render(request, "subscriptions/link_problem.html", context, status=status)


def _invalid_link(request: HttpRequest) -> HttpResponse:
    return _problem(
        request,
        "This link does not work",
        "It may have been cut short or changed. Copy the whole link from the email, "
        "or subscribe again from the front page.",
        400,
    )


def _gone(request: HttpRequest) -> HttpResponse:
    return _problem(
        request,
        "This subscription no longer exists",
        "It was erased, or never confirmed and cleaned up. You can subscribe again "
        "from the front page.",
        404,
    )


def _rate_limited(request: HttpRequest) -> HttpResponse:
    response = render(request, "subscriptions/rate_limited.html", status=429)
    response["Retry-After"] = str(settings.SIGNUP_RATE_WINDOW_SECONDS)
    return response


def _check_inbox(request: HttpRequest) -> HttpResponse:
    # The same bytes whatever the address's state (new, pending, active, unsubscribed,
    # suppressed) or a filled honeypot: the template holds nothing request-specific.
    return render(request, "subscriptions/check_inbox.html")


@require_http_methods(["GET", "HEAD", "POST"])
def landing(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        if ip_rate_limited(client_ip(request)):
            return _rate_limited(request)
        form = SubscribeForm(request.POST)
        if form.is_bot():
            return _check_inbox(request)
        if form.is_valid():
            services.subscriber_subscribe(
                email=form.cleaned_data["email"],
                topics=form.cleaned_data["topics"],
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                form_version=form.cleaned_data["consent_version"],
            )
            return _check_inbox(request)
        status = 400
    else:
        form = SubscribeForm(initial={"consent_version": CONSENT_VERSION})
    context = {
        "form": form,
        "consent_text": CONSENT_TEXTS[CONSENT_VERSION],
        "preview_papers": _latest_preview(),
    }
    return render(request, "subscriptions/landing.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button and changes nothing (mail scanners open links); POST confirms."""
    try:
        key, consent_id = confirm_token_read(token)
    except TokenExpired:
        context = {"token": token, "max_age_days": settings.CONFIRM_LINK_MAX_AGE_DAYS}
        return render(request, "subscriptions/link_expired.html", context, status=410)
    except TokenInvalid:
        return _invalid_link(request)
    subscriber = Subscriber.objects.filter(key=key).first()
    if subscriber is None:
        return _gone(request)
    if request.method == "POST":
        try:
            subscriber = services.subscriber_confirm(subscriber=subscriber, consent_id=consent_id)
        except services.ConfirmationInvalid:
            return _problem(
                request,
                "This confirmation link is no longer valid",
                "The subscription changed since this email was sent. Subscribe again from the "
                "front page to get a new link.",
                409,
            )
        context = {"subscriber": subscriber, "preferences_url": preferences_url(subscriber)}
        return render(request, "subscriptions/confirmed.html", context)
    return render(request, "subscriptions/confirm.html", {"subscriber": subscriber})


@require_POST
def confirm_resend(request: HttpRequest, token: str) -> HttpResponse:
    if ip_rate_limited(client_ip(request)):
        return _rate_limited(request)
    try:
        key, consent_id = confirm_token_read(token, allow_expired=True)
    except TokenInvalid:
        return _invalid_link(request)
    services.subscriber_confirmation_resend(subscriber_key=key, consent_id=consent_id)
    return _check_inbox(request)


def _with_subscriber(salt: str) -> Callable:
    """Resolve the signed token in the URL to a Subscriber, or answer 400/404."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, token: str, *args, **kwargs) -> HttpResponse:
            try:
                key = key_token_read(token, salt=salt)
            except TokenInvalid:
                return _invalid_link(request)
            subscriber = Subscriber.objects.filter(key=key).first()
            if subscriber is None:
                return _gone(request)
            return view(request, subscriber, *args, token=token, **kwargs)

        return wrapper

    return decorator


@csrf_exempt  # RFC 8058: the mailbox provider POSTs with no cookie and no CSRF token
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@_with_subscriber(SALT_UNSUBSCRIBE)
def unsubscribe(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    """One-click unsubscribe. GET only asks (scanners prefetch links); POST acts, with 200.

    Any POST to a validly signed URL unsubscribes, whatever its body: RFC 8058 senders send
    "List-Unsubscribe=One-Click", but refusing a person's unsubscribe over a body would be worse.
    The response sets no cookie and never redirects (RFC 8058 section 3.2).
    """
    if request.method == "POST":
        services.subscriber_unsubscribe(subscriber=subscriber)
        return render(request, "subscriptions/unsubscribed.html", {"email": subscriber.email})
    return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber})


def _preferences_page(
    request: HttpRequest,
    subscriber: Subscriber,
    token: str,
    *,
    topics_form: TopicsForm | None = None,
    erase_form: EraseForm | None = None,
    status: int = 200,
) -> HttpResponse:
    if topics_form is None:
        topics_form = TopicsForm(initial={"topics": list(subscriber.topics.all())})
    context = {
        "subscriber": subscriber,
        "token": token,
        "topics_form": topics_form,
        "erase_form": erase_form or EraseForm(),
    }
    return render(request, "subscriptions/preferences.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD"])
@_with_subscriber(SALT_PREFERENCES)
def preferences(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    return _preferences_page(request, subscriber, token)


def _back(token: str) -> HttpResponse:
    return redirect("subscriptions:preferences", token=token)


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_topics(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    form = TopicsForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, subscriber, token, topics_form=form, status=400)
    try:
        services.subscriber_update_topics(subscriber=subscriber, topics=form.cleaned_data["topics"])
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, "Your topics are saved.")
    return _back(token)


def _state_change(service: Callable, done: str) -> Callable:
    @require_POST
    @_with_subscriber(SALT_PREFERENCES)
    def view(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
        try:
            service(subscriber=subscriber)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, done)
        return _back(token)

    return view


preferences_pause = _state_change(services.subscriber_pause, "Paused. No digests until you resume.")
preferences_resume = _state_change(services.subscriber_resume, "Resumed. Digests are back on.")
preferences_unsubscribe = _state_change(
    services.subscriber_unsubscribe, "You are unsubscribed and will get no more digests."
)


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_resubscribe(
    request: HttpRequest, subscriber: Subscriber, token: str
) -> HttpResponse:
    # Coming back goes through double opt-in again, like the front page form.
    try:
        services.subscriber_subscribe(
            email=subscriber.email,
            topics=subscriber.topics.all(),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            form_version=CONSENT_VERSION,
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(
            request, "We sent you a confirmation link. Your digests restart once you click it."
        )
    return _back(token)


@never_cache
@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_export(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    data = services.subscriber_export(subscriber=subscriber)
    response = HttpResponse(
        json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="paperboy-my-data.json"'
    return response


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_erase(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    form = EraseForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, subscriber, token, erase_form=form, status=400)
    services.subscriber_erase(subscriber=subscriber)
    return render(request, "subscriptions/erased.html")
