"""What every verb of the store shares: the backend, the cache tier, ids, the type registry,
shard routing, transactions with deadlock retry, per-shard parallelism, counters, and the
repair of cache writes that failed after a commit.

Invariant kept here: a write's SQL transaction commits before any cache entry is touched, and
a cache install that fails after the commit is never forgotten — it is retried through the
outbox (`tao.cache_refill`), which re-reads SQL and installs with a version, so it can only
ever move the entry forward.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from config import Settings
from tao.backends.base import Backend, Conn
from tao.cache import keys
from tao.cache.base import CacheTier, Install
from tao.errors import DeadlockError, InvalidDataError, ShardUnavailableError, TaoError, UnknownTypeError
from tao.ids import IdGenerator, check_id, shard_of
from tao.registry import AssocType, Registry
from tao.shardmap import ShardMap
from tao.singleflight import SingleFlight

log = logging.getLogger("tao")

# The cache fence taken at the start of the current task's last write transaction: installs
# made after the commit carry it, so the tier refuses them if their server had a fault since
# (see CacheTier.fence). A ContextVar, because gather() runs each shard's part in its own task.
_write_fence: ContextVar[int | None] = ContextVar("tao_write_fence", default=None)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

MAX_DATA_BYTES = 60_000
MAX_MANY_KEYS = 10_000
DEADLOCK_RETRIES = 5
# How long after a shard fails new unowned objects are placed elsewhere (see placement_shard).
AVOID_FAILED_SHARD_SECONDS = 5.0


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_data(data: Any) -> str:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidDataError(f"data must be a dict, got {type(data).__name__}")
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"data must be JSON-serialisable: {exc}") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # an unpaired surrogate: not Unicode text, so not storable as UTF-8
        raise InvalidDataError("data holds a string that is not valid Unicode (an unpaired surrogate)") from None
    if size > MAX_DATA_BYTES:
        raise InvalidDataError(f"data is {size} bytes encoded; the limit is {MAX_DATA_BYTES}")
    return text


class _CountingConn:
    """Counts statements for the batching tests and benchmarks (`Tao.stats()`)."""

    __slots__ = ("_conn", "_stats", "shard")

    def __init__(self, conn: Conn, stats: dict[str, int]) -> None:
        self._conn = conn
        self._stats = stats
        self.shard = conn.shard

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._stats["sql_queries"] += 1
        return await self._conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self._stats["sql_queries"] += 1
        return await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._stats["sql_queries"] += 1
        return await self._conn.fetchall(sql, params)


class TaoCore:
    def __init__(self, settings: Settings, registry: Registry, shard_map: ShardMap,
                 backend: Backend, cache: CacheTier) -> None:
        self.settings = settings
        self.registry = registry
        self.shard_map = shard_map
        self.backend = backend
        self.cache = cache
        self.ids = IdGenerator()
        self.flight = SingleFlight()
        self.list_limit = settings.cache.list_limit
        self._stats: dict[str, int] = defaultdict(int)
        self._cache_baseline: dict[str, int] = {}
        # shard -> monotonic time until which new unowned objects avoid it (it failed recently).
        self._avoid_until: dict[int, float] = {}
        # Set by tao.outbox.Outbox; the core only needs "enqueue inside a transaction".
        self.outbox: Any = None

    # ---- routing and validation -------------------------------------------------------------

    @property
    def n_shards(self) -> int:
        return self.shard_map.n_shards

    def shard(self, id_: int) -> int:
        return shard_of(check_id(id_, self.n_shards))

    def placement_shard(self, exclude: set[int] = frozenset()) -> int | None:
        """The shard for a new object with no owner: any shard will do, so pick at random among
        those that have not failed in the last `AVOID_FAILED_SHARD_SECONDS` (all if every one
        has), leaving out `exclude` (shards this call already failed on). None: nothing left."""
        now = time.monotonic()
        candidates = [s for s in range(self.n_shards) if s not in exclude]
        live = [s for s in candidates if self._avoid_until.get(s, 0.0) <= now]
        return random.choice(live or candidates) if candidates else None

    def note_unavailable(self, shard: int) -> None:
        """Remember a failure of `shard`'s server: its other shards are down with it."""
        until = time.monotonic() + AVOID_FAILED_SHARD_SECONDS
        for s in self.shard_map.shards_on(self.shard_map.server_of_shard[shard]):
            self._avoid_until[s] = until

    def by_shard(self, items: Iterable[T], id_of: Callable[[T], int]) -> dict[int, list[T]]:
        groups: dict[int, list[T]] = defaultdict(list)
        for item in items:
            groups[self.shard(id_of(item))].append(item)
        return groups

    def atype(self, name: str) -> AssocType:
        return self.registry.atype(name)

    def primary_atype(self, name: str) -> AssocType:
        t = self.registry.atype(name)
        if t.derived_from is not None:
            raise UnknownTypeError(f"{name} is the inverse of {t.derived_from} and is kept by the store: "
                                   f"write {t.derived_from} instead")
        return t

    def check_many(self, keys: Sequence[Any]) -> None:
        if len(keys) > MAX_MANY_KEYS:
            raise InvalidDataError(f"{len(keys)} keys in one call; the limit is {MAX_MANY_KEYS}")

    # ---- SQL ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self, shard: int):
        try:
            async with self.backend.connection(shard) as conn:
                yield _CountingConn(conn, self._stats)
        except ShardUnavailableError:
            self.note_unavailable(shard)
            raise

    async def write(self, shard: int, body: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `body(conn)` in one transaction on `shard`, retrying deadlock victims."""
        _write_fence.set(self.cache.fence())
        for attempt in range(DEADLOCK_RETRIES):
            try:
                async with self.backend.transaction(shard) as conn:
                    return await body(_CountingConn(conn, self._stats))
            except ShardUnavailableError:
                self.note_unavailable(shard)
                raise
            except DeadlockError:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                self._stats["deadlock_retries"] += 1
                await asyncio.sleep(0.005 * (2 ** attempt))
        raise AssertionError("unreachable")

    async def per_shard(self, groups: dict[int, T], fn: Callable[[int, T], Awaitable[dict]],
                        *, errors: str = "raise", keys_of: Callable[[T], Iterable[Hashable]] | None = None) -> dict:
        """Run `fn(shard, group)` for every shard in parallel and merge the dicts they return.

        errors="raise": the first shard failure raises. errors="return": the keys of a failed shard
        map to the exception instance instead (DataLoaders hand those to just those keys)."""
        shards = list(groups)
        results = await asyncio.gather(*(fn(s, groups[s]) for s in shards), return_exceptions=True)
        out: dict = {}
        for shard, res in zip(shards, results):
            if isinstance(res, BaseException):
                if errors == "raise" or not isinstance(res, TaoError) or keys_of is None:
                    raise res
                for k in keys_of(groups[shard]):
                    out[k] = res
            else:
                out.update(res)
        return out

    # ---- cache --------------------------------------------------------------------------------

    # Keys carry no prefix here: the memcached tier adds the deployment's (or a test's) namespace.
    def obj_key(self, id_: int) -> str:
        return keys.obj_key("", id_)

    def list_key(self, id1: int, code: int) -> str:
        return keys.list_key("", id1, self.registry.atype_by_code(code).name)

    def count_key(self, id1: int, code: int) -> str:
        return keys.count_key("", id1, self.registry.atype_by_code(code).name)

    def edge_key(self, id1: int, code: int, id2: int) -> str:
        return keys.edge_key("", id1, self.registry.atype_by_code(code).name, id2)

    async def cache_get(self, keys: list[str]) -> dict[str, dict]:
        return await self.cache.get_many(keys) if keys else {}

    async def read_through(self, cache_keys: dict[str, K], kind: str,
                           fill: Callable[[list[K]], Awaitable[dict[K, Any]]],
                           decode: Callable[[K, dict], Any], errors: str = "raise") -> dict[K, Any]:
        """The read path every verb shares: one `get_many` for all keys; the misses (and
        tombstones) are loaded by `fill(keys)` — SQL plus a versioned fill of the cache — with
        concurrent loads of the same key in this process collapsed into one (`kind` keeps the
        kinds of keys apart). Returns {key: decode(key, cached value) or what fill answered}.
        `errors` is the mode `fill` runs in (see `per_shard`): loads in different modes are not
        collapsed together, so a caller never gets the other mode's answer to a failed shard."""
        if errors != "raise":
            kind += "?"
        cached = await self.cache_get(list(cache_keys))
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
                got = await fill([fk[1] for fk in flight_keys])
                return {(kind, k): v for k, v in got.items()}
            loaded = await self.flight.load_many([(kind, k) for k in misses], fetch)
            out.update({fk[1]: v for fk, v in loaded.items()})
        return out

    async def cache_install(self, installs: list[Install], repair_shard: int | None = None,
                            refill: list[dict] | None = None) -> None:
        """Install after a commit. Keys that could not be installed are repaired through the
        outbox on `repair_shard`: `refill` describes what to re-read (see tao.cache_refill)."""
        if not installs:
            return
        fence = _write_fence.get()
        for inst in installs:
            if inst.fence is None:
                inst.fence = fence
        failed = await self.cache.install_many(installs, written=True)
        if failed and repair_shard is not None and refill:
            self._stats["cache_repairs_enqueued"] += 1
            try:
                await self.outbox.enqueue(repair_shard, "tao.cache_refill", {"items": refill})
            except TaoError as exc:  # the entry's TTL still bounds its staleness
                log.warning("could not enqueue a cache repair on shard %s: %s", repair_shard, exc)

    async def fill_install(self, installs: list[Install], fence: int) -> None:
        """Install values read from SQL to fill misses. `fence` was taken before the read. A
        failed fill needs no repair: it only leaves the miss for the next reader."""
        for inst in installs:
            inst.fence = fence
        await self.cache.install_many(installs)

    def stats(self) -> dict[str, int]:
        """Counters since the last `reset_stats()`: `sql_queries` (statements sent), and the cache
        tier's counters prefixed `cache_` (`cache_round_trips` counts per-server batch calls)."""
        merged = dict(self._stats)
        merged.setdefault("sql_queries", 0)
        for k, v in self.cache.stats().items():
            merged[f"cache_{k}"] = v - self._cache_baseline.get(k, 0) if k != "entries" else v
        return merged

    def reset_stats(self) -> None:
        self._stats.clear()
        self._cache_baseline = dict(self.cache.stats())

    async def ping_shards(self) -> dict[int, str | None]:
        """{shard: None if healthy else the error} — for /healthz."""
        async def one(s: int) -> str | None:
            try:
                await self.backend.ping(s)
                return None
            except ShardUnavailableError as exc:
                self.note_unavailable(s)
                return str(exc)
        results = await asyncio.gather(*(one(s) for s in range(self.n_shards)))
        return dict(enumerate(results))
