from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
API_SAMPLE = FIXTURES / "hf_daily_papers_api_2026-05-08.json"
# The page sample doubles as the demo's sent example, so it lives with the app.
PAGE_SAMPLE = Path(__file__).resolve().parents[2] / "digests" / "sample" / "hf_papers_page.html"
CORPUS = FIXTURES / "trending-papers-page.txt"


def api_body() -> str:
    return API_SAMPLE.read_text(encoding="utf-8")


def api_items() -> list[dict]:
    return json.loads(api_body())


def page_body() -> str:
    return PAGE_SAMPLE.read_text(encoding="utf-8")


def corpus_papers() -> list[tuple[str, str]]:
    """(title, abstract) of the corpus: 5 header blocks, then title and abstract blocks."""
    blocks = [b.strip() for b in CORPUS.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    blocks = blocks[5:]
    return [(blocks[i], blocks[i + 1]) for i in range(0, len(blocks), 2)]


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


class Upstream:
    """A real HTTP server on 127.0.0.1 whose answers a test scripts.

    ``replies`` are served in order (the last one repeats); ``handler`` (if set) computes a
    reply from the request instead.
    """

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.handler = None
        self.requests: list[Request] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                request = Request(
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    at=time.monotonic(),
                )
                upstream.requests.append(request)
                if upstream.handler is not None:
                    reply = upstream.handler(request)
                else:
                    reply = (
                        upstream.replies.pop(0)
                        if len(upstream.replies) > 1
                        else upstream.replies[0]
                    )
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test): nothing to answer

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def api_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/api/daily_papers"]


@pytest.fixture
def upstream(settings) -> Iterator[Upstream]:
    server = Upstream()
    server.thread.start()
    settings.DIGEST_HF_API_URL = f"{server.url}/api/daily_papers"
    settings.DIGEST_HF_PAGE_URL = f"{server.url}/papers/date/{{date}}"
    settings.DIGEST_HTTP_TIMEOUT = 0.5
    settings.DIGEST_HTTP_RETRIES = 2
    settings.DIGEST_HTTP_BACKOFF = 0.01
    settings.DIGEST_HTTP_BACKOFF_MAX = 5
    settings.DIGEST_HF_TOKEN = ""
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
