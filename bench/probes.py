"""What a round reads while it runs: each process's peak memory and CPU time, PostgreSQL's CPU
time and transaction count, and the fake provider's counters."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import psutil

from bench.environment import with_database


def vm_hwm_mb(pid: int) -> float:
    """The kernel's record of a process's peak resident set, in MB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemoryWatch:
    """Samples the RSS of named process trees every INTERVAL s; keeps each process's peak."""

    # VmHWM is the kernel's exact peak, so sampling only has to catch each process once;
    # a faster poll would take CPU from the processes being measured (2 cores).
    INTERVAL = 0.5

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}
        self.peaks: dict[str, float] = {}  # "role (pid)" -> MB
        self.cpu: dict[str, float] = {}  # CPU seconds since the watch started
        self._cpu_start: dict[str, float] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, role: str, pid: int) -> None:
        self.roots[role] = pid

    def start(self) -> None:
        self._thread.start()

    def _processes(self):
        for role, pid in list(self.roots.items()):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                yield f"{role}", root
                if role == "bench":
                    continue  # its children are the other roots
                for index, child in enumerate(root.children(recursive=True), start=1):
                    yield f"{role} child {index}", child

    def sample(self) -> None:
        for role, process in self._processes():
            with contextlib.suppress(psutil.Error):
                name = self._names.setdefault(process.pid, role)
                rss = process.memory_info().rss / 2**20
                peak = max(rss, vm_hwm_mb(process.pid))
                self.peaks[name] = max(self.peaks.get(name, 0.0), peak)
                times = process.cpu_times()
                used = times.user + times.system
                self.cpu[name] = used - self._cpu_start.setdefault(name, used)

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self.sample()

    def stop(self) -> None:
        self.sample()  # last look at every process's high-water mark before they go
        self._stop.set()
        self._thread.join()


def postgres_cpu_s() -> float:
    """CPU seconds used so far by all PostgreSQL server processes on this machine.

    Backends that have exited count too, through the postmaster's total for its reaped
    children: a worker that reconnects (CELERY_DB_REUSE_MAX) ends a backend mid-run.
    """
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in {"postgres", "postmaster"}:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    return total


def pg_xact_commit(url: str) -> int:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [name]
        ).fetchone()
    return int(row[0])


def fake_stats(url: str, *, reset: bool = False) -> dict:
    if reset:
        urlopen(Request(url + "_fake/reset", data=b"", method="POST"), timeout=10).read()  # noqa: S310
    with urlopen(url + "_fake/stats", timeout=10) as response:  # noqa: S310
        return json.loads(response.read())
