"""What every fake provider API shares: a threaded HTTP server on a free local port, holding
the fake's state for its handler, served for the length of a ``with`` block."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class LocalFake:
    """``with FakeX() as fake:`` serves on ``fake.url`` until the block ends.

    A fake names its state's class, its request handler (which finds the state at
    ``self.server.state``) and the path of the API's base URL under the server's root."""

    state_class: ClassVar[type]
    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    base_path: ClassVar[str] = ""

    def __init__(self, port: int = 0) -> None:
        self.state: Any = self.state_class()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self.handler_class)
        self._server.daemon_threads = True
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
