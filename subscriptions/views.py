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
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from digests.models import DailyBatch, Paper
from digests.selectors import batch_preview_latest
from subscriptions import address_change, profiles, schedule, services
from subscriptions.abuse import client_ip, ip_rate_limited
from subscriptions.consent import CONSENT_TEXTS, CONSENT_VERSION
from subscriptions.forms import (
    AddressChangeForm,
    EraseForm,
    LinkRequestForm,
    PreferencesForm,
    ScheduleForm,
    SubscribeForm,
)
from subscriptions.links import (
    FEEDBACK_LINK_MAX_AGE_DAYS,
    SALT_PREFERENCES,
    SALT_UNSUBSCRIBE,
    TokenExpired,
    TokenInvalid,
    address_change_token_read,
    confirm_token_read,
    feedback_reader_token_read,
    feedback_token_read,
    feedback_vote_read,
    key_token_read,
    preferences_url,
)
from subscriptions.models import Feedback, Profile, Subscriber
from subscriptions.selectors import feedback_for_subscriber


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
                interests=form.cleaned_data["interests"],
                follows=form.cleaned_data["follows"],
                muted=form.cleaned_data["muted"],
                time_zone=form.cleaned_data["time_zone"],
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


@require_http_methods(["GET", "HEAD", "POST"])
def link_request(request: HttpRequest) -> HttpResponse:
    """ "Email me my link": the preference link sent again to whoever owns the address."""
    status = 200
    if request.method == "POST":
        if ip_rate_limited(client_ip(request), scope="link"):
            return _rate_limited(request)
        form = LinkRequestForm(request.POST)
        if form.is_bot():
            return render(request, "subscriptions/link_sent.html")
        if form.is_valid():
            services.subscriber_link_request(email=form.cleaned_data["email"])
            # The same bytes for every address, known or not, like the signup form's answer.
            return render(request, "subscriptions/link_sent.html")
        status = 400
    else:
        form = LinkRequestForm()
    return render(request, "subscriptions/link_request.html", {"form": form}, status=status)


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


def _profile(subscriber: Subscriber) -> Profile:
    # Every subscriber is given one; a row made some other way reads as the defaults.
    try:
        return subscriber.profile
    except Profile.DoesNotExist:
        return Profile(subscriber=subscriber)


def _preferences_page(
    request: HttpRequest,
    subscriber: Subscriber,
    token: str,
    *,
    preferences_form: PreferencesForm | None = None,
    erase_form: EraseForm | None = None,
    schedule_form: ScheduleForm | None = None,
    address_form: AddressChangeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    if preferences_form is None:
        preferences_form = PreferencesForm.for_profile(subscriber, _profile(subscriber))
    context = {
        "subscriber": subscriber,
        "token": token,
        "preferences_form": preferences_form,
        "erase_form": erase_form or EraseForm(),
        "schedule_form": schedule_form or ScheduleForm.for_subscriber(subscriber),
        "address_form": address_form or AddressChangeForm(),
        "schedule_text": schedule.describe(subscriber.rhythm),
        "feedback": feedback_for_subscriber(subscriber),
    }
    return render(request, "subscriptions/preferences.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD"])
