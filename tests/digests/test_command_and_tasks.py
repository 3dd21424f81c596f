from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from config.demo import step_sample_batch
from config.schedules import schedules_install
from digests import tasks
from digests.models import DailyBatch
from tests.digests.conftest import API_SAMPLE, PAGE_SAMPLE, Reply, api_body, api_items

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ingest_papers", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_prints_progress_and_a_summary():
    out, _ = run("--date", "2026-05-08", "--file", str(API_SAMPLE))

    lines = out.splitlines()
    assert lines[0] == "Fetching 2026-05-08 from file ..."
    assert "37 papers, 0 errors" in lines[1]
    assert lines[-1] == (
        "2026-05-08 from file: 37 new, 0 updated, 0 unchanged, 0 skipped, 0 errors; batch is draft"
    )


def test_the_command_defaults_to_today_utc():
    with time_machine.travel(dt.datetime(2026, 5, 10, 23, 30, tzinfo=dt.UTC)):
        run("--file", str(PAGE_SAMPLE))

    assert DailyBatch.objects.get().date == dt.date(2026, 5, 10)


def test_the_command_exits_non_zero_with_the_reason_on_failure(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"paper": ', encoding="utf-8")

    with pytest.raises(CommandError, match="FAILED: invalid JSON"):
        run("--date", "2026-05-08", "--file", str(broken))
    assert DailyBatch.objects.get().status == DailyBatch.Status.FAILED


def test_the_command_lists_skipped_items_on_stderr(tmp_path):
    partial = tmp_path / "partial.json"
    items = api_items()
    items[1]["paper"]["id"] = "nope"
    partial.write_text(json.dumps(items), encoding="utf-8")

    out, err = run("--date", "2026-05-08", "--file", str(partial))

    assert "36 new" in out and "1 errors" in out
    assert "paper id 'nope' is not an arXiv id" in err


def test_the_command_uses_the_named_source(upstream):
    upstream.replies = [Reply(body=api_body()), Reply(body="[]")]

    out, _ = run("--date", "2026-05-08", "--source", "hf_api")

    assert "37 new" in out
    assert upstream.api_requests()[0].query["date"] == "2026-05-08"


def test_the_command_rejects_bad_arguments():
    with pytest.raises(CommandError, match="not YYYY-MM-DD"):
        run("--date", "08/05/2026")
    with pytest.raises(CommandError, match="cannot be combined"):
        run("--file", str(API_SAMPLE), "--source", "hf_api")


def test_the_beat_task_ingests_today_and_the_two_days_before(settings):
    settings.DIGEST_SOURCE = "file"
    settings.DIGEST_SOURCE_FILE = str(API_SAMPLE)

    with time_machine.travel(dt.datetime(2026, 5, 10, 0, 5, tzinfo=dt.UTC)):
        days = tasks.ingest_recent_days.delay().get()

    assert days == ["2026-05-10", "2026-05-09", "2026-05-08"]
    assert sorted(DailyBatch.objects.values_list("date", "entry_count")) == [
        (dt.date(2026, 5, 8), 37),
        (dt.date(2026, 5, 9), 37),
        (dt.date(2026, 5, 10), 37),
    ]


def test_the_day_task_takes_a_date_string(settings):
    settings.DIGEST_SOURCE_FILE = str(API_SAMPLE)

    result = tasks.ingest_day.delay("2026-05-08", "file").get()

    assert result == {"day": "2026-05-08", "status": "draft", "new": 37, "failed": False}


def test_the_beat_entry_is_installed_as_a_utc_crontab():
    spec = django_settings.PAPERBOY_SCHEDULES["Ingest trending papers"]
    assert spec["task"] == tasks.ingest_recent_days.name

    schedules_install()

    task = PeriodicTask.objects.get(name="Ingest trending papers")
    assert task.task == "digests.tasks.ingest_recent_days"
    assert str(task.crontab.timezone) == "UTC"
    assert (task.crontab.minute, task.crontab.hour) == tuple(spec["crontab"].split()[:2])


def test_the_demo_step_fills_todays_batch_once():
    said: list[str] = []
    with time_machine.travel(dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)):
        step_sample_batch(said.append)
        step_sample_batch(said.append)

    batch = DailyBatch.objects.get()
    assert (batch.date, batch.entry_count, batch.runs.count()) == (dt.date(2026, 6, 1), 37, 1)
    assert "has 37 papers, ingested from the bundled sample" in said[0]
    assert "has 37 papers, already there" in said[1]
