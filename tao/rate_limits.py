"""Rate limits shared by every process: token buckets kept in Redis, or in process memory.

One primitive serves every limit of the app (log-in failures, per-user action limits, the
per-viewer query cost budget): a *bucket* `(key, capacity, window)` holds up to `capacity`
tokens and refills evenly, `capacity` per `window` seconds. `take(buckets, cost)` takes `cost`
tokens from every bucket named, all or nothing, and answers how long to wait when it cannot.

Invariants:
- With `broker.backend = "redis"` every process keeps its buckets in the same Redis (the
  broker's URL), updated by one Lua script per call: a check and its take are atomic across
  processes, and the clock is Redis's own (`TIME`), so N processes share one budget and never
  disagree about how much has refilled. A key expires once its bucket would be full again (a
  full bucket carries no information), so Redis holds only keys that are being limited.
- Without Redis (the embedded default, one process) the same buckets live in process memory.
- Redis unreachable or slow (past `broker.publish_timeout`): the call falls back to this
  process's in-memory buckets and logs (at most every 5 s). Limits then hold per process, as
  they did before they were shared, rather than failing every request or none.

Keys are namespaced by `broker.channel_prefix` (`<prefix>:rl:<key>`), like the broker's channels.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from config import BrokerSettings

log = logging.getLogger("tao.rate_limits")

MAX_LOCAL_KEYS = 100_000


class Mode(StrEnum):
    TAKE = "take"    # take `cost` from every bucket if every one has it; else nothing
    FORCE = "force"  # take `cost` from every bucket regardless, down to 0 (work already done)
    PEEK = "peek"    # change nothing; answer whether `take` would succeed
    REFUND = "refund"  # give `cost` back to every bucket, up to its capacity (a take that should not count)


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    capacity: float
    window: float  # seconds to refill from empty to full

    @property
    def rate(self) -> float:
        return self.capacity / self.window


@dataclass(frozen=True, slots=True)
class Taken:
    ok: bool
    # Seconds until the same take would succeed (0 when `ok`): the longest wait among the
    # buckets that lack tokens.
    retry_after: float
    # Each bucket's level after the call, in the order given.
    levels: tuple[float, ...]


def _plan(buckets: Sequence[Bucket], levels: list[float], cost: float, mode: Mode) -> Taken:
    """The decision, given each bucket's refilled level (shared by both implementations; the
    Lua script is its translation)."""
    short = [(cost - lvl) / b.rate for b, lvl in zip(buckets, levels) if lvl < cost]
    ok = not short
    if mode is Mode.REFUND:
        return Taken(True, 0.0, tuple(min(b.capacity, lvl + cost) for b, lvl in zip(buckets, levels)))
    if mode is Mode.FORCE:
        levels = [max(0.0, lvl - cost) for lvl in levels]
    elif mode is Mode.TAKE and ok:
        levels = [lvl - cost for lvl in levels]
    return Taken(ok, 0.0 if ok else max(short), tuple(levels))


class LocalRateLimiter:
    """Buckets in this process's memory (thread-safe): the embedded default, and the fallback."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, b: Bucket, now: float) -> float:
        level, at = self._buckets.get(b.key, (b.capacity, now))
        return min(b.capacity, level + (now - at) * b.rate)

    def take_now(self, buckets: Sequence[Bucket], cost: float, mode: Mode = Mode.TAKE) -> Taken:
        now = time.monotonic()
        with self._lock:
            taken = _plan(buckets, [self._level(b, now) for b in buckets], cost, mode)
            if mode is not Mode.PEEK:
                for b, level in zip(buckets, taken.levels):
                    self._buckets[b.key] = (level, now)
                if len(self._buckets) > MAX_LOCAL_KEYS:  # forget the quietest: oldest updates first
                    for k in sorted(self._buckets, key=lambda k: self._buckets[k][1])[:MAX_LOCAL_KEYS // 10]:
                        del self._buckets[k]
            return taken

    async def take(self, buckets: Sequence[Bucket], cost: float = 1.0, mode: Mode = Mode.TAKE) -> Taken:
        return self.take_now(buckets, cost, mode)

    async def reset(self, keys: Sequence[str]) -> None:
        with self._lock:
            for k in keys:
                self._buckets.pop(k, None)

    async def close(self) -> None:
        pass


# KEYS: the buckets' keys. ARGV: mode, cost, then capacity and window (seconds) per key.
# Returns {ok (0/1), retry_after (string), levels (strings)...}: Lua numbers become integers in
# replies, so fractions travel as strings.
_SCRIPT = """
local mode, cost = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels, wait, ok = {}, 0, 1
for i, key in ipairs(KEYS) do
  local cap, win = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local rate = cap / win
  local s = redis.call('HMGET', key, 'l', 't')
  local level = cap
  if s[1] then level = math.min(cap, tonumber(s[1]) + math.max(0, now - tonumber(s[2])) * rate) end
  levels[i] = level
  if level < cost then
    ok = 0
    wait = math.max(wait, (cost - level) / rate)
  end
end
if mode == 'refund' then ok, wait = 1, 0 end
if mode == 'force' or mode == 'refund' or (mode == 'take' and ok == 1) then
  for i, key in ipairs(KEYS) do
    local cap, win = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
    local level = math.max(0, levels[i] - cost)
    if mode == 'refund' then level = math.min(cap, levels[i] + cost) end
    levels[i] = level
    redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
    redis.call('PEXPIRE', key, math.max(1, math.ceil((cap - level) / (cap / win) * 1000)))
  end
end
local out = {ok, tostring(wait)}
for i = 1, #levels do out[#out + 1] = tostring(levels[i]) end
return out
"""


class RedisRateLimiter:
    """Buckets in Redis, one Lua script per call; this process's memory while Redis fails."""

    def __init__(self, settings: BrokerSettings) -> None:
        import redis.asyncio as aioredis  # imported here: the embedded default never needs it

        self._errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError, TimeoutError)
        self._prefix = f"{settings.channel_prefix}:rl:"
        self._timeout = settings.publish_timeout * 4
        # driver_info None: no CLIENT SETINFO, whose version lookup stats files on the loop.
        self._client: Any = aioredis.Redis.from_url(settings.url, socket_connect_timeout=settings.connect_timeout,
                                                    socket_timeout=self._timeout, driver_info=None)
        self._script = self._client.register_script(_SCRIPT)
        self.fallback = LocalRateLimiter()
        self.fallbacks = 0
        self._last_log = 0.0

    def _failed(self, exc: BaseException) -> None:
        self.fallbacks += 1
        now = time.monotonic()
        if now - self._last_log > 5.0:
            self._last_log = now
            log.warning("rate limits: Redis failed, counting in this process meanwhile: %r", exc)

    async def take(self, buckets: Sequence[Bucket], cost: float = 1.0, mode: Mode = Mode.TAKE) -> Taken:
        args: list[Any] = [mode.value, repr(float(cost))]
        for b in buckets:
            args += [repr(float(b.capacity)), repr(float(b.window))]
        try:
            reply = await asyncio.wait_for(
                self._script(keys=[self._prefix + b.key for b in buckets], args=args), self._timeout)
        except self._errors as exc:
            self._failed(exc)
            return self.fallback.take_now(buckets, cost, mode)
        return Taken(bool(int(reply[0])), float(reply[1]), tuple(float(x) for x in reply[2:]))

    async def reset(self, keys: Sequence[str]) -> None:
        await self.fallback.reset(keys)
        if not keys:
            return
        try:
            await asyncio.wait_for(self._client.delete(*(self._prefix + k for k in keys)), self._timeout)
        except self._errors as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self._client.aclose()


RateLimiter = LocalRateLimiter | RedisRateLimiter


def make_rate_limiter(settings: BrokerSettings) -> RateLimiter:
    """Shared through Redis when the broker is Redis (every process reaches it); else local."""
    return RedisRateLimiter(settings) if settings.backend == "redis" else LocalRateLimiter()
