"""The provider's own daily quota, when it answers that it is used up (Amazon SES's
``ACCOUNT_DAILY_QUOTA_EXCEEDED`` destinations, its "Daily message quota exceeded" error).

It is handled as our own day's budget running out (newsletter/services/rate.py): what the
provider did not take stays pending, in order, with no attempt counted, and is never failed
for it; the issue waits (``Issue.send_waiting_until``) and the sweeper enqueues its rows again
once the wait is over. And because the provider counts the account, not a worker, the answer
holds every worker: the hold lives in Redis beside the send rate's budget
(``SEND_RATE_REDIS_URL``, on Redis's clock); each chunk of any issue looks at it before it
claims anything, and each call right before it goes out (after its turn of the send rate,
which may have been a wait). Without that Redis only the issue whose call got the answer
waits; another issue learns it from its own first call, which the provider answers the same
way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings

from newsletter import providers
from newsletter.services import rate

logger = logging.getLogger(__name__)


def retry_seconds() -> float:
    """How long every worker holds off once the provider says its daily quota is used up
    (SEND_PROVIDER_QUOTA_RETRY_SECONDS, an hour by default).

    SES's quota is a rolling 24-hour window, not a calendar day: room comes back as the emails
    sent 24 hours earlier age out of it, within minutes for an account that sent all day, up
    to a day after a burst (a digest sent at one hour), and the answer does not say which. An
    hour resumes sending within an hour of there being room again and costs, while there is
    none, one call an hour (answered the same way, nothing lost); a pause of seconds (a
    throttle's) would only spend the claim's retries, and 24 hours would leave a day's room
    unused after a burst. (SES's advice for its throttling errors, to wait up to 10 minutes,
    is for the per-second rate.)
    """
    return float(settings.SEND_PROVIDER_QUOTA_RETRY_SECONDS)


# KEYS: hold (hash: reported, until). ARGV: seconds. Holds until now + seconds unless the hold
# in force lasts longer; returns {reported, until} of the hold then in force, and now (Redis's
# clock).
_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local current = redis.call('HMGET', KEYS[1], 'reported', 'until')
if current[2] and tonumber(current[2]) >= until_ then
  return {current[1], current[2], tostring(now)}
end
redis.call('HSET', KEYS[1], 'reported', tostring(now), 'until', tostring(until_))
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
return {tostring(now), tostring(until_), tostring(now)}
"""


class QuotaExhausted(rate.RateWait):
    """A call was answered that the provider's daily quota is used up: nothing more goes to
    it for `seconds`. (A RateWait, so concurrent sends stop starting calls as for any wait.)"""


@dataclass(frozen=True)
class Hold:
    reported_at: datetime  # when the provider's answer set the hold in force
    until: datetime
    seconds: float  # left of it


class ProviderQuota:
    """One provider's hold, shared by every worker (see the module's docstring)."""

    def __init__(self, client: redis.Redis, provider: str) -> None:
        self.client = client
        self.key = f"paperboy:rate:{provider}:quota-exhausted"
        self._report = client.register_script(_REPORT)

    def report_exhausted(self, seconds: float) -> Hold:
        """Hold every worker off the provider for `seconds` (or the hold already in force,
        if longer); the hold in force."""
        reported, until, now = self._report(keys=[self.key], args=[seconds])
        return _hold(float(reported), float(until), float(now))

    def check(self) -> None:
        """Raise QuotaExhausted while a hold is in force: right before a call goes out."""
        try:
            hold = self.hold()
        except redis.RedisError:
            # Not a reason to fail a send half made (its answered calls are recorded after it):
            # the call goes, and the provider itself answers if its quota is used up.
            logger.exception("could not look at the provider's daily quota hold")
            return
        if hold is not None:
            raise QuotaExhausted("the provider's daily quota is used up", hold.seconds)

    def hold(self) -> Hold | None:
        """The hold in force, or None."""
        pipe = self.client.pipeline()
        pipe.hmget(self.key, "reported", "until")
        pipe.time()
        (reported, until), (seconds, micros) = pipe.execute()
        now = seconds + micros / 1e6
        if until is None or float(until) <= now:
            return None
        return _hold(float(reported), float(until), now)


def _hold(reported: float, until: float, now: float) -> Hold:
    return Hold(
        reported_at=datetime.fromtimestamp(reported, UTC),
        until=datetime.fromtimestamp(until, UTC),
        seconds=max(0.0, until - now),
    )


def provider_quota() -> ProviderQuota | None:
    """The configured provider's hold, or None: a provider that never answers so, or no Redis
    to share a hold in."""
    if not providers.provider().reports_daily_quota or not settings.SEND_RATE_REDIS_URL:
        return None
    return ProviderQuota(rate.shared_redis(settings.SEND_RATE_REDIS_URL), providers.provider_name())


def held_for() -> float:
    """Seconds left of the configured provider's hold (0: none): every worker looks before it
    claims anything."""
    quota = provider_quota()
    if quota is None:
        return 0.0
    try:
        hold = quota.hold()
    except redis.RedisError:
        # As in check(): the chunk goes on, and the provider answers if the quota is used up.
        logger.exception("could not look at the provider's daily quota hold")
        return 0.0
    return hold.seconds if hold is not None else 0.0


def exhausted() -> QuotaExhausted:
    """The provider just answered that its daily quota is used up: hold every worker off it,
    and the wait for the call's chunk to act on (raise)."""
    seconds = retry_seconds()
    quota = provider_quota()
    if quota is not None:
        try:
            seconds = quota.report_exhausted(seconds).seconds
        except redis.RedisError:
            # The answer is recorded and this chunk still stops: only the other workers do not
            # learn it from Redis, but from their own next call.
            logger.exception("could not record the provider's daily quota hold")
    logger.warning(
        "the provider's daily quota is used up; sending waits",
        extra={"provider": providers.provider_name(), "seconds": seconds},
    )
    return QuotaExhausted("the provider's daily quota is used up", seconds)


def admin_rows() -> list[tuple[str, str]]:
    """The hold as the issue page's send-rate table shows it (none: no rows)."""
    quota = provider_quota()
    if quota is None:
        return []
    try:
        hold = quota.hold()
    except redis.RedisError as error:
        return [("provider's daily quota", f"unavailable: {error}")]
    if hold is None:
        return []
    return [
        (
            "provider's daily quota",
            f"used up: {providers.provider_name()} said so at "
            f"{hold.reported_at:%Y-%m-%d %H:%M:%S} UTC; sending resumes at "
            f"{hold.until:%Y-%m-%d %H:%M:%S} UTC",
        )
    ]
