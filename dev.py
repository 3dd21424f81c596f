#!/usr/bin/env python3
"""Paperboy's two everyday commands, needing nothing but Python 3.11+.

    python3 dev.py up     install into .venv, migrate, load the demo, serve http://127.0.0.1:8000
                          with the beat scheduler running (tasks run in-process)
    python3 dev.py test   run the whole test suite (extra arguments go to pytest)

Both create ``.venv`` and install ``requirements.lock`` into it when needed, then re-run
themselves inside it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".requirements.sha256"


def run(*args: str, **kwargs) -> None:
    subprocess.run(args, cwd=ROOT, check=True, **kwargs)


def ensure_virtualenv() -> None:
    """Create .venv and install the locked requirements when the lock file changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit("Paperboy needs Python 3.11 or newer.")
    if not VENV_PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        print("Installing requirements.lock into .venv ...", flush=True)
        pip = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
        run(*pip, "install", "-r", str(LOCK))
        STAMP.write_text(digest)


def in_virtualenv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def manage(*args: str) -> None:
    run(sys.executable, "manage.py", *args)


def cmd_up() -> int:
    (ROOT / "var" / "log").mkdir(parents=True, exist_ok=True)
    # The demo approves each ingested batch itself, so today's digest goes out at once.
    os.environ.setdefault("DIGEST_AUTO_APPROVE", "true")
    manage("migrate", "--no-input", "-v", "0")
    manage("bootstrap_demo")
    beat_log = (ROOT / "var" / "log" / "beat.log").open("ab")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO", "--pidfile="],
        cwd=ROOT,
        stdout=beat_log,
        stderr=subprocess.STDOUT,
    )
    print("Scheduler (celery beat) running; its log is var/log/beat.log", flush=True)
    port = os.environ.get("PORT", "8000")
    print(f"Serving http://127.0.0.1:{port}  (Ctrl-C stops everything)", flush=True)
    try:
        return subprocess.call(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
        )
    except KeyboardInterrupt:
        return 0
    finally:
        beat.terminate()
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
