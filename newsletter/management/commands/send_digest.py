from __future__ import annotations

import time
from collections import Counter
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from digests.models import DailyBatch
from newsletter.models import Delivery, Issue
from newsletter.rendering import IssueRenderer
from newsletter.selectors import issue_stats
from newsletter.services.issues import digest_send_for_day
from newsletter.services.planning import issue_plan

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Send the digest of a day's approved batch (once; running it again changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD (default: today, UTC)")
        parser.add_argument(
            "--dry-run", action="store_true", help="show who would get what; send nothing"
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="enqueue and return without a progress bar"
        )

    def handle(self, *args, **options):
        try:
            day = date.fromisoformat(options["date"]) if options["date"] else timezone.now().date()
        except ValueError:
            raise CommandError(f"--date {options['date']!r} is not YYYY-MM-DD") from None
        if options["dry_run"]:
            return self._dry_run(day)
        issue = digest_send_for_day(day=day)
        if issue is None:
            raise CommandError(f"no approved batch for {day}: approve it in admin first")
        if not options["no_wait"]:
            self._wait(issue)
        self._summary(issue)

    def _dry_run(self, day: date) -> None:
        batch = DailyBatch.objects.daily().filter(date=day).first()
        if batch is None:
            raise CommandError(f"no batch for {day}")
        plan = issue_plan(batch=batch)
        statuses = Counter(status for _, status, _, _ in plan.rows)
        self.stdout.write(
            f"{day}: batch {batch.status}; would send {statuses[Delivery.Status.PENDING]}, "
            f"skip {statuses[Delivery.Status.SKIPPED]} (no matching papers); "
            f"{len(plan.contents)} distinct emails"
        )
        groups = Counter(key for _, _, _, key in plan.rows if key)
        renderer = IssueRenderer(batch)
        selections = {key: sel for _, _, sel, key in plan.rows if key}
        for key, count in groups.most_common(3):
            subject = renderer.render(selections[key], key).subject
            self.stdout.write(f"  {count:>7} x {subject}")

    def _wait(self, issue: Issue) -> None:
        total = max(1, issue.recipient_count)
        while True:
            issue.refresh_from_db()
            stats = issue_stats(issue)
            done = total - stats["pending"] - stats["sending"]
            filled = round(BAR_WIDTH * done / total)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}", ending=""
            )
            self.stdout.flush()
            if issue.status != Issue.Status.SENDING:
                break
            time.sleep(0.5)
        self.stdout.write("")

    def _summary(self, issue: Issue) -> None:
        s = issue_stats(issue)
        self.stdout.write(
            f"{issue}: {issue.status}; sent {s['sent']}, unknown {s['unknown']}, "
            f"failed {s['failed']}, skipped {s['skipped']}, pending {s['pending'] + s['sending']}; "
            f"{issue.content_count} distinct emails"
        )
