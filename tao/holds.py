"""Counted holds shared by every process: a ceiling on how many of something one key holds at
once, and on their total weight, checked and taken as one step; each hold is leased, so the holds
of a process that died lapse instead of counting forever.

The real-time layer bounds each user's live WebSocket operations with it (`server_ws.py`:
`realtime.max_subscriptions_per_user`, `max_operation_chars_per_user`, key `ws-ops:<user>`) and
each client address's open WebSockets (`server.py`: `realtime.max_sockets_per_address`, key
`ws-addr:<address>`).

Invariants:
- With `broker.backend = "redis"` a key's holds are one sorted set in the broker's Redis
  (`<prefix>:hold:<key>`), member `<process>:<n>:<weight>`, score the time its lease ends (ms,
  Redis's clock). `acquire` is one Lua script: drop lapsed holds, count and weigh the rest, add
  this one only if both stay within their ceilings. So N processes share one ceiling, not N.
- A hold is released when its holder says so (`release`, called when an operation's task ends).
  While it is held, this process renews the leases of all its holds every third of
  `broker.hold_lease_seconds` (one script call for all of them), and a renewal puts back a hold
  that had lapsed (a process stalled past its lease, Redis restarted), so a live hold is never
  lost for more than a renewal period. A process that dies (SIGKILL, a crash, the host gone)
  renews nothing: its holds lapse within `hold_lease_seconds` and free the user.
- Without Redis (the embedded default, one process) the holds are counters in this process's
  memory, which dies with them.
- Redis unreachable or slow (past `broker.publish_timeout` x 4): `acquire` checks the ceilings
  against this process's own holds of the key (those it took in Redis before the failure
  included) and logs (at most every 5 s): one process never holds more than a ceiling, N
  processes at most N times it, as the rate limits degrade (tao/rate_limits.py). Such a hold is
  this process's like any other: the first acquisition after Redis answers again, or the next
  renewal, writes it into Redis, so the ceiling counts it for every process from then on. A hold
  whose release cannot reach Redis lapses with its lease. (Fail closed would refuse every
  operation and every WebSocket while Redis is down: docs/realtime.md says why not.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from config import BrokerSettings

log = logging.getLogger("tao.holds")


@dataclass(frozen=True, slots=True)
class Hold:
    key: str
    member: str
    weight: int
    shared: bool  # in Redis; False: in this process's memory


@dataclass(frozen=True, slots=True)
class Acquired:
    # The hold, or None when a ceiling refused it.
    hold: Hold | None
    # The key's holds and their weight before this one (the live ones, over every process).
    count: int
    weight: int


class LocalHolds:
    """Holds in this process's memory: the embedded default, and the fallback while Redis fails."""

    def __init__(self) -> None:
        self._count: Counter[str] = Counter()
        self._weight: Counter[str] = Counter()
        self._next = 0

    def acquire_now(self, key: str, weight: int, max_count: int, max_weight: int) -> Acquired:
        count, held = self._count[key], self._weight[key]
        if count >= max_count or held + weight > max_weight:
            return Acquired(None, count, held)
        self._count[key] += 1
        self._weight[key] += weight
        self._next += 1
        return Acquired(Hold(key, f"local:{self._next}:{weight}", weight, False), count, held)

    async def acquire(self, key: str, weight: int, max_count: int, max_weight: int) -> Acquired:
        return self.acquire_now(key, weight, max_count, max_weight)

    def release(self, hold: Hold) -> None:
        for counter, n in ((self._count, 1), (self._weight, hold.weight)):
            counter[hold.key] -= n
            if counter[hold.key] <= 0:
                del counter[hold.key]

    async def close(self) -> None:
        pass


# KEYS[1]: the key's sorted set. ARGV: member, weight, max count, max weight, lease (ms).
# Returns {taken (0/1), count before, weight before}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local count, weight = #members, 0
for _, m in ipairs(members) do weight = weight + tonumber(string.match(m, '(%d+)$')) end
if count >= tonumber(ARGV[3]) or weight + tonumber(ARGV[2]) > tonumber(ARGV[4]) then
  return {0, count, weight}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return {1, count, weight}
