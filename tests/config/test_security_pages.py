"""Content-Security-Policy on every page, and the branded error pages of production."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from django.core.mail import EmailMultiAlternatives
from django.test import Client, override_settings

from newsletter.services.issues import issue_create, issue_start
from subscriptions.links import preferences_url
from tests.config.test_outbox import OUTBOX, debug_urls  # noqa: F401 - fixture
from tests.factories import SubscriberFactory, UserFactory
from tests.newsletter.conftest import day_batch  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def inline_code(response) -> list[str]:
    """What the policy would block on the page: inline scripts, styles and event handlers."""
    soup = BeautifulSoup(response.content, "html.parser")
    found = [f"<script> {t.string[:60]!r}" for t in soup.find_all("script") if not t.get("src")]
    found += [f"<style> {t.string[:60]!r}" for t in soup.find_all("style")]
    for tag in soup.find_all(True):
        found += [f"{a}= on <{tag.name}>" for a in tag.attrs if a == "style" or a.startswith("on")]
    return found


def assert_strict(response) -> None:
    assert response.status_code == 200, response.request["PATH_INFO"]
    directives = policy(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert inline_code(response) == []


@pytest.fixture
def published(day_batch, django_capture_on_commit_callbacks, settings):  # noqa: F811
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    SubscriberFactory(topics=[day_batch.topics["robotics"]])
    with django_capture_on_commit_callbacks(execute=True):
        issue_start(issue=issue_create(batch=day_batch.batch))
    return day_batch


def test_it_sets_a_strict_policy_on_the_public_pages(client, published, settings):
    reader = SubscriberFactory()
    preferences = preferences_url(reader).removeprefix(settings.SITE_URL)
    for path in ("/", "/digests/", "/digests/2026-03-10/", preferences):
        assert_strict(client.get(path))


def test_it_sets_a_strict_policy_on_the_admin(client, day_batch):  # noqa: F811
    assert_strict(client.get("/admin/login/"))
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for path in (
        "/admin/",
        "/admin/subscriptions/subscriber/",
        f"/admin/digests/dailybatch/{day_batch.batch.pk}/change/",
        "/admin/newsletter/issue/dashboard/",
        "/admin/axes/accessattempt/",
    ):
        assert_strict(client.get(path))


def email_frame_policy(response) -> dict[str, list[str]]:
    directives = policy(response)
    assert response.status_code == 200
    # The email in the sandboxed frame inherits the page's policy and its styles are inline;
    # scripts stay blocked.
    assert directives["style-src"] == ["'self'", "'unsafe-inline'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    return directives


def test_it_allows_only_the_emails_inline_styles_in_the_preview(client, day_batch):  # noqa: F811
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    reader = SubscriberFactory(topics=[day_batch.topics["robotics"]])
    page = client.get(
        f"/admin/digests/dailybatch/{day_batch.batch.pk}/preview/", {"subscriber": reader.pk}
    )
    email_frame_policy(page)
    assert inline_code(page) == []  # the page itself; the email is inside srcdoc


def test_it_sets_the_policy_on_the_outbox_viewer(client, settings, debug_urls):  # noqa: F811
    with override_settings(EMAIL_BACKEND=OUTBOX):
        message = EmailMultiAlternatives("Hello", "text part", to=["r@example.org"])
        message.attach_alternative('<p style="color:red">html part</p>', "text/html")
        message.send()
    name = next(settings.EMAIL_OUTBOX_DIR.glob("*.eml")).name

    assert_strict(client.get("/outbox/"))
    detail = client.get(f"/outbox/{name}/")
    email_frame_policy(detail)
    assert inline_code(detail) == []


def test_it_shows_the_branded_404_in_production(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "Page not found" in text and "paperboy/site.css" in text
    assert "Not Found</h1>" not in text  # Django's bare default
    assert "URLconf" not in text  # nor its debug page
    assert policy(response)["script-src"] == ["'self'"]


@pytest.mark.urls("tests.config.error_urls")
def test_it_shows_the_branded_500_in_production(settings):
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    text = response.content.decode()
    assert "Something went wrong" in text and "paperboy/site.css" in text
    assert "Server Error (500)" not in text  # Django's bare default
    assert "RuntimeError" not in text and "Traceback" not in text
    assert policy(response)["script-src"] == ["'self'"]
