"""The demo a newcomer gets from `python3 dev.py up`: accounts, sample data, schedules.

Each step is idempotent, so the command can run on every start. Later features append steps
to DEMO_STEPS.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from config.schedules import schedules_install

Say = Callable[[str], None]


def _credentials_file() -> Path:
    return Path(settings.PAPERBOY_VAR_DIR) / "demo-credentials.json"


def demo_user(*, username: str, email: str, superuser: bool) -> tuple[str, str]:
    """Create a demo login once and keep its password in var/ so later runs can print it."""
    path = _credentials_file()
    known = json.loads(path.read_text()) if path.exists() else {}
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None or username not in known:
        password = secrets.token_urlsafe(12)
        if user is None:
            user = User(username=username, email=email)
        user.is_staff = True
        user.is_superuser = superuser
        user.set_password(password)
        user.save()
        known[username] = password
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=2))
        path.chmod(0o600)
    return username, known[username]


def step_admin(say: Say) -> None:
    username, password = demo_user(
        username="admin", email="admin@paperboy.localhost", superuser=True
    )
    say(f"Admin login: {settings.SITE_URL}/admin/  user: {username}  password: {password}")


def step_schedules(say: Say) -> None:
    created = schedules_install()
    say(f"Schedules: {len(settings.PAPERBOY_SCHEDULES)} installed ({len(created)} new)")


def step_sample_batch(say: Say) -> None:
    """Today's batch from the bundled sample (digests/sample/), unless today already has papers
    (from an earlier run or from upstream): a newcomer sees a real batch right away."""
    import datetime as dt

    from django.utils import timezone

    from digests.models import DailyBatch
    from digests.services import batch_ingest

    today = timezone.now().astimezone(dt.UTC).date()
    batch = DailyBatch.objects.filter(date=today).first()
    if batch is None or batch.entry_count == 0:
        report = batch_ingest(day=today, path=settings.DIGEST_SOURCE_FILE)
        batch = DailyBatch.objects.get(pk=report.batch_id)
        how = f"ingested from the bundled sample ({report.new} new papers)"
    else:
        how = "already there"
    say(
        f"Digest: today's batch ({today}, {batch.status}) has {batch.entry_count} papers, "
        f"{how}: {settings.SITE_URL}/admin/digests/dailybatch/{batch.pk}/change/"
    )


DEMO_SUBSCRIBERS = [
    "ada@demo.paperboy.localhost",
    "grace@demo.paperboy.localhost",
    "alan@demo.paperboy.localhost",
]


def step_subscribers(say: Say) -> None:
    """A few active subscribers with topics, so a digest has someone to go to."""
    from digests.models import Topic
    from subscriptions.links import preferences_url
    from subscriptions.services import SubscriberSuppressed, subscriber_import

    topics = list(Topic.objects.filter(is_active=True))
    if not topics:
        say("Demo subscribers: skipped, there are no active topics yet")
        return
    created, first = 0, None
    for i, email in enumerate(DEMO_SUBSCRIBERS):
        # Different people follow different topics, so their digests differ.
        chosen = topics[i % len(topics) :: 2] or topics
        try:
            subscriber, new = subscriber_import(email=email, topics=chosen)
        except SubscriberSuppressed:
            continue  # someone erased a demo subscriber: respect it, as for anyone
        created += new
        first = first or subscriber
    where = f"; {first.email}'s preferences: {preferences_url(first)}" if first else ""
    say(f"Demo subscribers: {len(DEMO_SUBSCRIBERS)} ({created} new){where}")


def step_editor(say: Say) -> None:
    """An editor account: the "Editors" group's curation rights, no user management."""
    from django.contrib.auth.models import Group

    username, password = demo_user(
        username="editor", email="editor@paperboy.localhost", superuser=False
    )
    group = Group.objects.filter(name="Editors").first()
    if group is None:
        say("Editor login: skipped, the Editors group is missing (run migrate)")
        return
    get_user_model().objects.get(username=username).groups.add(group)
    say(f"Editor login: {settings.SITE_URL}/admin/  user: {username}  password: {password}")


def step_send_digest(say: Say) -> None:
    """Today's digest for the demo subscribers, into the outbox (once: a rerun sends nothing)."""
    from django.utils import timezone

    from newsletter.selectors import issue_stats
    from newsletter.services.issues import digest_send_for_day

    issue = digest_send_for_day(day=timezone.now().date())
    if issue is None:
        say("Digest: today's batch is not approved yet (approve it in admin, then send it)")
        return
    issue.refresh_from_db()
    stats = issue_stats(issue)
    say(
        f"Digest: today's issue is {issue.status}, {stats['sent']} emails sent to the outbox "
        f"({issue.content_count} distinct): {settings.SITE_URL}/outbox/"
    )


# Order matters: subscribers choose from the topics the sample batch's migration seeded, and
# the digest goes to those subscribers.
DEMO_STEPS: list[Callable[[Say], None]] = [
    step_admin,
    step_schedules,
    step_sample_batch,
    step_subscribers,
    step_send_digest,
    step_editor,
]


def demo_bootstrap(say: Say) -> None:
    for step in DEMO_STEPS:
        step(say)
    if settings.DEBUG:
        say(f"Outbox (mail Paperboy sent): {settings.SITE_URL}/outbox/  files in var/outbox/")
