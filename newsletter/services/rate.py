"""The provider's send rate, shared by every worker: emails per second, hourly and daily quotas,
a warm-up schedule for a new sending domain, and the pause a 429's Retry-After asks for.

All of it lives in Redis and changes only inside Lua scripts, which Redis runs atomically, so
workers on any number of machines share one budget and one clock (Redis's ``TIME``):

- **Per second**: a sliding-window log. A call of n emails is admitted at the first moment T
  (not before the latest admission, so calls keep their order) at which the calls admitted in
  the window before T plus n stay within the limit; the worker sleeps until T. This is exact
  for "never more than the limit in any second" at admission, which a token bucket is not (a
  full bucket plus a second's refill is twice the limit in one second). The window is a
  little longer than a second (``WINDOW_GUARD_SECONDS``) because a call reaches the provider
  a few milliseconds after its admission, by a delay that varies from call to call.
- **Per hour / per day**: counters of the current UTC hour and day. The day's cap is the
  smaller of the daily quota and the warm-up schedule's cap for the day. What does not fit
  waits for the next hour or day: a chunk takes only what fits, and the rest stays pending.
- **Pause**: a 429 sets a pause until its Retry-After for every worker of that provider; so
  does a recipient the provider answered "not now" (SES's throttled destinations), for
  ``DEFAULT_PAUSE_SECONDS``. The provider's own daily quota reported used up holds every
  worker far longer, as the day's budget does (newsletter/services/provider_quota.py).

Keys are per provider (``paperboy:rate:<provider>:...``), so switching providers starts a new
budget.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

import redis
from django.conf import settings

from newsletter import providers

WINDOW_GUARD_SECONDS = 0.025  # measured arrival jitter at a local provider: a few ms
WINDOW_SECONDS = 1.0 + WINDOW_GUARD_SECONDS
MAX_SLEEP_SECONDS = 30.0  # a worker waits this long for its turn; longer, the task retries
HISTORY_SECONDS = 60  # admissions kept for the admin's "current rate"
DEFAULT_PAUSE_SECONDS = 5.0  # a 429 without a usable Retry-After

# KEYS: log (zset), pause, hour (hash), day (hash).
# ARGV: n, per_second, window, per_hour, per_day, max_wait, mode, token, warm_start, caps...
#   mode "peek": how many of n fit now and the wait, nothing taken;
#   "quota": take n from the hour and day counters (all or nothing);
#   "refund": give n back to them; "slot": reserve a per-second slot for n (waiting up to
#   max_wait; longer, nothing is reserved).
# Returns {verdict, wait seconds, count}: verdict "ok", "wait" (the per-second slot or a pause
# is further than max_wait), "hour" or "day" (that quota is used up; wait is until it renews),
# "short" (quota: another worker took what a peek had found; count is what is left).
_SCRIPT = """
local n = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local per_hour = tonumber(ARGV[4])
local per_day = tonumber(ARGV[5])
local max_wait = tonumber(ARGV[6])
local mode = ARGV[7]
local warm_start = tonumber(ARGV[9])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hour = math.floor(now / 3600)
local day = math.floor(now / 86400)
if warm_start >= 0 and #ARGV > 9 then
  local i = math.max(1, day - warm_start + 1)
  if i <= #ARGV - 9 then
    local cap = tonumber(ARGV[9 + i])
    if per_day == 0 or cap < per_day then per_day = cap end
  end
end
local function used(key, current)
  local h = redis.call('HMGET', key, 'window', 'used')
  if tonumber(h[1]) == current then return tonumber(h[2]) or 0 end
  return 0
end
local function add(key, current, count, ttl)
  if used(key, current) == 0 then
    redis.call('HSET', key, 'window', current, 'used', math.max(0, count))
  else
    redis.call('HINCRBY', key, 'used', count)
  end
  redis.call('EXPIRE', key, ttl)
end
if mode == 'refund' then
  add(KEYS[3], hour, -n, 7200)
  add(KEYS[4], day, -n, 172800)
  return {'ok', '0', tostring(n)}
