"""Each provider call takes its turn of the shared send rate at the last moment before it goes out.

The provider counts calls by when they reach it. A turn taken before the call's payload is built
(fill 50 bodies of 31 KB, serialize 1.5 MB of JSON) reaches it later by however long that took,
and by however late the worker woke from its sleep on a busy machine; two calls admitted 1.025 s
apart could then arrive less than a second apart. So, for backends that post over requests,
the turn is taken inside the session's transport adapter, once the request is prepared: reserve
a slot, sleep until it, then `RateLimiter.depart`, which counts the call from the moment it
really leaves and makes it wait again if a call before it left late. Backends without a
requests session take it at their own last moment through ``pace_with(pacer)``: Amazon SES
in boto3's ``before-send`` event, once the call is serialized and signed
(newsletter/amazon_ses.py); SMTP once the message's bytes are built, right before they are
written (newsletter/smtp.py).
"""

from __future__ import annotations

import time

from anymail.backends.base_requests import AnymailRequestsBackend
from requests.adapters import HTTPAdapter

from newsletter.services import rate


def call_admitted(gate: rate.RateLimiter, count: int) -> None:
    """Wait for the turn of a call of `count` emails; return when it may go out.

    Raises rate.RateWait (nothing reserved) when the turn is further off than a worker sleeps.
    """
    slot = gate.slot(count)
    if not slot.now:
        raise rate.RateWait("waiting for the provider's send rate", slot.wait)
    deadline = time.monotonic() + rate.MAX_SLEEP_SECONDS
    wait = slot.wait
    while True:
        time.sleep(wait)
        remaining = max(0.0, deadline - time.monotonic())
        turn = gate.depart(slot, max_wait=remaining)
        if turn.now:
            return
        if turn.wait > remaining:
            # A pause (a 429 met by another worker) pushed the turn past what a worker waits;
            # the reservation is gone, the task retries.
            raise rate.RateWait("waiting for the provider's send rate", turn.wait)
        wait = turn.wait


class CallPacer:
    """The turn-taking of one backend: `count` is the emails of the call about to be made.

    `quota`: the provider's daily-quota hold (provider_quota), looked at once the turn has
    come, so a call that waited for its turn while another worker's call was answered that the
    quota is used up does not go out after all."""

    def __init__(self, gate: rate.RateLimiter, quota=None) -> None:
        self.gate = gate
        self.quota = quota
        self.count = 0

    def turn(self) -> None:
        call_admitted(self.gate, self.count)
        if self.quota is not None:
            self.quota.check()


class PacedAdapter(HTTPAdapter):
    """requests' HTTP adapter, taking the call's turn when the request is ready to go out."""

    def __init__(self, pacer: CallPacer) -> None:
        super().__init__()
        self.pacer = pacer

    def send(self, request, *args, **kwargs):
        self.pacer.turn()
        return super().send(request, *args, **kwargs)


def paced_backend(backend, gate: rate.RateLimiter, quota=None) -> CallPacer | None:
    """Open `backend`'s requests session with the pacing adapter mounted (or hand a backend
    that takes its turns itself its pacer); its pacer, or None for a backend that can do
    neither (the caller then takes each turn itself).

    The session stays open for the whole chunk (one connection reused); the caller closes the
    backend. `quota`: see CallPacer.
    """
    if hasattr(backend, "pace_with"):
        if getattr(backend, "pacer", None) is None:
            backend.pace_with(CallPacer(gate, quota))
        return backend.pacer  # a later call of the same chunk: same backend, same pacer
    if not isinstance(backend, AnymailRequestsBackend):
        return None
    backend.open()
    mounted = backend.session.get_adapter("http://")
    if isinstance(mounted, PacedAdapter):
        return mounted.pacer  # a later call of the same chunk: same session, same pacer
    pacer = CallPacer(gate, quota)
    adapter = PacedAdapter(pacer)
    backend.session.mount("http://", adapter)
    backend.session.mount("https://", adapter)
    return pacer
