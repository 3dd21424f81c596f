#!/usr/bin/env python3
"""Paperboy's two everyday commands, needing nothing but Python 3.11+.

    python3 dev.py up     install into .venv, migrate, load the demo, serve http://127.0.0.1:8000
                          (or the port in PORT) with the beat scheduler running (tasks run
                          in-process); logs go to var/log/
    python3 dev.py test   run the whole test suite (extra arguments go to pytest)

Both create ``.venv`` and install ``requirements.lock`` into it when needed, then re-run
themselves inside it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".requirements.sha256"
# The same place settings.py keeps SQLite, the outbox and the demo credentials.
VAR = Path(os.environ.get("PAPERBOY_VAR_DIR") or ROOT / "var")
LOGS = VAR / "log"
SERVER_START_TIMEOUT = 60  # seconds for runserver to accept connections


def run(*args: str, **kwargs) -> None:
    subprocess.run(args, cwd=ROOT, check=True, **kwargs)


def ensure_virtualenv() -> None:
    """Create .venv and install the locked requirements when the lock file changed.

    pip's output goes to var/log/pip-install.log: a first install prints hundreds of lines that
    would bury what a newcomer needs to read. On failure the end of the log is shown.
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit("Paperboy needs Python 3.11 or newer.")
    if not VENV_PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        LOGS.mkdir(parents=True, exist_ok=True)
        log_path = LOGS / "pip-install.log"
        print(
            f"Installing requirements.lock into .venv (a few minutes the first time; "
            f"pip's output: {_shown(log_path)}) ...",
            flush=True,
        )
        pip = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check"]
        with log_path.open("wb") as log:
            result = subprocess.run(
                [*pip, "install", "-r", str(LOCK)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        if result.returncode != 0:
            print(_tail(log_path), file=sys.stderr)
            sys.exit(f"Installing requirements.lock failed; pip's whole output: {log_path}")
        STAMP.write_text(digest)


def _shown(path: Path) -> str:
    """A path as short as it can be said: relative to the checkout when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def in_virtualenv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def manage(*args: str) -> None:
    # The one-line JSON logs are for production's log collector; here the commands' own
    # sentences are what a person reads (LOG_LEVEL set by hand still wins).
    env = {**os.environ, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "ERROR")}
    run(sys.executable, "manage.py", *args, env=env)


def port_from_env() -> int:
    raw = os.environ.get("PORT", "").strip() or "8000"
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        sys.exit(f"PORT={raw!r} is not valid: use a number from 1 to 65535, e.g. PORT=8101")
    return int(raw)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until_serving(server: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            print(_tail(log_path), file=sys.stderr)
            sys.exit(f"The web server stopped while starting; its log: {_shown(log_path)}")
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"The web server did not answer on port {port}; its log: {_shown(log_path)}")


def cmd_up() -> int:
    port = port_from_env()
    if not port_free(port):
        sys.exit(
            f"Port {port} is already in use (another `dev.py up`?). Stop that, or pick "
            f"another port: PORT={port + 1} python3 dev.py up"
        )
    # settings.py builds the site URL from it, so every link in mail reaches this server.
    os.environ["PORT"] = str(port)
    LOGS.mkdir(parents=True, exist_ok=True)
    manage("migrate", "--no-input", "-v", "0")
    manage("bootstrap_demo")
    beat_log = (LOGS / "beat.log").open("ab")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO", "--pidfile="],
        cwd=ROOT,
        stdout=beat_log,
        stderr=subprocess.STDOUT,
    )
    web_log_path = LOGS / "web.log"
    web_log = web_log_path.open("ab")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        stdout=web_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_serving(server, port, web_log_path)
        # Printed once the server answers, so the address in it is one that works.
        manage("demo_welcome", "--served", f"http://127.0.0.1:{port}/", "--logs", _shown(LOGS))
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (server, beat):
            if process.poll() is None:
                process.terminate()
        server.wait(timeout=15)
        beat.wait(timeout=15)


def cmd_test(args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"up", "test"}:
        print(__doc__)
        return 2
    if not in_virtualenv():
        ensure_virtualenv()
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(ROOT / "dev.py"), *sys.argv[1:]])  # noqa: S606
    os.chdir(ROOT)
    if sys.argv[1] == "up":
        return cmd_up()
    return cmd_test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