"""

# KEYS: sorted sets. ARGV[1]: lease (ms); ARGV[1 + i]: KEYS[i]'s members of this process,
# newline-separated. Every lease ends `lease` from now, the key's with them (no other process's
# lease ends later: each was set at most `lease` from an earlier now).
_RENEW = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  for m in string.gmatch(ARGV[1 + i], "[^\\n]+") do redis.call('ZADD', key, until_ms, m) end
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""

RENEW_BATCH = 500  # keys per renewal call


class RedisHolds:
    """Holds in Redis, leased and renewed by this process; counted in this process while Redis
    fails, and written to Redis when it answers again (module docstring)."""

    def __init__(self, settings: BrokerSettings) -> None:
        import redis.asyncio as aioredis  # imported here: the embedded default never needs it

        self._errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError, TimeoutError)
        self._prefix = f"{settings.channel_prefix}:hold:"
        self._timeout = settings.publish_timeout * 4
        self._lease_ms = max(1, int(settings.hold_lease_seconds * 1000))
        self._client: Any = aioredis.Redis.from_url(settings.url, socket_connect_timeout=settings.connect_timeout,
                                                    socket_timeout=self._timeout, driver_info=None)
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._next = 0
        # key -> {member: weight}: every hold of this process, renewed while here; those taken
        # while Redis failed too (`_unsynced`), which the next renewal that reaches Redis adds.
        self._held: dict[str, dict[str, int]] = {}
        self._unsynced: set[str] = set()  # keys with a hold Redis has not seen yet
        # One acquire at a time writes them; the others meanwhile count here rather than queue
        # behind it (each would wait out the timeout in turn while Redis hangs).
        self._syncing = False
        self._renewer: asyncio.Task | None = None
        self._releasing: set[asyncio.Task] = set()
        # A removal waits for a renewal in flight, whose snapshot may still name the member: the
        # renewal would otherwise put back a hold released meanwhile, for a whole lease.
        self._lock = asyncio.Lock()
        self.fallbacks = 0  # acquisitions counted in this process because Redis failed
        self._last_log = 0.0

    def _failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_log > 5.0:
            self._last_log = now
            log.warning("holds: Redis failed (%s): %r", what, exc)

    def _keep(self, key: str, member: str, weight: int) -> None:
        self._held.setdefault(key, {})[member] = weight
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever())

    async def acquire(self, key: str, weight: int, max_count: int, max_weight: int) -> Acquired:
        self._next += 1
        weight = int(weight)
        member = f"{self._owner}:{self._next}:{weight}"
        if self._unsynced and not self._syncing:  # Redis failed earlier: first give it what was taken meanwhile
            self._syncing = True
            try:
                await self.renew()
            finally:
                self._syncing = False
        try:
            if self._unsynced:  # not written yet (Redis still failing, or another acquire is writing them)
                raise ConnectionError("holds taken while Redis failed are not written yet")
            taken, count, held = await asyncio.wait_for(self._acquire(
                keys=[self._prefix + key], args=[member, weight, max_count, max_weight, self._lease_ms]),
                self._timeout)
        except self._errors as exc:
            self.fallbacks += 1  # acquisitions counted in this process
            self._failed("acquire; counting this process's holds meanwhile", exc)
            return self._acquire_here(key, member, weight, max_count, max_weight)
        if not int(taken):
            return Acquired(None, int(count), int(held))
        self._keep(key, member, weight)
        return Acquired(Hold(key, member, weight, True), int(count), int(held))

    def _acquire_here(self, key: str, member: str, weight: int, max_count: int, max_weight: int) -> Acquired:
        """Redis unreachable: the ceilings over this process's own holds of the key (those taken in
        Redis before it failed included), so a process never holds more than a ceiling, and N
        processes at most N times it. The hold joins this process's others: the first renewal
        that reaches Redis writes it there, where it counts for every process again."""
        mine = self._held.get(key, {})
        count, held = len(mine), sum(mine.values())
        if count >= max_count or held + weight > max_weight:
            return Acquired(None, count, held)
        self._keep(key, member, weight)
        self._unsynced.add(key)
        return Acquired(Hold(key, member, weight, False), count, held)

    def release(self, hold: Hold) -> None:
        """Give the hold back: no longer renewed from now, removed from Redis in the background
        (if that fails, its lease ends it)."""
        members = self._held.get(hold.key)
        if members is None or hold.member not in members:
            return
        del members[hold.member]
        unwritten = not hold.shared and hold.key in self._unsynced  # taken while Redis failed, not written since
        if not members:
            del self._held[hold.key]
            self._unsynced.discard(hold.key)
        if unwritten:  # nothing to remove there (at worst a lease's worth, if a renewal wrote it after all)
            return
        task = asyncio.get_running_loop().create_task(self._remove({hold.key: [hold.member]}))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _remove(self, members: dict[str, list[str]]) -> None:
        try:
            async with self._lock, self._client.pipeline(transaction=False) as pipe:
                for key, ms in members.items():
                    pipe.zrem(self._prefix + key, *ms)
                await asyncio.wait_for(pipe.execute(), self._timeout)
        except self._errors as exc:
            self._failed("release; the lease ends it", exc)

    async def renew(self) -> None:
        """Extend the lease of every hold of this process (put back any that lapsed, and add those
        taken while Redis failed)."""
        keys = list(self._held)
        for start in range(0, len(keys), RENEW_BATCH):
            batch = [k for k in keys[start:start + RENEW_BATCH] if self._held.get(k)]
            if not batch:
                continue
            async with self._lock:
                batch = [k for k in batch if self._held.get(k)]
                args: list[int | str] = [self._lease_ms, *("\n".join(self._held[k]) for k in batch)]
                try:
                    await asyncio.wait_for(self._renew(keys=[self._prefix + k for k in batch], args=args),
                                           self._timeout)
                except self._errors as exc:
                    self._failed("renewal; retried next period", exc)
                    return
                self._unsynced.difference_update(batch)

    async def _renew_forever(self) -> None:
        while self._held:
            await asyncio.sleep(self._lease_ms / 3000)
            await self.renew()

    async def close(self) -> None:
        """Stop renewing and give back what this process still holds (its sockets are closed by then)."""
        if self._renewer is not None:
            self._renewer.cancel()
        held, self._held = {k: list(v) for k, v in self._held.items()}, {}
        self._unsynced.clear()
        if held:
            await self._remove(held)
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        await self._client.aclose()


Holds = LocalHolds | RedisHolds


def make_holds(settings: BrokerSettings) -> Holds:
    """Shared through Redis when the broker is Redis (every process reaches it); else local."""
    return RedisHolds(settings) if settings.backend == "redis" else LocalHolds()
