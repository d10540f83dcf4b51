"""The store's side of the cache tier: key names, the read path every verb shares (one
`get_many`, misses loaded once per process and filled by version), and installs after a commit.

Invariant kept here: a write's SQL transaction commits before any cache entry is touched, and
a cache install that fails after the commit is never forgotten: it is retried through the
outbox (`tao.cache_refill`), which re-reads SQL and installs with a version, so it can only
ever move the entry forward. A fill (a read's install) needs no repair: failing, it only leaves
the miss for the next reader.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from tao.cache import keys
from tao.cache.base import CacheTier, Install
from tao.errors import TaoError
from tao.registry import Registry
from tao.shards import write_fence
from tao.singleflight import SingleFlight

if TYPE_CHECKING:
    from tao.outbox import Outbox

log = logging.getLogger("tao")
K = TypeVar("K", bound=Hashable)


def install_value(key: str, version: int, value: dict[str, Any]) -> Install:
    """An install of `value` at `version`, whatever is cached (the tier keeps the higher version)."""
    return Install(key, version, lambda old: value)


class CacheIO:
    def __init__(self, tier: CacheTier, registry: Registry, outbox: Outbox, counters: dict[str, int],
                 list_limit: int) -> None:
        self.tier = tier
        self._registry = registry
        self._outbox = outbox
        self._counters = counters
        self._flight = SingleFlight()
        # How many of a list's newest edges its cached value holds, unless its type sets its own.
        self.list_limit = list_limit

    def window(self, code: int) -> int:
        """How many of the newest edges a cached list of this type holds (`AssocType.window`)."""
        return self._registry.atype_by_code(code).window or self.list_limit

    # Keys carry no prefix here: the memcached tier adds the deployment's (or a test's) namespace.
    def obj_key(self, id_: int) -> str:
        return keys.obj_key("", id_)

    def list_key(self, id1: int, code: int) -> str:
        return keys.list_key("", id1, self._registry.atype_by_code(code).name)

    def count_key(self, id1: int, code: int) -> str:
        return keys.count_key("", id1, self._registry.atype_by_code(code).name)

    def edge_key(self, id1: int, code: int, id2: int) -> str:
        return keys.edge_key("", id1, self._registry.atype_by_code(code).name, id2)

    def unique_key(self, ns: str, digest: str) -> str:
        return keys.unique_key("", ns, digest)

    def fence(self) -> int:
        """Take before a read whose result will be filled (see `fill`)."""
        return self.tier.fence()

    async def read_through(self, cache_keys: dict[str, K], kind: str,
                           load: Callable[[list[K]], Awaitable[dict[K, Any]]],
                           decode: Callable[[K, dict], Any], errors: str = "raise") -> dict[K, Any]:
        """One `get_many` for all keys; the misses (and tombstones) are loaded by `load(keys)`
        (SQL plus a versioned fill), with concurrent loads of the same key in this process
        collapsed into one (`kind` keeps the kinds of keys apart). Returns {key: decode(key,
        cached value) or what load answered}. `errors` is the mode `load` runs in (see
        `Shards.per_shard`): loads in different modes are not collapsed together, so a caller
        never gets the other mode's answer to a failed shard (an exception object as a value)."""
        if errors != "raise":
            kind += "?"
        cached = await self.tier.get_many(list(cache_keys)) if cache_keys else {}
        out: dict[K, Any] = {}
        misses = []
        for ck, k in cache_keys.items():
            value = cached.get(ck)
            if value is None or value.get("stale"):
                misses.append(k)
            else:
                out[k] = decode(k, value)
        if misses:
            async def fetch(flight_keys: list) -> dict:
                got = await load([fk[1] for fk in flight_keys])
                return {(kind, k): v for k, v in got.items()}
            loaded = await self._flight.load_many([(kind, k) for k in misses], fetch)
            out.update({fk[1]: v for fk, v in loaded.items()})  # type: ignore[index]
        return out

    async def install(self, installs: list[Install], repair_shard: int, refill: list[dict]) -> None:
        """Install after a commit. If some keys could not be installed, a `tao.cache_refill` job
        on `repair_shard` re-reads what `refill` describes (see `Tao`'s handler)."""
        if not installs:
            return
        fence = write_fence.get()
        for inst in installs:
            if inst.fence is None:
                inst.fence = fence
        failed = await self.tier.install_many(installs, written=True)
        if failed and refill:
            self._counters["cache_repairs_enqueued"] += 1
            try:
                await self._outbox.enqueue(repair_shard, "tao.cache_refill", {"items": refill})
            except TaoError as exc:  # the entry's TTL still bounds its staleness
                log.warning("could not enqueue a cache repair on shard %s: %s", repair_shard, exc)

    async def fill(self, installs: list[Install], fence: int) -> None:
        """Install values read from SQL to fill misses; `fence` was taken before the read."""
        for inst in installs:
            inst.fence = fence
        await self.tier.install_many(installs)
