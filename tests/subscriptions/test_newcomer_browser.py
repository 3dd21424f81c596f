"""The newcomer's walk on a non-default port, against a real `python3 dev.py up`: signup,
confirmation, the digest, preferences and unsubscribe, by visible labels, at 375 px and
1280 px. Every link followed is one the server mailed, so the walk only finishes when those
links carry the port the server listens on. A PNG per step goes to test-artifacts/newcomer/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from tests.external import CHROMIUM_ARGS, ROOT, require_chromium

ARTIFACTS = ROOT / "test-artifacts" / "newcomer"
WIDTHS = {"phone": 375, "desktop": 1280}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert port != 8000
    return port


@pytest.fixture
def dev_up(tmp_path):
    """`python3 dev.py up` on its own port and var/ directory; yields (url, env, outbox)."""
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "ANYMAIL_ESP", "SITE_URL"}
        and k != "DJANGO_SETTINGS_MODULE"
        and not k.startswith("PYTEST_")
    }
    # Anyone who follows a topic gets a digest, whatever today's sample papers are about.
    env.update(PORT=str(port), PAPERBOY_VAR_DIR=str(tmp_path / "var"), DIGEST_NO_MATCH="top")
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "dev.py", "up"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C" not in log_path.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        assert f"running at http://127.0.0.1:{port}/" in log_path.read_text()
        yield f"http://127.0.0.1:{port}", env, tmp_path / "var" / "outbox"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _mail_to(outbox: Path, address: str, subject_has: str):
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        message = BytesParser(policy=policy.default).parse(path.open("rb"))
        if message["To"] == address and subject_has in message["Subject"]:
            return message
    raise AssertionError(f"no mail to {address} about {subject_has!r} in {outbox}")


def _manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


@pytest.mark.slow
@pytest.mark.browser
def test_a_newcomer_signs_up_reads_a_digest_and_leaves_on_another_port(dev_up):
    from playwright.sync_api import expect, sync_playwright

    url, env, outbox = dev_up
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    readers = {width: f"reader-{width}@example.org" for width in WIDTHS}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)
        pages = {
            name: browser.new_page(viewport={"width": px, "height": 800})
            for name, px in WIDTHS.items()
        }
        counters = dict.fromkeys(WIDTHS, 0)

        def shot(name: str, step: str) -> None:
            counters[name] += 1
            path = ARTIFACTS / f"{name}-{counters[name]:02d}-{step}.png"
            pages[name].screenshot(path=path, full_page=True)
            # Nothing sticks out sideways: a phone shows the page without horizontal scrolling.
            overflow = pages[name].evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{step} at {WIDTHS[name]} px scrolls sideways by {overflow}px"

        for name, page in pages.items():
            page.goto(url + "/")
            shot(name, "landing")
            page.get_by_label("Email address").fill(readers[name])
            page.get_by_label("Large language models").check()
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
            shot(name, "check-inbox")

            confirmation = _mail_to(outbox, readers[name], "onfirm")
            page.goto("about:blank")
            page.set_content(confirmation.get_body(("html",)).get_content())
            shot(name, "confirmation-email")
            page.get_by_role("link", name="Confirm my subscription").click()
            assert page.url.startswith(url + "/confirm/")  # the link follows the port
            page.get_by_role("button", name="Confirm my subscription").click()
            expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()
            shot(name, "confirmed")

        # An editor approves today's draft and sends it (the editor's pages are tested apart).
        _manage(
            env,
            "shell",
            "-c",
            "from django.utils import timezone; from digests.models import DailyBatch; "
            "from digests.services import batch_approve; "
            "batch_approve(batch=DailyBatch.objects.get(date=timezone.now().date()))",
        )
        _manage(env, "send_digest")

        for name, page in pages.items():
            digest = _mail_to(outbox, readers[name], "")
            assert re.fullmatch(rf"\s*<{re.escape(url)}/u/\S+>", digest["List-Unsubscribe"])
            page.goto("about:blank")
            page.set_content(digest.get_body(("html",)).get_content())
            shot(name, "digest")
            page.get_by_role("link", name="Change topics, schedule or pause").click()
            assert page.url.startswith(url + "/p/")
            expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
            shot(name, "preferences")
            page.get_by_label("Computer vision").check()
            page.get_by_role("button", name="Save preferences").click()
            expect(page.get_by_text("Your preferences are saved")).to_be_visible()
            expect(page.get_by_label("Computer vision")).to_be_checked()
            shot(name, "preferences-saved")

            page.goto("about:blank")
            page.set_content(digest.get_body(("html",)).get_content())
            page.get_by_role("link", name="Unsubscribe").click()
            assert page.url.startswith(url + "/u/")
            expect(page.get_by_role("heading", name="Unsubscribe from Paperboy?")).to_be_visible()
            shot(name, "unsubscribe")
            page.get_by_role("button", name="Unsubscribe").click()
            expect(page.get_by_role("heading", name="You're unsubscribed")).to_be_visible()
            shot(name, "unsubscribed")
        browser.close()
    names = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(names) == 2 * 9, names