end
if mode == 'peek' or mode == 'quota' then
  local hour_used = used(KEYS[3], hour)
  local day_used = used(KEYS[4], day)
  local fit = n
  if per_day > 0 then fit = math.min(fit, per_day - day_used) end
  if per_hour > 0 then fit = math.min(fit, per_hour - hour_used) end
  if per_second > 0 and mode == 'peek' then fit = math.min(fit, per_second) end
  if fit <= 0 then
    if per_day > 0 and day_used >= per_day then
      return {'day', tostring((day + 1) * 86400 - now), '0'}
    end
    return {'hour', tostring((hour + 1) * 3600 - now), '0'}
  end
  if mode == 'quota' then
    if fit < n then return {'short', '1', tostring(fit)} end
    add(KEYS[3], hour, n, 7200)
    add(KEYS[4], day, n, 172800)
    return {'ok', '0', tostring(n)}
  end
  n = fit
end
-- The earliest admission for n emails: not during a pause, not before the latest admission,
-- and with the emails admitted in the window before it plus n within the limit.
local at = now
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > at then at = pause end
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #last > 0 and tonumber(last[2]) > at then at = tonumber(last[2]) end
if per_second > 0 then
  n = math.min(n, per_second)
  local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (at - window), '+inf', 'WITHSCORES')
  local sum = 0
  for i = 1, #entries, 2 do sum = sum + tonumber(string.match(entries[i], '^(%d+):')) end
  for i = 1, #entries, 2 do
    local score = tonumber(entries[i + 1])
    if score > at - window then
      if sum + n <= per_second then break end
      at = score + window
    end
    sum = sum - tonumber(string.match(entries[i], '^(%d+):'))
  end
end
local wait = at - now
if wait > max_wait then return {'wait', tostring(wait), tostring(n)} end
if mode == 'slot' then
  redis.call('ZADD', KEYS[1], at, n .. ':' .. ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
  redis.call('EXPIRE', KEYS[1], 120)
end
return {'ok', tostring(wait), tostring(n)}
"""

# KEYS: log, pause. ARGV: member (a reserved call's "n:token"), per_second, window, max_wait.
# Right before a reserved call goes out. It goes now if no pause holds and the emails of the
# calls admitted in the window before now (itself left out) plus its own stay within the limit;
# its entry then moves to now, its real departure, which later calls count from. Otherwise its
# entry moves to the earliest moment that holds (found among the calls admitted so far; the
# next look, at that moment, decides) and the answer is the wait; beyond max_wait the entry is
# removed (nothing reserved). Returns {verdict "ok" or "wait", wait seconds}.
_DEPART = """
local member = ARGV[1]
local n = tonumber(string.match(member, '^(%d+):'))
local per_second = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local at = now
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > at then at = pause end
if per_second > 0 then
  local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (at - window), at, 'WITHSCORES')
  local sum = 0
  for i = 1, #entries, 2 do
    if entries[i] ~= member then sum = sum + tonumber(string.match(entries[i], '^(%d+):')) end
  end
  for i = 1, #entries, 2 do
    if entries[i] ~= member then
      local score = tonumber(entries[i + 1])
      if score > at - window then
        if sum + n <= per_second then break end
        at = score + window
      end
      sum = sum - tonumber(string.match(entries[i], '^(%d+):'))
    end
  end
end
local wait = at - now
if wait > max_wait then
  redis.call('ZREM', KEYS[1], member)
  return {'wait', tostring(wait)}
end
redis.call('ZADD', KEYS[1], at, member)
redis.call('EXPIRE', KEYS[1], 120)
if wait > 0 then return {'wait', tostring(wait)} end
return {'ok', '0'}
"""

# KEYS: pause. ARGV: seconds. Pauses until now + seconds unless already paused longer;
# returns the seconds left of the pause.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
  current = until_
end
return tostring(current - now)
"""


class RateWait(Exception):
    """The send must wait longer than a worker sleeps: retry or resume after `seconds`."""

    def __init__(self, reason: str, seconds: float, *, claim: str | None = None) -> None:
        super().__init__(f"{reason}; waiting {seconds:.1f} s")
        self.reason = reason
        self.seconds = seconds
        self.claim = claim


