"""`python3 dev.py up` on a port other than 8000: what it prints and the links it mails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from email import policy
from email.parser import BytesParser

import pytest

from tests.external import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path, port) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "ANYMAIL_ESP", "SITE_URL"}
        and not k.startswith("PYTEST_")
    }
    env.update(PORT=str(port), PAPERBOY_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="")
    env.pop("DJANGO_SETTINGS_MODULE")
    return env


def _up(tmp_path, port, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "dev.py", "up"],
        cwd=ROOT,
        env=_env(tmp_path, port),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("port", ["http", "0", "99999"])
def test_it_refuses_a_bad_port_with_a_clear_message(tmp_path, port):
    result = _up(tmp_path, port)
    assert result.returncode != 0
    assert f"PORT={port!r} is not valid" in result.stderr
    assert not (tmp_path / "var").exists()  # stopped before touching anything


def test_it_says_when_the_port_is_taken_and_which_to_try(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _up(tmp_path, port)
    assert result.returncode != 0
    assert f"Port {port} is already in use" in result.stderr
    assert f"PORT={port + 1} python3 dev.py up" in result.stderr


@pytest.mark.slow
def test_it_serves_and_mails_links_on_the_port_it_was_given(tmp_path):
    port = _free_port()
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "dev.py", "up"],
            cwd=ROOT,
            env=_env(tmp_path, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C" not in log_path.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        output = log_path.read_text()
        assert f"Paperboy is running at http://127.0.0.1:{port}/" in output, output
        assert ":8000" not in output
        # The one block comes last, after the demo's lines, and no JSON log line is in it.
        block = output[output.index("Paperboy is running at") :]
        assert "user: admin  password: " in block and f":{port}/outbox/" in block
        assert '{"time"' not in output
        # The demo's sent example: every link and List-Unsubscribe follows the port.
        mails = sorted((tmp_path / "var" / "outbox").glob("*.eml"))
        assert mails
        for path in mails:
            message = BytesParser(policy=policy.default).parse(path.open("rb"))
            assert message["List-Unsubscribe"].strip().startswith(f"<http://127.0.0.1:{port}/u/")
            text = message.get_body(("plain",)).get_content()
            assert f"http://127.0.0.1:{port}/p/" in text and ":8000" not in text
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
