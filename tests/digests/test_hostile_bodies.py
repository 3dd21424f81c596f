"""Upstream bodies that are not clean UTF-8 text: a NUL byte, UTF-16, binary, truncated.

PostgreSQL refuses U+0000 in text and jsonb (and lone surrogates anywhere), so on PostgreSQL
a body that reached the database unread used to abort the whole ingest with nothing recorded.
Each body here is a real fixture broken in memory.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import random
import subprocess
import sys

import pytest

from devtools.processes import ROOT
from digests import text
from digests.models import DailyBatch, IngestRun, Paper
from digests.services import batch_ingest
from digests.sources import hf_api, hf_page
from tests.digests.conftest import Reply, api_body, api_items, page_body
from tests.external import require_postgres, service_env

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 5, 8)
FIRST_ID = api_items()[0]["paper"]["id"]


def nul_in_a_title() -> str:
    body = api_body()
    return body.replace('"title":"', '"title":"\x00', 1)


def nul_between_tokens() -> str:
    body = api_body()
    return body[:1] + "\x00" + body[1:]


def random_binary() -> bytes:
    return random.Random(20260508).randbytes(4096)


def ingest_file(tmp_path, data: bytes):
    path = tmp_path / "day.json"
    path.write_bytes(data)
    return batch_ingest(day=DAY, path=path)


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_no_control_characters(value: object) -> None:
    """Nothing PostgreSQL would refuse (U+0000, lone surrogates) nor any other control
    character but tab and line breaks, in any string of it."""
    bad = [
        ch
        for s in strings(value)
        for ch in s
        if (ord(ch) < 32 and ch not in "\t\n\r")
        or 0x7F <= ord(ch) < 0xA0
        or 0xD800 <= ord(ch) < 0xE000
    ]
    assert bad == []


@pytest.mark.parametrize("make", [nul_in_a_title, nul_between_tokens])
def test_it_removes_nul_bytes_from_a_file_and_ingests_the_day(tmp_path, make):
    report = ingest_file(tmp_path, make().encode("utf-8"))

    assert not report.failed, report.fatal
    assert (report.new, report.errors) == (37, [])
    run = IngestRun.objects.get()
    assert run.ok
    # What is kept for audit is the body as decoded, minus what the database cannot hold.
    assert run.raw_payload[0]["body"] == api_body()
    assert "removed 1 NUL or control character" in run.error
    assert "removed 1 NUL or control character" in DailyBatch.objects.get().error
    assert Paper.objects.get(arxiv_id=FIRST_ID).title == " ".join(
        api_items()[0]["paper"]["title"].split()
    )


@pytest.mark.parametrize(
    "codec, bom",
    [
        ("utf-16-le", b""),
        ("utf-16-be", b""),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-8", codecs.BOM_UTF8),
    ],
)
def test_it_reads_a_file_in_utf16_with_or_without_a_bom(tmp_path, codec, bom):
    report = ingest_file(tmp_path, bom + api_body().encode(codec))

    assert not report.failed, report.fatal
    assert (report.new, report.errors) == (37, [])
    run = IngestRun.objects.get()
    assert run.raw_payload[0]["body"] == api_body()
    assert run.raw_payload[0]["encoding"] == codec
    # Non-ASCII text survived the decoding (the sample has CJK and accented names).
    assert sorted(Paper.objects.values_list("title", flat=True)) == sorted(
        " ".join(item["paper"]["title"].split()) for item in api_items()
    )


def test_it_refuses_a_binary_file_and_records_why(tmp_path):
    report = ingest_file(tmp_path, random_binary())

    assert report.failed
    assert "binary" in report.fatal
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.FAILED
    assert "binary" in batch.error
    run = IngestRun.objects.get()
    assert not run.ok and "binary" in run.error
    # Random bytes are not kept as if they were text.
    assert run.raw_payload[0]["body"] == ""
    assert run.raw_payload[0]["size"] == 4096


def test_a_binary_body_keeps_what_the_batch_held(tmp_path):
    ingest_file(tmp_path, api_body().encode())

    report = ingest_file(tmp_path, random_binary())

    assert report.failed
    batch = DailyBatch.objects.get()
    assert batch.entries.count() == 37 and batch.status == DailyBatch.Status.DRAFT
    assert IngestRun.objects.filter(ok=False).count() == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(nul_in_a_title().encode()[:5000], id="truncated-with-nul"),
        pytest.param(api_body().encode("utf-16-le")[:5001], id="truncated-utf16-odd-byte"),
        pytest.param(b"\x00" * 64, id="only-nul"),
    ],
)
def test_a_broken_body_is_a_recorded_failure_not_a_crash(tmp_path, data):
    report = ingest_file(tmp_path, data)

    assert report.failed
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.FAILED and batch.error.startswith("Fetch failed: ")
    run = IngestRun.objects.get()
    assert not run.ok and run.error == batch.error
    assert_no_control_characters(run.raw_payload)
    assert_no_control_characters(batch.error)


def test_escaped_nul_and_lone_surrogates_inside_json_strings_never_reach_the_database(tmp_path):
    items = api_items()
    paper = items[0]["paper"]
    paper["title"] = "Dif\u0000fusion \ud800Models"
    paper["summary"] = "An abstract\u0000 with a NUL."
    paper["projectPage"] = "https://example.org/project\ud800"
    paper["githubRepo"] = "https://github.com/example/\x80repo"
    paper["authors"] = [{"name": "Ada\u0000 Lovelace"}]
    paper["ai_keywords"] = ["multi\u0000agent"]
    body = json.dumps(items)  # ASCII, with \u0000 and \ud800 escapes

    report = ingest_file(tmp_path, body.encode())

    assert not report.failed, report.fatal
    stored = Paper.objects.get(arxiv_id=paper["id"])
    assert stored.title == "Diffusion Models"
    assert stored.abstract == "An abstract with a NUL."
    assert (stored.project_url, stored.code_url) == ("", "")
    assert (stored.authors, stored.ai_keywords) == (["Ada Lovelace"], ["multiagent"])


# --- Over HTTP ---------------------------------------------------------------------------------


def test_the_api_answering_a_nul_byte_is_cleaned(upstream):
    upstream.replies = [Reply(body=nul_in_a_title().encode()), Reply(body=b"[]")]

    report = batch_ingest(day=DAY, source_name=hf_api.NAME)

    assert not report.failed, report.fatal
    assert report.new == 37
    assert IngestRun.objects.get().raw_payload[0]["body"] == api_body()


@pytest.mark.parametrize(
    "data, content_type",
    [
        (api_body().encode("utf-16-le"), "application/json"),
        (api_body().encode("utf-16-be"), "application/json; charset=utf-16be"),
        (codecs.BOM_UTF16_BE + api_body().encode("utf-16-be"), "application/json; charset=utf-8"),
    ],
)
def test_the_api_answering_utf16_is_decoded(upstream, data, content_type):
    upstream.replies = [Reply(body=data, headers={"Content-Type": content_type}), Reply(body="[]")]

    report = batch_ingest(day=DAY, source_name=hf_api.NAME)

    assert not report.failed, report.fatal
    assert report.new == 37
    assert IngestRun.objects.get().raw_payload[0]["body"] == api_body()


def test_the_api_declared_charset_is_used(upstream):
    items = api_items()[:1]
    items[0]["paper"]["title"] = "Caf\u00e9 Transformers"
    data = json.dumps(items, ensure_ascii=False).encode("iso-8859-1", errors="replace")
    upstream.replies = [
        Reply(body=data, headers={"Content-Type": "application/json; charset=ISO-8859-1"}),
        Reply(body="[]"),
    ]

    report = batch_ingest(day=DAY, source_name=hf_api.NAME)

    assert not report.failed, report.fatal
    assert Paper.objects.get().title == "Caf\u00e9 Transformers"


def test_the_api_answering_binary_is_a_recorded_failure(upstream):
    upstream.replies = [
        Reply(body=random_binary(), headers={"Content-Type": "application/octet-stream"})
    ]

    report = batch_ingest(day=DAY, source_name=hf_api.NAME)

    assert report.failed and "binary" in report.fatal
    assert "binary" in DailyBatch.objects.get().error
    run = IngestRun.objects.get()
    assert not run.ok and run.raw_payload[0]["body"] == ""


def test_the_page_answering_nul_bytes_is_cleaned(upstream):
    body = (
        page_body()
        .replace("<article", "\x00<article")
        .replace("&quot;title&quot;", "\x00&quot;title&quot;")
    )
    upstream.replies = [Reply(body=body.encode(), headers={"Content-Type": "text/html"})]

    report = batch_ingest(day=DAY, source_name=hf_page.NAME)

    assert not report.failed, report.fatal
    assert report.new == 13
    run = IngestRun.objects.get()
    assert run.raw_payload[0]["body"] == page_body()
    assert "NUL or control character" in run.error


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF16_LE])
def test_the_page_in_utf16_is_decoded_although_its_meta_says_utf8(upstream, bom):
    assert '<meta charset="utf-8"' in page_body()
    upstream.replies = [
        Reply(body=bom + page_body().encode("utf-16-le"), headers={"Content-Type": "text/html"})
    ]

    report = batch_ingest(day=DAY, source_name=hf_page.NAME)

    assert not report.failed, report.fatal
    assert report.new == 13


# --- What an operator sees --------------------------------------------------------------------


def test_a_value_the_database_refuses_is_a_recorded_failure(tmp_path, monkeypatch):
    """If cleaning ever misses something PostgreSQL refuses, the run is still recorded."""
    require_postgres()
    monkeypatch.setattr(text, "without_controls", lambda value: (value, 0))
    monkeypatch.setattr(text, "storable", lambda value: value)

    report = ingest_file(tmp_path, nul_in_a_title().encode())

    assert report.failed
    assert report.fatal.startswith("the database refused the fetched data: ")
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.FAILED and batch.entries.count() == 0
    run = IngestRun.objects.get()
    assert not run.ok and "the database refused" in run.error
    assert run.raw_payload[0]["url"].endswith("/day.json") and "body" not in run.raw_payload[0]


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "ingest_papers", "--date", DAY.isoformat(), *args],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def human_lines(output: str) -> list[str]:
    """What a person reads: the output without the JSON log records."""
    return [line for line in output.splitlines() if line and not line.startswith("{")]


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_1_with_one_clear_line_on_a_binary_file(tmp_path):
    require_postgres()
    path = tmp_path / "day.json"
    path.write_bytes(random_binary())

    done = command("--file", str(path))

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [line] = human_lines(done.stderr)
    assert line.startswith(f"CommandError: {DAY} from file: 0 new,")
    assert "FAILED: the body is binary, not text (4096 bytes" in line
    assert DailyBatch.objects.get().status == DailyBatch.Status.FAILED
    assert "binary" in IngestRun.objects.get().error


@pytest.mark.django_db(transaction=True)
def test_the_command_ingests_a_file_with_a_nul_and_says_what_it_removed(tmp_path):
    require_postgres()
    path = tmp_path / "day.json"
    path.write_bytes(nul_between_tokens().encode())

    done = command("--file", str(path))

    assert done.returncode == 0, done.stderr
    assert human_lines(done.stderr) == []
    last = human_lines(done.stdout)[-1]
    assert last.startswith(f"{DAY} from file: 37 new,")
    assert last.endswith("removed 1 NUL or control character(s) from the utf-8 body")
