"""The pieces a deployment is made of: compose file, production checks, README commands."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.config.test_settings import PRODUCTION
from tests.external import ROOT, service_missing


def readme_quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, re.S)
    assert block, "the Quick start section has no fenced block"
    return [line.strip() for line in block.group(1).strip().splitlines()]


def test_it_has_two_commands_in_the_quick_start():
    commands = readme_quick_start()
    assert len(commands) == 2, commands
    assert commands == ["python3 dev.py up", "python3 dev.py test"]


def test_it_runs_the_readme_test_command_in_ci():
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert readme_quick_start()[1] in ci_script


def test_it_passes_docker_compose_config():
    if shutil.which("docker-compose") is None:
        service_missing("needs the docker-compose tool (Debian package docker-compose)")
    env = {
        **os.environ,
        "SECRET_KEY": "s",
        "PAPERBOY_HOST": "paperboy.example.org",
        "POSTGRES_PASSWORD": "pw",
        "ANYMAIL_API_KEY": "k",
        "ANYMAIL_WEBHOOK_SECRET": "a:b",
    }
    result = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for service in ("web", "worker", "beat", "postgres", "redis"):
        assert re.search(rf"^  {service}:$", result.stdout, re.M), service
    assert "/healthz" in result.stdout


def test_it_passes_check_deploy_with_production_settings(tmp_path):
    env = {**os.environ, **PRODUCTION, "PAPERBOY_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_checkout(destination: Path) -> None:
    """What a fresh clone holds: tracked files plus new ones not ignored."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.mark.slow
def test_it_serves_a_healthy_site_from_the_readme_first_command(tmp_path):
    checkout = tmp_path / "paperboy"
    _copy_checkout(checkout)
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "REDIS_URL",
            "ANYMAIL_ESP",
            "DJANGO_SETTINGS_MODULE",
            "VIRTUAL_ENV",
        }
    }
    env["PORT"] = str(port)
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen(
        readme_quick_start()[0].split(),
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900  # a fresh .venv install is most of this
        body = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(1)
        output = (tmp_path / "up.log").read_text(errors="replace")
        assert body is not None, f"no healthy /healthz; output:\n{output[-5000:]}"
        assert '"status": "ok"' in body
        assert re.search(r"user: admin\s+password: \S+", output), output[-3000:]
        assert (checkout / "var" / "paperboy.sqlite3").exists()
        assert "Scheduler (celery beat) running" in output
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
