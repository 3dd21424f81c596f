"""The real httpx client against a real HTTP server on 127.0.0.1 serving upstream's bodies."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest

from digests.models import DailyBatch, IngestRun, Paper
from digests.services import batch_ingest
from digests.sources import http
from tests.digests.conftest import Reply, api_body, api_items, page_body

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 5, 8)


def paginate(request) -> Reply:
    """Serve the sample the way the API pages it: p (from 0) and limit."""
    page, limit = int(request.query["p"]), int(request.query["limit"])
    return Reply(body=json.dumps(api_items()[page * limit : (page + 1) * limit]))


def test_it_reads_every_page_until_an_empty_one(upstream, settings):
    settings.DIGEST_API_PAGE_SIZE = 20
    upstream.handler = paginate

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert (report.new, report.errors, report.fatal) == (37, [], "")
    assert [r.query for r in upstream.api_requests()] == [
        {"date": "2026-05-08", "p": "0", "limit": "20"},
        {"date": "2026-05-08", "p": "1", "limit": "20"},
        {"date": "2026-05-08", "p": "2", "limit": "20"},
    ]
    batch = DailyBatch.objects.get()
    assert (batch.status, batch.source, batch.entry_count) == ("draft", "hf_api", 37)
    assert len(IngestRun.objects.get().raw_payload) == 3


def test_it_stops_when_the_server_ignores_the_page_parameter(upstream):
    upstream.replies = [Reply(body=api_body())]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.new == 37 and report.skipped == 0
    assert len(upstream.api_requests()) == 2


def test_it_names_itself_and_sends_the_token_only_when_set(upstream, settings):
    upstream.replies = [Reply(body="[]")]
    batch_ingest(day=DAY, source_name="hf_api")
    settings.DIGEST_HF_TOKEN = "hf_secret"
    batch_ingest(day=DAY, source_name="hf_api")

    first, second = upstream.api_requests()
    assert first.headers["user-agent"].startswith("Paperboy/")
    assert "authorization" not in first.headers
    assert second.headers["authorization"] == "Bearer hf_secret"


def test_429_with_retry_after_waits_that_long_then_succeeds(upstream):
    upstream.replies = [
        Reply(status=429, headers={"Retry-After": "1"}, body="slow down"),
        Reply(body=api_body()),
        Reply(body="[]"),
    ]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.new == 37 and not report.failed
    first, second = upstream.api_requests()[:2]
    # The backoff alone would have waited 0.01s: the second second is Retry-After's.
    assert second.at - first.at >= 0.95


def test_500_then_success_is_retried_with_backoff(upstream):
    upstream.replies = [Reply(status=500, body="oops"), Reply(body=api_body()), Reply(body="[]")]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.new == 37 and not report.failed
    assert len(upstream.api_requests()) == 3
    assert DailyBatch.objects.get().status == DailyBatch.Status.DRAFT


def test_a_500_that_persists_fails_the_run_after_the_bounded_retries(upstream, settings):
    settings.DIGEST_HTTP_RETRIES = 2
    upstream.replies = [Reply(status=503, body="down")]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.failed and "failed after 3 attempts: HTTP 503" in report.fatal
    assert len(upstream.api_requests()) == 3
    batch = DailyBatch.objects.get()
    assert batch.status == DailyBatch.Status.FAILED
    assert "HTTP 503" in batch.error


def test_a_400_is_not_retried(upstream):
    upstream.replies = [Reply(status=400, body='{"error":"Invalid date"}')]

    report = batch_ingest(day=dt.date(2099, 1, 1), source_name="hf_api")

    assert "answered HTTP 400" in report.fatal
    assert len(upstream.api_requests()) == 1


def test_a_timeout_is_retried_and_then_recorded(upstream, settings):
    settings.DIGEST_HTTP_TIMEOUT = 0.2
    settings.DIGEST_HTTP_RETRIES = 1
    upstream.replies = [Reply(delay=0.6, body=api_body())]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.failed and "timed out after 0.2s" in report.fatal
    assert len(upstream.api_requests()) == 2
    assert DailyBatch.objects.get().status == DailyBatch.Status.FAILED
    assert Paper.objects.count() == 0


def test_a_timeout_then_an_answer_succeeds(upstream, settings):
    settings.DIGEST_HTTP_TIMEOUT = 0.2
    upstream.replies = [Reply(delay=0.6, body="[]"), Reply(body=api_body()), Reply(body="[]")]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.new == 37 and not report.failed


def test_truncated_json_fails_the_run_and_keeps_the_body(upstream):
    truncated = api_body()[:30_000]
    upstream.replies = [Reply(body=truncated)]

    report = batch_ingest(day=DAY, source_name="hf_api")

    assert report.failed and report.fatal.startswith("page 0: invalid JSON")
    assert len(upstream.api_requests()) == 1  # a 200 with a broken body is not retried
    run = IngestRun.objects.get()
    assert not run.ok and run.raw_payload[0]["body"] == truncated
    assert DailyBatch.objects.get().status == DailyBatch.Status.FAILED


def test_an_empty_day_is_empty(upstream):
    upstream.replies = [Reply(body="[]")]

    report = batch_ingest(day=dt.date(2026, 5, 9), source_name="hf_api")

    assert not report.failed and report.new == 0
    assert DailyBatch.objects.get().status == DailyBatch.Status.EMPTY
    assert len(upstream.api_requests()) == 1


def test_the_page_source_reads_the_html_over_http(upstream):
    upstream.replies = [Reply(body=page_body(), headers={"Content-Type": "text/html"})]

    report = batch_ingest(day=dt.date(2024, 8, 1), source_name="hf_page")

    assert report.new == 13
    assert upstream.requests[0].path == "/papers/date/2024-08-01"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "999"}, 60.0),  # capped by DIGEST_HTTP_BACKOFF_MAX
        ({"RateLimit": '"api";r=0;t=12'}, 12.0),
        ({"RateLimit-Reset": "3"}, 3.0),
        ({}, 8.0),  # backoff 2 * 2**2
    ],
)
def test_retry_delay_reads_the_server_hints(settings, headers, expected):
    settings.DIGEST_HTTP_BACKOFF = 2
    settings.DIGEST_HTTP_BACKOFF_MAX = 60
    response = httpx.Response(429, headers=headers)

    assert http.retry_delay(response, attempt=2) == expected
