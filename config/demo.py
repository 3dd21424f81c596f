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


def demo_credentials() -> dict[str, str]:
    """The demo logins created so far (username to password), for the welcome block."""
    path = _credentials_file()
    return json.loads(path.read_text()) if path.exists() else {}


def step_admin(say: Say) -> None:
    username, password = demo_user(
        username="admin", email="admin@paperboy.localhost", superuser=True
    )
    say(f"Admin login: {settings.SITE_URL}/admin/  user: {username}  password: {password}")


def step_schedules(say: Say) -> None:
    created = schedules_install()
    say(f"Schedules: {len(settings.PAPERBOY_SCHEDULES)} installed ({len(created)} new)")


def _utc_today():
    import datetime as dt

    from django.utils import timezone

    return timezone.now().astimezone(dt.UTC).date()


def _batch_filled(day, path: Path):
    """The batch of `day`, ingested from the sample at `path` unless it already has papers
    (from an earlier run or from upstream). Returns the batch and how it got its papers."""
    from digests.models import DailyBatch
    from digests.services import batch_ingest

    batch = DailyBatch.objects.daily().filter(date=day).first()
    if batch is not None and batch.entry_count:
        return batch, "already there"
    report = batch_ingest(day=day, path=path)
    return (
        DailyBatch.objects.get(pk=report.batch_id),
        f"ingested from the bundled sample ({report.new} new papers)",
    )


def step_sample_batch(say: Say) -> None:
    """Today's batch from the bundled sample (digests/sample/), left as a draft for an editor to
    review (unless DIGEST_AUTO_APPROVE): a newcomer has something to curate right away."""
    today = _utc_today()
    batch, how = _batch_filled(today, Path(settings.DIGEST_SOURCE_FILE))
    waiting = " waiting for review" if batch.status == batch.Status.DRAFT else ""
    say(
        f"Digest: today's batch ({today}, {batch.status}{waiting}) has {batch.entry_count} "
        f"papers, {how}: {settings.SITE_URL}/admin/digests/dailybatch/{batch.pk}/change/"
    )


# A second real upstream day (the Hugging Face papers page of 2024-08-01, 13 papers), other
# papers than today's sample: the sent example uses it, so today's draft still has news.
SENT_EXAMPLE_SAMPLE = Path(__file__).resolve().parent.parent / "digests/sample/hf_papers_page.html"


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


def step_sent_example(say: Say) -> None:
    """Yesterday's digest, sent to the demo subscribers, so the outbox and the archive have an
    issue to open. Once: when any issue exists (sent by an earlier run, or an editor) it stays
    as it is, and nobody gets a second digest."""
    import datetime as dt

    from digests.services import batch_approve
    from newsletter.models import Issue
    from newsletter.selectors import issue_stats
    from newsletter.services.issues import digest_send_for_day

    issue = Issue.objects.order_by("-batch__date").first()
    if issue is None:
        day = _utc_today() - dt.timedelta(days=1)
        batch, _ = _batch_filled(day, SENT_EXAMPLE_SAMPLE)
        if batch.status == batch.Status.DRAFT and batch.entry_count:
            batch_approve(batch=batch)
        issue = digest_send_for_day(day=day)
        if issue is None:
            say(f"Sent example: skipped, the batch of {day} has no papers to send")
            return
        how = "sent now"
    else:
        how = "already there"
    issue.refresh_from_db()
    stats = issue_stats(issue)
    say(
        f"Sent example: the digest of {issue.batch.date} is {issue.status} ({how}), "
        f"{stats['sent']} emails to the outbox ({issue.content_count} distinct): "
        f"{settings.SITE_URL}/outbox/"
    )


# Order matters: subscribers choose from the topics the sample batch's migration seeded, the
# sent example goes to those subscribers, and today's draft comes after it so that its papers
# are not the ones just sent.
DEMO_STEPS: list[Callable[[Say], None]] = [
    step_admin,
    step_schedules,
    step_subscribers,
    step_sent_example,
    step_sample_batch,
    step_editor,
]


def demo_bootstrap(say: Say) -> None:
    for step in DEMO_STEPS:
        step(say)


def demo_welcome(*, served: str, logs: str) -> list[str]:
    """The block `python3 dev.py up` prints once the server answers: where to go, how to log
    in, where mail goes, how to stop. `served` is the address the server really listens on."""
    served = served.rstrip("/")
    logins = demo_credentials()
    roles = {"admin": "Admin (everything)", "editor": "Editor (curation)"}
    lines = [f"Paperboy is running at {served}/"]
    for username, role in roles.items():
        if username in logins:
            lines.append(
                f"  {role + ':':<21} {served}/admin/  user: {username}  password: "
                f"{logins[username]}"
            )
    if settings.EMAIL_BACKEND == "config.outbox.OutboxEmailBackend":
        outbox = Path(settings.EMAIL_OUTBOX_DIR)
        if outbox.is_relative_to(settings.BASE_DIR):
            outbox = outbox.relative_to(settings.BASE_DIR)
        lines.append(f"  {'Outbox (mail sent):':<21} {served}/outbox/  files in {outbox}")
    lines.append(f"  {'Logs:':<21} {logs}  (web.log, beat.log: the scheduler, Celery beat)")
    if served != settings.SITE_URL:
        # An explicit SITE_URL (a proxy, another host name) wins over the port.
        lines.append(f"  {'Links in email:':<21} {settings.SITE_URL}/ (from SITE_URL)")
    lines.append(f"  {'Stop:':<21} Ctrl-C")
    rule = "-" * max(len(line) for line in lines)
    return [rule, *lines, rule]
