"""What the Mailgun and SendGrid fakes share besides the server (devtools/fakes/serving.py):
each recipient's filled copy, expanded as the provider would expand it, and misbehaving on
demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devtools.fakes.serving import Counters, FakeHandler


@dataclass
class CountingState(Counters):
    """What a fake received (the counters and each recipient's copy), and how it should
    misbehave next."""

    api_key: str = ""
    copies: list[dict] = field(default_factory=list)  # each recipient's filled copy
    refuse: set[str] = field(default_factory=set)  # addresses the API answers 400 for
    _failures: list[int] = field(default_factory=list)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next send calls with these HTTP statuses (429, 500, ...)."""
        with self.lock:
            self._failures.extend(statuses)

    def take_failure(self) -> int | None:
        with self.lock:
            return self._failures.pop(0) if self._failures else None

    def recipients(self) -> list[str]:
        with self.lock:
            return [c["to"] for c in self.copies]

    def record(self, copies: list[dict], arrived: float) -> None:
        """A call's accepted copies (each with its "to" address)."""
        self.accepted_count([c["to"] for c in copies], arrived)
        if self.store:
            with self.lock:
                self.copies.extend(copies)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.copies.clear()


class CountingHandler(FakeHandler):
    """Subclasses implement ``send(path, headers, raw, arrived)`` for their provider's send
    endpoint."""

    state: CountingState

    def post(self, raw: bytes, arrived: float) -> None:
        self.send(self.path, self.headers, raw, arrived)

    def send(self, path: str, headers, raw: bytes, arrived: float) -> None:
        raise NotImplementedError
