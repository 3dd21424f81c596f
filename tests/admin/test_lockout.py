"""Admin login lockout (django-axes): per account and per client address, lifted by an admin or
by the cool-off."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"
PROXY = "172.18.0.5"


def account(username: str, *, superuser: bool = False):
    user = UserFactory(username=username, is_staff=True, is_superuser=superuser)
    user.set_password(f"right-{username}")
    user.save()
    return user


def login(username: str, password: str, ip: str = ATTACKER, **meta: str):
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
        **meta,
    )
    logged_in = "_auth_user_id" in client.session
    return response, logged_in


def fail_until_locked(settings, username: str, ip: str = ATTACKER, **meta: str) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _, logged_in = login(username, "wrong", ip, **meta)
        assert not logged_in


def assert_locked(response, logged_in: bool) -> None:
    assert not logged_in
    assert response.status_code == 429
    assert b"Login locked" in response.content


def test_it_allows_a_few_wrong_passwords(settings):
    account("eddie")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response, _ = login("eddie", "wrong")
        assert response.status_code == 200  # the login form again, with its error
    response, logged_in = login("eddie", "right-eddie")
    assert logged_in and response.status_code == 302


def test_it_refuses_the_right_password_once_the_limit_is_reached(settings):
    account("eddie")
    account("other")
    fail_until_locked(settings, "eddie")

    assert_locked(*login("eddie", "right-eddie"))  # the account, from the same address
    assert_locked(*login("eddie", "right-eddie", ELSEWHERE))  # the account, from elsewhere
    assert_locked(*login("other", "right-other"))  # another account, from the same address
    # Someone else, somewhere else, is not affected.
    _, logged_in = login("other", "right-other", ELSEWHERE)
    assert logged_in


def test_it_explains_the_lockout(settings):
    settings.AXES_FAILURE_LIMIT = 3
    account("eddie")
    fail_until_locked(settings, "eddie")
    response, _ = login("eddie", "right-eddie")
    text = response.content.decode()
    assert "too many failed logins" in text and "eddie" in text
    assert "(3 in a row)" in text
    assert "try again in 30 minutes" in text
    assert "under Axes" in text


def test_it_counts_the_client_behind_the_proxy_not_the_proxy(settings):
    # Behind one proxy every request comes from the proxy's address; the client is the entry
    # the proxy appended to X-Forwarded-For, whatever the client put in front of it.
    settings.TRUSTED_PROXY_COUNT = 1
    account("eddie")
    account("other")
    for n in range(settings.AXES_FAILURE_LIMIT):
        login("eddie", "wrong", PROXY, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, {ATTACKER}")

    forged = {"HTTP_X_FORWARDED_FOR": f"{ELSEWHERE}, {ATTACKER}"}
    assert_locked(*login("other", "right-other", PROXY, **forged))
    _, logged_in = login("other", "right-other", PROXY, HTTP_X_FORWARDED_FOR=ELSEWHERE)
    assert logged_in
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_it_lists_lockouts_in_admin_and_an_admin_can_lift_them(settings):
    account("eddie")
    boss = account("boss", superuser=True)
    fail_until_locked(settings, "eddie")
    assert_locked(*login("eddie", "right-eddie"))

    admin = Client()
    admin.force_login(boss)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"eddie" in listing.content and ATTACKER.encode() in listing.content

    attempt = AccessAttempt.objects.get(username="eddie")
    response = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    _, logged_in = login("eddie", "right-eddie")
    assert logged_in


def test_it_lifts_the_lockout_after_the_cool_off(settings):
    account("eddie")
    cool_off = settings.AXES_COOLOFF_TIME
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        fail_until_locked(settings, "eddie")
        # Trying again while locked starts the cool-off again, so guessing on does not pay.
        clock.move_to(start + cool_off / 2)
        assert_locked(*login("eddie", "right-eddie"))
        clock.move_to(start + cool_off + timedelta(seconds=1))
        assert_locked(*login("eddie", "right-eddie"))
        clock.shift(cool_off + timedelta(seconds=1))
        _, logged_in = login("eddie", "right-eddie")
    assert logged_in
