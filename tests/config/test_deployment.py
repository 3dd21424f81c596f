"""The pieces a deployment is made of: compose file, production checks, README commands."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
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


def docker_compose_config() -> str:
    """`docker-compose config`: the compose file validated and normalized (sorted, 2-space)."""
    if shutil.which("docker-compose") is None:
        service_missing("needs the docker-compose tool (Debian package docker-compose)")
    env = {
        **os.environ,
        "SECRET_KEY": "s",
        "PAPERBOY_HOST": "paperboy.example.org",
        "POSTGRES_PASSWORD": "pw",
        "ANYMAIL_API_KEY": "k",
        "ANYMAIL_WEBHOOK_SECRET": "a:b",
        "SENDER_POSTAL_ADDRESS": "Paperboy; 1 Main Street",
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
    return result.stdout


def compose_services(config: str) -> dict[str, str]:
    """Each service's block of `docker-compose config` output, by service name."""
    services = re.search(r"^services:\n((?:  .*\n|\n)*)", config, re.M)
    assert services, config
    parts = re.split(r"^  ([\w-]+):\n", services.group(1), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_it_passes_docker_compose_config():
    config = docker_compose_config()
    for service in ("caddy", "web", "worker", "beat", "postgres", "redis"):
        assert re.search(rf"^  {service}:$", config, re.M), service
    assert "/healthz" in config


def test_it_serves_only_through_caddy_with_the_matching_proxy_count():
    services = compose_services(docker_compose_config())
    proxies = [name for name, block in services.items() if "    image: caddy:" in block]
    assert proxies == ["caddy"]
    # Only the proxy publishes ports: a published gunicorn would let anyone write the
    # X-Forwarded-For entry Paperboy trusts.
    published = [name for name, block in services.items() if re.search(r"^    ports:", block, re.M)]
    assert published == ["caddy"]
    assert re.findall(r"published: (\d+)", services["caddy"]) == ["80", "443", "443"]
    count = re.search(r"^      TRUSTED_PROXY_COUNT: '?(\d+)'?$", services["web"], re.M)
    assert count, services["web"]
    assert int(count.group(1)) == len(proxies)
    assert f"{ROOT}/deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]
    assert "PAPERBOY_HOST: paperboy.example.org" in services["caddy"]


class _EchoHeaders(http.server.BaseHTTPRequestHandler):
    """An upstream standing in for gunicorn: answers with the request headers it received."""

    def do_GET(self) -> None:
        body = json.dumps(dict(self.headers.items())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


def test_it_has_caddy_overwrite_a_forged_x_forwarded_for(tmp_path):
    """The shipped Caddyfile, run by Caddy: the upstream sees the client's real address last."""
    if shutil.which("caddy") is None:
        service_missing("needs the caddy binary (Debian package caddy)")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = _free_port()
    env = {
        **os.environ,
        # A site address with a scheme and port: plain HTTP there, no certificate to obtain.
        "PAPERBOY_HOST": f"http://127.0.0.1:{port}",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    adapted = subprocess.run(
        ["caddy", "adapt", "--config", "deploy/Caddyfile", "--adapter", "caddyfile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert adapted.stdout.count('"dial":"web:8000"') == 1, adapted.stdout
    # The same routes, pointed at the stand-in upstream; no admin endpoint to collide on.
    config = json.loads(
        adapted.stdout.replace('"web:8000"', f'"127.0.0.1:{upstream.server_address[1]}"')
    )
    config["admin"] = {"disabled": True}
    test_config = tmp_path / "caddy.json"
    test_config.write_text(json.dumps(config))
    caddy = subprocess.Popen(
        ["caddy", "run", "--config", str(test_config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "caddy.log").open("wb"),
        start_new_session=True,
    )
    try:
        headers = None
        deadline = time.monotonic() + 20
        while headers is None and time.monotonic() < deadline and caddy.poll() is None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/",
                headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    headers = json.loads(response.read())
            except OSError:
                time.sleep(0.2)
        assert headers is not None, (tmp_path / "caddy.log").read_text()[-3000:]
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)
        upstream.shutdown()
    # Caddy sets the address it saw, dropping the client's claim; the scheme is its own too.
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"


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
        # dev.py prints its welcome block once it has seen the server answer, a moment after.
        block_deadline = time.monotonic() + 30
        output = (tmp_path / "up.log").read_text(errors="replace")
        while "Ctrl-C" not in output and time.monotonic() < block_deadline:
            time.sleep(0.5)
            output = (tmp_path / "up.log").read_text(errors="replace")
        assert body is not None, f"no healthy /healthz; output:\n{output[-5000:]}"
        assert '"status": "ok"' in body
        assert re.search(r"user: admin\s+password: \S+", output), output[-3000:]
        assert (checkout / "var" / "paperboy.sqlite3").exists()
        # One block, printed once the server answers, with the port really served.
        assert f"Paperboy is running at http://127.0.0.1:{port}/" in output
        assert f"http://127.0.0.1:{port}/outbox/" in output
        assert "Ctrl-C" in output
        assert "Collecting " not in output  # pip's noise went to var/log/pip-install.log
        assert (checkout / "var" / "log" / "pip-install.log").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
