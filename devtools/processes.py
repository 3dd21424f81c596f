"""A child process with its output in a log file: the workers of the worker tests, and the
fake provider, workers and baseline of the benchmark (bench/). No test-framework imports."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ChildProcess:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        # Where this process's output starts: a log may be shared with earlier runs (the
        # benchmark's rounds), and their "ready" must not count as this one's.
        self._log_start = self._log.tell()
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so signals reach its children too (a worker's pool)
        )

    def wait_for(self, marker: bytes, timeout: float = 60) -> None:
        """Wait until the log shows `marker`; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.output():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} exited:\n{self.tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"{self.process.args} not ready after {timeout}s:\n{self.tail()}")

    def output(self) -> bytes:
        """What this process has written to its log so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read()

    def tail(self) -> str:
        return self.output()[-4000:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process and its children, as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def children(self) -> list[int]:
        """Process ids of this process's direct children (a Celery worker's pool processes)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def kill_children(self) -> list[int]:
        """SIGKILL the children only, as the kernel's OOM killer would a pool process; the
        parent lives on and sees them die. Returns their ids."""
        pids = self.children()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
