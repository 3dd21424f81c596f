"""The digest as the demo sends it, through SpamAssassin's local rules: no structural rule fires.

Structural rules judge how the message is built rather than what it says: its HTML (HTML_*:
hidden or low-contrast text, image-only bodies, obfuscation, unbalanced tags), its MIME tree
(MIME_*, MPART_*: missing or mismatched parts, encodings, a text part that differs from the HTML
one) and its headers (a missing or malformed Date, Message-ID, From, Subject...). Those are the
sender's fault and are fixed in templates and the send path. Rules about the words (the papers'
abstracts trip LONGWORDS on some days) and every rule that needs DNS or the network (blocklists,
SPF, DKIM: `-L` runs none of them) are out of scope here.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from config.demo import step_sent_example, step_subscribers
from tests.external import service_missing

pytestmark = pytest.mark.django_db

STRUCTURAL_PREFIXES = ("HTML_", "MIME_", "MPART_")
STRUCTURAL_RULES = {
    "MISSING_DATE",
    "MISSING_FROM",
    "MISSING_HEADERS",
    "MISSING_MID",
    "MISSING_SUBJECT",
    "INVALID_DATE",
    "INVALID_MSGID",
    "MSGID_NOFQDN1",
    "EMPTY_MESSAGE",
    "SUBJ_ALL_CAPS",
    "TVD_SPACE_RATIO",
}
# It says only that there is an HTML part (score 0.001): every digest has one.
INFORMATIONAL = {"HTML_MESSAGE"}


def fired_rules(report: str) -> set[str]:
    """Rule names from the "Content analysis details" table of `spamassassin -t`."""
    table = report.split("Content analysis details:", 1)[1]
    return set(re.findall(r"^\s*-?\d+\.\d+\s+([A-Z0-9_]+)\s", table, re.M))


def structural(rules: set[str]) -> set[str]:
    checked = rules - INFORMATIONAL
    return {r for r in checked if r.startswith(STRUCTURAL_PREFIXES) or r in STRUCTURAL_RULES}


def test_it_names_the_rules_it_checks():
    assert structural({"HTML_FONT_LOW_CONTRAST", "MIME_HTML_ONLY", "MISSING_MID"}) == {
        "HTML_FONT_LOW_CONTRAST",
        "MIME_HTML_ONLY",
        "MISSING_MID",
    }
    assert structural({"HTML_MESSAGE", "LONGWORDS", "URIBL_BLOCKED"}) == set()


def test_it_fires_no_structural_spam_rule_on_the_demo_digest(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    if shutil.which("spamassassin") is None:
        service_missing("needs SpamAssassin (Debian package spamassassin)")
    settings.EMAIL_BACKEND = "config.outbox.OutboxEmailBackend"
    settings.SITE_URL = "https://paperboy.example.org"
    step_subscribers(lambda line: None)
    with django_capture_on_commit_callbacks(execute=True):
        step_sent_example(lambda line: None)
    messages = sorted(settings.EMAIL_OUTBOX_DIR.glob("*.eml"))
    assert len(messages) == 3  # the three demo subscribers, each with their own papers

    # -t: report which rules fired; -L: local rules only, no DNS or network lookups.
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.Popen(
            ["spamassassin", "-t", "-L"],
            stdin=path.open("rb"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for path in messages
    ]
    for path, run in zip(messages, runs, strict=True):
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err.decode()
        rules = fired_rules(out.decode())
        assert "HTML_MESSAGE" in rules, out.decode()  # the HTML part was read and judged
        assert structural(rules) == set(), f"{path.name}: {sorted(rules)}"
