"""GET with timeouts and bounded retries, shared by the sources that go over HTTP.

Retries only what is worth retrying: 429, 5xx, timeouts and connection errors. The wait is
the server's Retry-After (or RateLimit reset) when it gives one, exponential backoff otherwise,
never longer than DIGEST_HTTP_BACKOFF_MAX so a task cannot sleep past its time limit.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}


class FetchError(Exception):
    """The upstream could not be read; the message says why, for admin and the command."""


@dataclass
class Response:
    """A 2xx answer as bytes: decoding is digests.sources.decoding's job, for every source."""

    url: str
    status: int
    content: bytes
    content_type: str = ""


def user_agent() -> str:
    return f"Paperboy/0.1 (daily research digest; +{settings.SITE_URL})"


def make_client() -> httpx.Client:
    headers = {"User-Agent": user_agent(), "Accept": "application/json, text/html;q=0.9"}
    if settings.DIGEST_HF_TOKEN:
        headers["Authorization"] = f"Bearer {settings.DIGEST_HF_TOKEN}"
    return httpx.Client(
        headers=headers, timeout=settings.DIGEST_HTTP_TIMEOUT, follow_redirects=True
    )


def retry_delay(response: httpx.Response | None, attempt: int) -> float:
    """Seconds to wait before attempt number attempt+1."""
    cap = float(settings.DIGEST_HTTP_BACKOFF_MAX)
    if response is not None:
        hinted = _hinted_delay(response.headers)
        if hinted is not None:
            return min(max(hinted, 0.0), cap)
    return min(float(settings.DIGEST_HTTP_BACKOFF) * (2**attempt), cap)


def _hinted_delay(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    if value:
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return when.timestamp() - time.time()
    # Hugging Face documents IETF RateLimit headers: 'RateLimit: "api";r=0;t=42'.
    match = re.search(r"\bt=(\d+)", headers.get("ratelimit", ""))
    if match:
        return float(match.group(1))
    reset = headers.get("ratelimit-reset", "").strip()
    if reset.isdigit():
        return float(reset)
    return None


def get(
    client: httpx.Client,
    url: str,
    *,
    params: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Response:
    """The response body of a 2xx answer; FetchError once retries are used up."""
    retries = int(settings.DIGEST_HTTP_RETRIES)
    last_problem = ""
    for attempt in range(retries + 1):
        response = None
        try:
            response = client.get(url, params=params)
        except httpx.TimeoutException:
            last_problem = f"timed out after {settings.DIGEST_HTTP_TIMEOUT}s"
        except httpx.TransportError as exc:
            last_problem = f"connection failed: {exc.__class__.__name__}: {exc}"
        else:
            if response.is_success:
                return Response(
                    str(response.url),
                    response.status_code,
                    response.content,
                    response.headers.get("content-type", ""),
                )
            last_problem = f"HTTP {response.status_code}"
            if response.status_code not in RETRY_STATUSES:
                raise FetchError(f"GET {response.url} answered {last_problem}")
        if attempt < retries:
            delay = retry_delay(response, attempt)
            logger.warning(
                "upstream fetch failed, retrying",
                extra={"url": url, "problem": last_problem, "delay": delay, "attempt": attempt},
            )
            sleep(delay)
    raise FetchError(f"GET {url} failed after {retries + 1} attempts: {last_problem}")