@dataclass(frozen=True)
class Limits:
    per_second: int = 0  # 0: no limit
    per_hour: int = 0
    per_day: int = 0
    warmup_start: date | None = None
    warmup_caps: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.per_second or self.per_hour or self.per_day or self.warmup_caps)

    def warmup_cap(self, day: date) -> int | None:
        """The warm-up schedule's cap for `day` (its first day's before it starts), or None
        once the schedule is over or when there is none."""
        if not self.warmup_caps or self.warmup_start is None:
            return None
        index = max(0, (day - self.warmup_start).days)
        return self.warmup_caps[index] if index < len(self.warmup_caps) else None


@dataclass(frozen=True)
class Room:
    """What the limiter allows now: up to `count` emails, after `wait` seconds, or (verdict
    "hour"/"day"/"wait") nothing before `wait` seconds."""

    verdict: str
    wait: float
    count: int
    member: str = ""  # a reserved slot's entry in the log (slot() only)

    @property
    def now(self) -> bool:
        return self.verdict == "ok"


def configured_limits() -> Limits:
    return Limits(
        per_second=settings.SEND_RATE_PER_SECOND,
        per_hour=settings.SEND_QUOTA_PER_HOUR,
        per_day=settings.SEND_QUOTA_PER_DAY,
        warmup_start=settings.SEND_WARMUP_START,
        warmup_caps=tuple(settings.SEND_WARMUP_DAILY_CAPS),
    )


