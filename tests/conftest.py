from __future__ import annotations

import pytest
from django.db import connections

from tests.external import CHROMIUM_ARGS, require_chromium


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_OUTBOX_DIR = tmp_path / "outbox"


@pytest.fixture
def browser_page(live_server, settings, monkeypatch):
    """A page of headless Chromium (driven by Playwright) for the live test server, whose
    mail goes to the outbox. Skips, or fails in CI, without /usr/bin/chromium. Fails if the
    Content-Security-Policy blocked anything on the pages it visited."""
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the tests' ORM calls
    # are plain synchronous ones and safe here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.SITE_URL = live_server.url
    settings.EMAIL_BACKEND = "config.outbox.OutboxEmailBackend"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # Chromium reports what the Content-Security-Policy blocked on the console.
        blocked: list[str] = []
        page.on(
            "console",
            lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
        )
        try:
            yield page
        finally:
            browser.close()
            # Under Playwright's event loop the test's ORM calls got database connections of
            # their own context; left open, they keep pytest from dropping the test database.
            connections.close_all()
    assert blocked == [], "the Content-Security-Policy blocked something a page uses"


@pytest.fixture
def model_refused(monkeypatch):
    """From here on, loading the embedding model fails the test (digests/text_vectors.py:
    processes that rank read kept vectors instead)."""
    from digests import embedding

    def refuse():
        raise AssertionError("the embedding model was loaded")

    monkeypatch.setattr(embedding, "_model", None)
    monkeypatch.setattr(embedding, "_load", refuse)
