"""The baseline: django-newsletter sending the same papers to the same subscribers.

Run by ``bench/send_bench.py`` in a process of its own (``python -m bench.baseline ...``): the
django-newsletter package is also named ``newsletter``, like Paperboy's app, so the two cannot
share a process. It gets its own database, the same Anymail Postmark backend class
(Paperboy's ``newsletter/backends.py``, loaded by file) and the same fake provider. The send
is django-newsletter's own: ``Submission.from_message(message).submit()``, one rendered
message per subscriber, each sent with ``message.send()``, as its ``submit_newsletter``
command does. Writes its figures as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import html
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from bench import ROOT


def _load_django_newsletter() -> None:
    """Import django-newsletter as ``newsletter``, past Paperboy's app of the same name."""
    elsewhere = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    spec = importlib.machinery.PathFinder.find_spec("newsletter", elsewhere)
    if spec is None or spec.origin is None or Path(spec.origin).resolve().parent.parent == ROOT:
        raise SystemExit("django-newsletter is not installed: pip install django-newsletter")
    module = importlib.util.module_from_spec(spec)
    sys.modules["newsletter"] = module
    spec.loader.exec_module(module)
    # Paperboy's backend module, by file: `newsletter.backends` now means django-newsletter.
    # The two Paperboy modules it imports go in under their own names first (django-newsletter
    # has none of these names); they need no Paperboy app.
    for name, file in [
        ("newsletter.providers", "providers.py"),
        ("newsletter.composition", "composition.py"),
        ("paperboy_postmark_backend", "backends.py"),
    ]:
        spec = importlib.util.spec_from_file_location(name, ROOT / "newsletter" / file)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)


def peak_rss_mb() -> float:
    """This process's peak resident set (the kernel's VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", required=True, help="file with one address per line")
    parser.add_argument("--papers", required=True, help="JSON list of {title, summary, url}")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.baseline_settings"
    _load_django_newsletter()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from newsletter.utils import make_activation_code

    from newsletter.models import Article, Message, Newsletter, Submission, Subscription

    call_command("migrate", verbosity=0)
    emails = Path(args.emails).read_text().split()
    papers = json.loads(Path(args.papers).read_text())

    Submission.objects.all().delete()
    Message.objects.all().delete()
    Subscription.objects.all().delete()
    paperboy, _ = Newsletter.objects.get_or_create(
        slug="paperboy-daily",
        defaults={
            "title": "Paperboy daily",
            "email": "digest@paperboy.localhost",
            "sender": "Paperboy",
        },
    )
    now = timezone.now()
    Subscription.objects.bulk_create(
        (
            Subscription(
                newsletter=paperboy,
                email_field=email,
                name_field="",
                subscribed=True,
                subscribe_date=now,
                activation_code=make_activation_code(),
            )
            for email in emails
        ),
        batch_size=5000,
    )
    message = Message.objects.create(title="Trending papers", slug="today", newsletter=paperboy)
    for position, paper in enumerate(papers, start=1):
        Article.objects.create(
            post=message,
            sortorder=position * 10,
            title=paper["title"][:200],
            text=f"<p>{html.escape(paper['summary'])}</p>",
            url=paper["url"],
        )
    submission = Submission.from_message(message)
    submission.publish_date = now - timezone.timedelta(seconds=1)
    submission.prepared = True
    submission.save()

    queries: Counter[str] = Counter()

    def count(execute, sql, params, many, context):
        queries[sql.lstrip().split(" ", 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started, cpu_started = time.perf_counter(), time.process_time()
        Submission.submit_queue()  # what django-newsletter's submit_newsletter command runs
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    Path(args.out).write_text(
        json.dumps(
            {
                "name": "django-newsletter",
                "version": _version("django-newsletter"),
                "subscribers": len(emails),
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "emails_per_s": round(len(emails) / wall, 1),
                "db_queries": sum(queries.values()),
                "db_queries_by_kind": dict(queries),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    main()
