from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from digests.services import batch_ingest
from digests.sources import SOURCES, local_file


class Command(BaseCommand):
    help = (
        "Fetch one day's trending papers into its batch (safe to run again: it refreshes). "
        "Exits non-zero when the fetch fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD (default: today, UTC)")
        parser.add_argument(
            "--file", help="read this file (API JSON or papers-page HTML) instead of upstream"
        )
        parser.add_argument(
            "--source",
            choices=sorted(SOURCES),
            help=f"where to read from (default: DIGEST_SOURCE={settings.DIGEST_SOURCE})",
        )

    def handle(self, *args, **options):
        try:
            day = (
                dt.date.fromisoformat(options["date"])
                if options["date"]
                else timezone.now().astimezone(dt.UTC).date()
            )
        except ValueError:
            raise CommandError(f"--date {options['date']!r} is not YYYY-MM-DD") from None
        source = options["source"]
        if options["file"] and source not in (None, local_file.NAME):
            raise CommandError(f"--file reads a file; it cannot be combined with --source {source}")

        report = batch_ingest(
            day=day, source_name=source, path=options["file"], progress=self.stdout.write
        )
        for error in report.errors:
            self.stderr.write(f"  skipped item: {error}")
        if report.failed:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))
