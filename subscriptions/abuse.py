"""Per-IP rate limiting of the signup form, kept in the cache (Redis in production)."""

from __future__ import annotations

import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the socket peer, or the entry the trusted proxies appended."""
    candidate = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        # Each trusted proxy appends the address it saw; anything further left is the client's
        # own claim and can be forged, so count from the right.
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def ip_rate_limited(ip: str | None, *, scope: str = "signup") -> bool:
    """Count one request from `ip`; True once it is over the limit for the current window.

    A fixed window: cheap (one atomic INCR), and the worst case of twice the limit across a
    window boundary is fine for a signup form.
    """
    window = settings.SIGNUP_RATE_WINDOW_SECONDS
    bucket = int(time.time()) // window
    key = f"ratelimit:{scope}:{ip or 'unknown'}:{bucket}"
    # add() is a no-op if the key exists, so concurrent first requests do not reset the count.
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:
        # The key expired between add() and incr(): this is the first request of a window.
        cache.add(key, 1, timeout=window + 1)
        count = 1
    return count > settings.SIGNUP_RATE_LIMIT