@functools.lru_cache(maxsize=4)
def shared_redis(url: str) -> redis.Redis:
    """The client of the Redis every worker shares the budget in (one per URL and process)."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


class RateLimiter:
    """One provider's shared budget (see the module's docstring)."""

    def __init__(self, client: redis.Redis, provider: str, limits: Limits) -> None:
        self.client = client
        self.limits = limits
        prefix = f"paperboy:rate:{provider}"
        self.keys = [f"{prefix}:log", f"{prefix}:pause", f"{prefix}:hour", f"{prefix}:day"]
        self._script = client.register_script(_SCRIPT)
        self._pause = client.register_script(_PAUSE)
        self._depart = client.register_script(_DEPART)

    def _run(self, mode: str, count: int, max_wait: float = MAX_SLEEP_SECONDS) -> Room:
        limits = self.limits
        warm_start = (
            (limits.warmup_start - date(1970, 1, 1)).days
            if limits.warmup_start and limits.warmup_caps
            else -1
        )
        token = uuid.uuid4().hex
        verdict, wait, fit = self._script(
            keys=self.keys,
            args=[
                count,
                limits.per_second,
                WINDOW_SECONDS,
                limits.per_hour,
                limits.per_day,
                max_wait,
                mode,
                token,
                warm_start,
                *limits.warmup_caps,
            ],
        )
        member = f"{int(fit)}:{token}" if mode == "slot" and verdict == b"ok" else ""
        return Room(verdict.decode(), max(0.0, float(wait)), int(fit), member)

    def room(self, wanted: int) -> Room:
        """How many of `wanted` emails may be claimed now (nothing is taken)."""
        return self._run("peek", wanted)

    def take_quota(self, count: int) -> Room:
        """Count `count` emails against the hour and day quotas, all or none."""
        return self._run("quota", count)

    def refund_quota(self, count: int) -> None:
        """Give back quota taken for emails that were not sent after all."""
        if count > 0:
            self._run("refund", count)

    def slot(self, count: int, max_wait: float = MAX_SLEEP_SECONDS) -> Room:
        """Reserve the per-second slot of a call of `count` emails; "ok" with the seconds to
        sleep before making it, or "wait" (nothing reserved) if that is beyond `max_wait`."""
        return self._run("slot", count, max_wait)

    def depart(self, slot: Room, max_wait: float = MAX_SLEEP_SECONDS) -> Room:
        """The last look before a reserved call goes out: "ok" (go now; its admission is now
        counted from this moment) or "wait" with the seconds until its turn, which moved
        because a call before it left late or a pause began (beyond `max_wait` the
        reservation is dropped)."""
        verdict, wait = self._depart(
            keys=self.keys[:2],
            args=[slot.member, self.limits.per_second, WINDOW_SECONDS, max_wait],
        )
        return Room(verdict.decode(), max(0.0, float(wait)), slot.count, slot.member)

    def pause(self, seconds: float) -> float:
        """Stop every worker's sends for `seconds` (a 429); the seconds the pause lasts."""
        return float(self._pause(keys=[self.keys[1]], args=[max(0.0, seconds)]))

    def paused_for(self) -> float:
        """Seconds left of a pause (0: none)."""
        paused = self.client.get(self.keys[1])
        if not paused:
            return 0.0
        seconds, micros = self.client.time()
        return max(0.0, float(paused) - (seconds + micros / 1e6))

    def status(self) -> dict[str, object]:
        """The budget as it stands, for the admin."""
        seconds, micros = self.client.time()
        now = seconds + micros / 1e6
        log, pause, hour, day = self.keys
        pipe = self.client.pipeline()
        pipe.zrangebyscore(log, now - HISTORY_SECONDS, now)
        pipe.zrangebyscore(log, f"({now}", "+inf")
        pipe.get(pause)
        pipe.hmget(hour, "window", "used")
        pipe.hmget(day, "window", "used")
        recent, ahead, paused, hour_row, day_row = pipe.execute()

        def used(row, window: int) -> int:
            return int(row[1]) if row[0] is not None and int(row[0]) == window else 0

        today = datetime.fromtimestamp(now, UTC).date()
        caps = [c for c in (self.limits.per_day, self.limits.warmup_cap(today)) if c]
        return {
            "per_minute": sum(int(m.split(b":")[0]) for m in recent),
            "reserved_ahead": sum(int(m.split(b":")[0]) for m in ahead),
            "paused_for": max(0.0, float(paused) - now) if paused else 0.0,
            "hour_used": used(hour_row, int(now // 3600)),
            "day_used": used(day_row, int(now // 86400)),
            "day_cap": min(caps) if caps else 0,
        }


def limiter() -> RateLimiter | None:
    """The configured provider's limiter, or None when no limit is set."""
    limits = configured_limits()
    if not limits.any:
        return None
    return RateLimiter(
        shared_redis(settings.SEND_RATE_REDIS_URL), providers.provider_name(), limits
    )


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's delay: seconds, or an HTTP date (RFC 9110); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def send_rate_rows(issue) -> list[tuple[str, str]]:
    """What the admin shows of the send rate for an issue: the limits, the budget as it
    stands (Redis's count, shared by every worker), and what of the issue is waiting."""
    from newsletter.models import Delivery  # models import nothing from here; kept local

    limits = configured_limits()
    pending = Delivery.objects.filter(issue=issue, status=Delivery.Status.PENDING).count()
    waiting = issue.send_waiting_until
    rows = [
        ("limit", f"{limits.per_second} emails/s" if limits.per_second else "none"),
        ("hourly quota", str(limits.per_hour or "none")),
        ("daily quota", str(limits.per_day or "none")),
    ]
    if limits.warmup_caps:
        rows.append(
            (
                "warm-up",
                f"from {limits.warmup_start}: {', '.join(map(str, limits.warmup_caps))} a day",
            )
        )
    gate = limiter()
    if gate is not None:
        try:
            status = gate.status()
        except redis.RedisError as error:
            rows.append(("budget", f"unavailable: {error}"))
        else:
            rows += [
                ("current rate", f"{status['per_minute'] / HISTORY_SECONDS:.1f} emails/s"),
                ("sent this hour", str(status["hour_used"])),
                (
                    "sent today",
                    f"{status['day_used']} of {status['day_cap']}"
                    if status["day_cap"]
                    else str(status["day_used"]),
                ),
                ("reserved ahead", str(status["reserved_ahead"])),
                ("paused", f"{status['paused_for']:.0f} s more" if status["paused_for"] else "no"),
            ]
    # The provider's own daily quota, when it answered that it is used up (with or without
    # limits of ours). Imported here: provider_quota builds on this module.
    from newsletter.services import provider_quota

    rows += provider_quota.admin_rows()
    rows.append(("waiting", f"{pending} pending"))
    if waiting is not None and pending:
        from django.utils import timezone

        if waiting > timezone.now():
            rows.append(("waiting until", f"{waiting:%Y-%m-%d %H:%M} UTC (the budget renews)"))
    return rows
