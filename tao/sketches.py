"""Counters that must not be one hot row: HyperLogLogs and bounded "most recent" sets in Redis.

A story seen a million times cannot keep one SQL row per view on its shard, nor bump one count
row per view. Past an exact threshold (resolvers.stories.views) its distinct viewers are counted
with Redis's HyperLogLog (PFADD / PFCOUNT: 16 384 six-bit registers, 12 KB per key, standard
error 0.81 %) and its newest viewers kept in a sorted set trimmed to a bound (ZADD + ZREMRANGEBYRANK):
O(1) Redis commands per view, spread over keys, no SQL row touched. Small expiring hints
(`hint_set`, and `hints_at_least`: one script call answering "which of these hints is at least
`low`") let a reader skip keys that cannot matter (the story tray skips followed accounts with
no live story).

`Sketches.available` is False when the deployment has no Redis (`broker.backend = "local"`, the
embedded default); callers then keep exact SQL lists (docs/stories.md says what that costs).
Redis errors are `SketchUnavailableError` (a `TaoError`); a caller decides whether a lost
increment matters (a view count estimate: it does not).
"""

from __future__ import annotations

import asyncio
from typing import Any

from config import BrokerSettings
from tao.errors import TaoError


class SketchUnavailableError(TaoError):
    """Redis did not answer a sketch command."""


# Which of the keys hold an integer >= ARGV[1]: one character per key, "1" or "0". The answer is
# one bulk string, not one reply per key: redis-py parses each element of an MGET reply in
# Python (~3 µs a key: 3 ms for a tray's 1 000 followed accounts, measured), this in ~1 ms.
# The keys go as one newline-joined argument (ARGV[3], each under the prefix ARGV[2]), not as
# KEYS: redis-py packs every argument in Python (~1.5 µs each, a tray's largest cost after the
# cache reads, measured), and one string is one argument. So the script names keys it was not
# given, which Redis allows on one server but a Redis Cluster would refuse: hints are meant for
# one Redis (or a client-side partition of several), never a cluster (docs/stories.md).
_AT_LEAST = """
local low = tonumber(ARGV[1])
local prefix = ARGV[2]
local out = {}
for key in string.gmatch(ARGV[3], "[^\\n]+") do
  local v = tonumber(redis.call('GET', prefix .. key) or '')
  out[#out + 1] = (v ~= nil and v >= low) and '1' or '0'
end
return table.concat(out)
"""


class Sketches:
    def __init__(self, settings: BrokerSettings) -> None:
        self.available = settings.backend == "redis"
        self._settings = settings
        self._prefix = f"{settings.channel_prefix}:sk:"
        self._client: Any = None
        self._redis_mod: Any = None
        self._at_least: Any = None

    def _redis(self) -> Any:
        if not self.available:
            raise SketchUnavailableError("no Redis configured (broker.backend is local)")
        if self._client is None:
            import redis.asyncio as aioredis  # the embedded default never needs it

            self._redis_mod = aioredis
            self._client = aioredis.Redis.from_url(self._settings.url,
                                                   socket_connect_timeout=self._settings.connect_timeout,
                                                   socket_timeout=1.0, driver_info=None)
        return self._client

    async def _run(self, make: Any) -> Any:
        client = self._redis()
        try:
            return await asyncio.wait_for(make(client), 2.0)
        except (self._redis_mod.RedisError, OSError, TimeoutError) as exc:
            raise SketchUnavailableError(f"redis: {exc}") from exc

    async def record(self, key: str, member: int, score: int, keep: int, ttl_seconds: int) -> None:
        """One event of `member` at `score`: into the key's HyperLogLog, and into its newest-`keep` set."""
        hll, recent = self._prefix + key + ":hll", self._prefix + key + ":recent"

        async def run(client: Any) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.pfadd(hll, member)
            pipe.zadd(recent, {str(member): score})
            pipe.zremrangebyrank(recent, 0, -(keep + 1))
            pipe.expire(hll, ttl_seconds)
            pipe.expire(recent, ttl_seconds)
            return await pipe.execute()
        await self._run(run)

    async def record_many(self, key: str, members: list[int], scores: list[int], keep: int, ttl_seconds: int) -> None:
        """`record` for many members at once (a seed, a benchmark's batch)."""
        if not members:
            return
        hll, recent = self._prefix + key + ":hll", self._prefix + key + ":recent"

        async def run(client: Any) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.pfadd(hll, *members)
            pipe.zadd(recent, {str(m): s for m, s in zip(members, scores)})
            pipe.zremrangebyrank(recent, 0, -(keep + 1))
            pipe.expire(hll, ttl_seconds)
            pipe.expire(recent, ttl_seconds)
            return await pipe.execute()
        await self._run(run)

    async def count(self, key: str) -> int:
        """The HyperLogLog's estimate of distinct members."""
        return int(await self._run(lambda c: c.pfcount(self._prefix + key + ":hll")))

    async def recent(self, key: str, after: tuple[int, int] | None, limit: int) -> list[tuple[int, int]]:
        """(member, score) newest first, after the (score, member) `after` (a keyset cursor; ties
        in score keep Redis's order). A cursor whose member was trimmed away goes on from its score."""
        name = self._prefix + key + ":recent"

        async def run(client: Any) -> Any:
            start = 0
            if after is not None:
                rank = await client.zrevrank(name, str(after[1]))
                if rank is None or int(await client.zscore(name, str(after[1])) or -1) != after[0]:
                    return await client.zrevrangebyscore(name, f"({after[0]}", "-inf", start=0, num=limit,
                                                         withscores=True)
                start = rank + 1
            return await client.zrevrange(name, start, start + limit - 1, withscores=True)
        rows = await self._run(run)
        return [(int(m), int(s)) for m, s in rows]

    async def hint_set(self, key: str, value: int, ttl_ms: int) -> None:
        """A small integer under `key` for `ttl_ms` (a presence hint: "this author has a live story")."""
        await self._run(lambda c: c.set(self._prefix + key, value, px=max(1, ttl_ms)))

    async def hints_at_least(self, keys: list[str], low: int) -> list[bool]:
        """For each of `keys`, in order: is its hint set and at least `low`? One script call
        (EVALSHA, loaded on first use), its answer one string whatever the number of keys."""
        if not keys:
            return []
        joined = "\n".join(keys)
        if joined.count("\n") != len(keys) - 1 or "" in keys:
            raise ValueError("hint keys must be non-empty and hold no newline")

        async def run(client: Any) -> Any:
            if self._at_least is None:
                self._at_least = client.register_script(_AT_LEAST)
            return await self._at_least(keys=[], args=[int(low), self._prefix, joined], client=client)
        flags = await self._run(run)
        if isinstance(flags, bytes):
            flags = flags.decode()
        if len(flags) != len(keys):
            raise SketchUnavailableError(f"redis: hints_at_least answered {len(flags)} flags for {len(keys)} keys")
        return [f == "1" for f in flags]

    async def forget(self, key: str, member: int) -> None:
        """Take `member` out of the key's recent set (a HyperLogLog keeps no identities to remove)."""
        await self._run(lambda c: c.zrem(self._prefix + key + ":recent", str(member)))

    async def delete(self, key: str) -> None:
        if self.available:
            await self._run(lambda c: c.delete(self._prefix + key + ":hll", self._prefix + key + ":recent"))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