@_with_subscriber(SALT_PREFERENCES)
def preferences(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    return _preferences_page(request, subscriber, token)


def _back(token: str, anchor: str = "") -> HttpResponse:
    response = redirect("subscriptions:preferences", token=token)
    if anchor:
        response["Location"] += f"#{anchor}"
    return response


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_topics(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    form = PreferencesForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, subscriber, token, preferences_form=form, status=400)
    data = form.cleaned_data
    try:
        profiles.subscriber_preferences_update(
            subscriber=subscriber,
            topics=data["topics"],
            interests=data["interests"],
            follows=data["follows"],
            muted=data["muted"],
            focus=_profile(subscriber).focus if data["focus"] is None else data["focus"],
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, "Your preferences are saved.")
    return _back(token)


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_schedule(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, subscriber, token, schedule_form=form, status=400)
    try:
        subscriber = services.subscriber_update_schedule(subscriber=subscriber, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(
            request, f"Your schedule is saved: {schedule.describe(subscriber.rhythm)}."
        )
    return _back(token, "schedule")


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_address(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    if ip_rate_limited(client_ip(request), scope="address"):
        return _rate_limited(request)
    form = AddressChangeForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, subscriber, token, address_form=form, status=400)
    new_address = form.cleaned_data["new_email"]
    try:
        address_change.address_change_request(subscriber=subscriber, new_email=new_address)
    except ValidationError as exc:
        form.add_error("new_email", exc.messages[0])
        return _preferences_page(request, subscriber, token, address_form=form, status=400)
    # The same words whether that address is free, subscribed or suppressed.
    messages.success(
        request,
        f"We sent a link to {new_address}. Your digests go to {subscriber.email} until it is "
        "clicked.",
    )
    return _back(token, "address")


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def address_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed to a new address. GET shows a button (mail scanners open links);
    POST makes the change."""
    try:
        key, old_hash_prefix, new_address = address_change_token_read(token)
    except TokenExpired:
        return _problem(
            request,
            "This link has expired",
            f"Change-of-address links work for {settings.CONFIRM_LINK_MAX_AGE_DAYS} days. Ask "
            "for a new one from your preferences page; your digests still go to the previous "
            "address.",
            410,
        )
    except TokenInvalid:
        return _invalid_link(request)
    subscriber = Subscriber.objects.filter(key=key).first()
    if subscriber is None:
        return _gone(request)
    context = {"new_address": new_address}
    if request.method == "POST":
        try:
            subscriber = address_change.address_change_confirm(
                subscriber=subscriber, old_hash_prefix=old_hash_prefix, new_address=new_address
            )
        except address_change.AddressChangeRefused as exc:
            return _problem(request, exc.title, exc.message, 409)
        context["preferences_url"] = preferences_url(subscriber)
        return render(request, "subscriptions/address_changed.html", context)
    return render(request, "subscriptions/address_confirm.html", context)


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_feedback_undo(
    request: HttpRequest, subscriber: Subscriber, token: str, paper_id: int
) -> HttpResponse:
    if profiles.feedback_undo(subscriber=subscriber, paper=paper_id):
        messages.success(request, "Undone: that paper no longer counts.")
    return _back(token, "feedback-heading")


@require_POST
@_with_subscriber(SALT_PREFERENCES)
def preferences_reset(request: HttpRequest, subscriber: Subscriber, token: str) -> HttpResponse:
    profiles.personalization_reset(subscriber=subscriber)
    messages.success(
        request,
        "Your personalization is reset: every “More like this” and “Less like this” is "
        "forgotten. Your topics and other settings are as they were.",
    )
    return _back(token, "feedback-heading")


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
    profile = _profile(subscriber)
    try:
        services.subscriber_subscribe(
            email=subscriber.email,
            topics=subscriber.topics.all(),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            form_version=CONSENT_VERSION,
            interests=profile.interests,
            follows=profile.follows,
            muted=profile.muted,
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


# --- 👍/👎 feedback links ----------------------------------------------------------------------


def _feedback_read(token: str, paper_id: int | None, vote: str | None) -> tuple[str, int, int]:
    """(subscriber key, paper id, value) of a feedback link: a reader token with the paper and
    vote in the path, or (digests sent before reader tokens) one signed token per link."""
    if paper_id is None:
        return feedback_token_read(token)
    value = feedback_vote_read(vote or "")
    return feedback_reader_token_read(token), paper_id, value


def _feedback_form_urls(token: str, paper_id: int | None, vote: str | None) -> dict[str, str]:
    """Where the page's forms post: the link's own URL and its undo, in the link's form."""
    if paper_id is None:
        args: list = [token]
        names = ("subscriptions:feedback", "subscriptions:feedback-undo")
    else:
        args = [token, paper_id, vote]
        names = ("subscriptions:feedback-vote", "subscriptions:feedback-vote-undo")
    return {"record_url": reverse(names[0], args=args), "undo_url": reverse(names[1], args=args)}


def _with_feedback(view: Callable) -> Callable:
    """Resolve a feedback link to (subscriber, paper, value), or answer 400/404/410."""

    @wraps(view)
    def wrapper(
        request: HttpRequest, token: str, paper_id: int | None = None, vote: str | None = None
    ) -> HttpResponse:
        try:
            key, paper_id_read, value = _feedback_read(token, paper_id, vote)
        except TokenExpired:
            return _problem(
                request,
                "This link is too old",
                f"Feedback links work for {FEEDBACK_LINK_MAX_AGE_DAYS} days. Use the links in "
                "a recent digest.",
                410,
            )
        except TokenInvalid:
            return _invalid_link(request)
        subscriber = Subscriber.objects.filter(key=key).first()
        if subscriber is None:
            return _gone(request)
        paper = Paper.objects.filter(pk=paper_id_read).only("title", "hf_url").first()
        if paper is None:
            return _problem(
                request,
                "This paper is no longer here",
                "It was removed after the digest was sent, so there is nothing to rate.",
                404,
            )
        urls = _feedback_form_urls(token, paper_id, vote)
        return view(request, subscriber, paper, Feedback.Value(value), urls=urls)

    return wrapper


def _feedback_context(
    subscriber: Subscriber, paper: Paper, value: Feedback.Value, urls: dict[str, str]
):
    return {
        "paper": paper,
        "value": value,
        "more": value == Feedback.Value.MORE,
        **urls,
        "preferences_url": preferences_url(subscriber),
    }


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@_with_feedback
def feedback(
    request: HttpRequest,
    subscriber: Subscriber,
    paper: Paper,
    value: Feedback.Value,
    urls: dict[str, str],
) -> HttpResponse:
    """GET only shows the question (link scanners open every link); POST records.

    static/paperboy/feedback.js submits the form once a person is looking at the page, so
    with JavaScript the reader's click in the email is all it takes; without, one more tap.
    """
    context = _feedback_context(subscriber, paper, value, urls)
    if request.method == "POST":
        profiles.feedback_record(subscriber=subscriber, paper=paper, value=value)
        return render(request, "subscriptions/feedback_saved.html", context)
    response = render(request, "subscriptions/feedback_confirm.html", context)
    response["X-Robots-Tag"] = "noindex"
    return response


@never_cache
@require_POST
@_with_feedback
def feedback_undo(
    request: HttpRequest,
    subscriber: Subscriber,
    paper: Paper,
    value: Feedback.Value,
    urls: dict[str, str],
) -> HttpResponse:
    profiles.feedback_undo(subscriber=subscriber, paper=paper)
    return render(
        request,
        "subscriptions/feedback_undone.html",
        _feedback_context(subscriber, paper, value, urls),
    )
