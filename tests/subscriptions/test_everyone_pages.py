"""Pages every visitor may meet: the CSRF failure page, the favicon, the privacy page."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_it_answers_a_stale_form_with_a_friendly_page_that_leads_back(topics):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/",
        {"email": "reader@example.org"},
        HTTP_REFERER="http://testserver/",
    )
    assert response.status_code == 403
    body = response.content.decode()
    assert "Please try again" in body and "Nothing was saved" in body
    assert 'href="http://testserver/"' in body
    assert "CSRF verification failed" not in body  # not Django's technical page


def test_it_never_leads_back_to_another_site(topics):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/", {}, HTTP_REFERER="https://evil.example/")
    assert response.status_code == 403
    assert "evil.example" not in response.content.decode()


def test_it_serves_a_favicon_linked_from_every_page(client, topics):
    page = client.get("/").content.decode()
    assert 'rel="icon"' in page and "favicon.svg" in page
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_it_says_what_is_stored_why_and_how_to_export_and_erase(client, settings):
    settings.SENDER_POSTAL_ADDRESS = "Paperboy Ltd; 1 Main Street"
    response = client.get("/privacy/")
    assert response.status_code == 200
    body = response.content.decode()
    for words in ("email address", "consent record", "profile", "feedback", "Delivery history"):
        assert words in body
    assert "Download my data" in body and "Erase my data" in body
    assert "Paperboy Ltd, 1 Main Street" in body
    assert 'href="/privacy/"' in client.get("/").content.decode()  # reachable from every page
