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
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
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


@dataclass
class _Held:
    """The installs of the writes made inside one `CacheIO.installs_together` block, in commit
    order: (installs, repair shard, refill) as each write handed them to `install`."""
    parts: list[tuple[list[Install], int, list[dict]]] = field(default_factory=list)
    open: bool = True  # False once the block has ended: a write after it installs on its own


_held: ContextVar[_Held | None] = ContextVar("tao_installs_held", default=None)


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
        held = _held.get()
        if held is not None and held.open:
            held.parts.append((installs, repair_shard, refill))
            return
        await self._install_parts([(installs, repair_shard, refill)])

    @asynccontextmanager
    async def installs_together(self) -> AsyncIterator[None]:
        """The installs of every write committed inside the block (in this task and the tasks it
        starts) are made at its end, in one `install_many`: one exchange per memcached server
        and step (gets, then add/cas) for all of them, where each write made its own. A send's
        delivery commits on two shards and a new object with them: 4 exchanges instead of 8.
        They are made however the block ends (an exception, a cancellation: what committed is
        installed, as `install` would have), and in commit order (a key written twice gets its
        installs in that order). A read inside the block may still find a key's value from
        before a write of the block: use it only where nothing reads back what it wrote."""
        outer = _held.get()
        if outer is not None and outer.open:  # inside another block: its end installs these too
            yield
            return
        held = _Held()
        token = _held.set(held)
        try:
            yield
        finally:
            _held.reset(token)
            held.open = False
            if held.parts:
                await self._install_parts(held.parts)

    async def _install_parts(self, parts: list[tuple[list[Install], int, list[dict]]]) -> None:
        failed = await self.tier.install_many([inst for installs, _, _ in parts for inst in installs], written=True)
        if not failed:
            return
        for installs, repair_shard, refill in parts:
            if not refill or not any(inst.key in failed for inst in installs):
                continue
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
