"""The external services some tests need: PostgreSQL, Redis, Celery worker processes, Chromium.

On a newcomer's machine without them, tests that need one skip with a reason naming it. CI sets
PAPERBOY_REQUIRE_SERVICES=1, which turns those skips into failures.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.db import connection

from devtools.processes import ROOT as ROOT  # the repository root, for tests that run commands
from devtools.processes import ChildProcess

REQUIRE_SERVICES = os.environ.get("PAPERBOY_REQUIRE_SERVICES", "") == "1"
# Database 15 keeps test traffic away from anything a developer runs on 0.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (required: PAPERBOY_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        service_missing(
            f"needs PostgreSQL: DATABASE_URL points at {connection.vendor}; "
            "set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test"
        )


def require_redis() -> str:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        service_missing(f"needs Redis at {TEST_REDIS_URL}: {exc}")
    return TEST_REDIS_URL


def database_address() -> tuple[str, int]:
    s = connection.settings_dict
    return s.get("HOST") or "127.0.0.1", int(s.get("PORT") or 5432)


def database_url_for_subprocess(port: int | None = None) -> str:
    """The URL of the database this test runs on (the test database, not the configured one),
    optionally through another port on 127.0.0.1 (a TcpProxy)."""
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host, port = ("127.0.0.1", port) if port else database_address()
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    """Environment for a child process that shares this test's database and broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url_for_subprocess(),
        CELERY_BROKER_URL=TEST_REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


class WorkerProcess(ChildProcess):
    """A real ``celery worker`` process, started and stopped by a test."""

    def __init__(self, env: dict[str, str], log_path: Path, *, concurrency: int = 1) -> None:
        super().__init__(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork",
             f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel=INFO"],
            env,
            log_path,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 30) -> None:
        self.wait_for(b" ready.", timeout)

    def log(self) -> str:
        return self.tail()


@contextmanager
def celery_worker(
    tmp_path: Path, *, concurrency: int = 1, flush: bool = True, **env: str
) -> Iterator[WorkerProcess]:
    """Start a real worker on the test database and a Redis broker; stop it afterwards.

    Needs PostgreSQL (a child process cannot see an in-memory SQLite test database) and Redis.
    """
    require_postgres()
    url = require_redis()
    if flush:
        redis.Redis.from_url(env.get("CELERY_BROKER_URL", url)).flushdb()
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    worker = WorkerProcess(service_env(**env), log, concurrency=concurrency)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")


@contextmanager
def celery_broker(url: str | None = None) -> Iterator[str]:
    """Make this test process publish tasks to the real Redis broker, not run them eagerly.

    Tasks then run only in worker processes started with celery_worker().
    """
    from config.celery import app

    url = url or require_redis()
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}

    def drop_connections() -> None:
        # Celery caches connection and producer pools, kombu keeps a global registry of them.
        app._pool = None
        app.amqp._producer_pool = None
        kombu.pools.reset()

    drop_connections()  # those to the previous broker
    app.conf.update(broker_url=url, task_always_eager=False)
    try:
        yield url
    finally:
        drop_connections()
        app.conf.update(saved)


CHROMIUM = Path("/usr/bin/chromium")
# Flags for headless Chromium in containers and CI (see the guide).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def require_chromium() -> str:
    """Path of the Chromium binary the browser tests drive through Playwright."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        service_missing(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    return str(CHROMIUM)


class TcpProxy:
    """A TCP forwarder to a service (PostgreSQL), that a test can take down and bring back:
    a restart of that service as its clients see it, without touching the shared server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection_ in connections:
            with contextlib.suppress(OSError):
                connection_.shutdown(socket.SHUT_RDWR)
            connection_.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
