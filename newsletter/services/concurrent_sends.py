"""A chunk's single sends over a few connections at once.

A provider that takes one copy per call (``Provider.merges`` and ``one_call_per_chunk``
false: Amazon SES, SMTP; Resend's copies share one batch call) costs a round trip per copy: one
at a time, a worker sends about 1/RTT copies a second (10 at 100 ms). Here the copies go out
over up to ``SEND_CONCURRENCY`` connections at once, each its own backend (neither a requests
session nor an SMTP connection is shared between threads), each reused for the whole chunk.

What the send code (``sending._chunk_send_through``) reads stays as it was with one connection:
the copies answered carry their ``anymail_status``, and one error says what happened to the
rest. The first failure stops copies from starting (those in flight finish), and the error
returned is the most cautious of those seen: a copy that may have been taken (unknown) over a
certain "not taken" (429/5xx, unreachable) over a refusal. It carries every copy of its kind
in ``email_messages``, so the send code asks the provider about each copy whose outcome is
unknown and never gives one back to be sent again. Threads only talk to the provider: rows are
read and written by the caller, on its own database connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue

from anymail.exceptions import AnymailError
from anymail.message import AnymailMessage

from newsletter.services import rate

SendOne = Callable[[object, AnymailMessage], "AnymailError | None"]


def send_concurrently(
    messages: list[AnymailMessage],
    *,
    first_backend,
    open_backend: Callable[[], object],
    send_one: SendOne,
    caution: Callable[[AnymailError], int],
    concurrency: int,
) -> AnymailError | None:
    """Send each message with `send_one(backend, message)` over at most `concurrency`
    backends: `first_backend` (the caller's to close), then ones made by `open_backend()` as
    threads need them (closed here). `caution(error)`: 0 for a copy that may have been taken,
    higher for ones certainly not (the lowest wins).

    Returns the error the caller acts on, or None. Raises the longest rate.RateWait met
    (nothing of that copy sent; the provider's daily quota used up outwaits a turn of the send
    rate) unless a copy's outcome is unknown: that error is returned instead, as it must be
    settled before anything else.
    """
    idle: SimpleQueue = SimpleQueue()
    idle.put(first_backend)
    opened: list = []
    opened_lock = threading.Lock()
    stop = threading.Event()
    failures: list[tuple[AnymailMessage, AnymailError]] = []
    waits: list[rate.RateWait] = []

    def backend_take():
        with contextlib.suppress(Empty):
            return idle.get_nowait()
        with opened_lock:
            if len(opened) + 1 < concurrency:
                backend = open_backend()
                opened.append(backend)
                return backend
        return idle.get()  # all made and busy: wait for one

    def one(message: AnymailMessage) -> None:
        if stop.is_set():
            return  # after a failure nothing new starts: left unanswered, certainly not sent
        backend = backend_take()
        try:
            error = send_one(backend, message)
        except rate.RateWait as wait:
            waits.append(wait)
            stop.set()
            return
        except BaseException:
            stop.set()  # raised to the caller once the copies in flight are done
            raise
        finally:
            idle.put(backend)
        if error is not None:
            failures.append((message, error))
            stop.set()

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
            for future in [pool.submit(one, message) for message in messages]:
                future.result()  # an unexpected exception of a thread is raised here
    finally:
        for backend in opened:
            backend.close()
    chosen = _most_cautious(failures, caution)
    if waits and (chosen is None or caution(chosen) != 0):
        raise max(waits, key=lambda wait: wait.seconds)
    return chosen


def _most_cautious(
    failures: list[tuple[AnymailMessage, AnymailError]], caution: Callable
) -> AnymailError | None:
    if not failures:
        return None
    kinds = [(caution(error), message, error) for message, error in failures]
    rank = min(kind for kind, _, _ in kinds)
    same = [(message, error) for kind, message, error in kinds if kind == rank]
    error = same[0][1]
    error.email_messages = [message for message, _ in same]
    return error
