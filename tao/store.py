"""The `Tao` client: the store's whole API, and `open_tao()` that builds it from Settings.

    tao = await open_tao(load_settings())
    uid = await tao.obj_add("USER", {"username": "ada"})
    await tao.assoc_add(uid, "FOLLOWS", other)
    await tao.close()

`Tao` is a facade: each verb is a line handing the call to one private collaborator, built here
and passed its own collaborators explicitly:

    Shards       routing, transactions, per-shard parallelism, counters   tao/shards.py
    IdLeases     this process's id slots, one from each database server    tao/id_leases.py
    CacheIO      cache keys, the read-through path, installs after commit  tao/cache_io.py
    Outbox       durable jobs committed with writes, and their worker      tao/outbox.py
    Objects      obj_*                                                     tao/objects.py
    UniqueKeys   key_*                                                     tao/unique_keys.py
    ListWrites   what every list writer shares (locks, counts, cache)      tao/lists.py
    Inverses     mirroring edges of types with an inverse                  tao/inverses.py
    BulkLists    uncounted lists (FEED) and append-only streams            tao/bulk_lists.py
    AssocWrites  assoc_add/_many, assoc_delete, assoc_change_type          tao/assoc_writes.py
    AssocReads   assoc_get/count/range/time_range and their many-keys forms tao/assoc_reads.py

Many-keys reads take `errors="raise"` (default: the first failed shard raises) or
`errors="return"` (each key on a failed shard maps to the `TaoError` instance instead, the
others to their values): a DataLoader hands the exception to just those keys.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from config import Settings, resolve_path
from tao.assoc_reads import AssocReads, EdgeKey, ListKey
from tao.assoc_writes import AssocWrites
from tao.backends.base import Backend
from tao.broker import Broker, make_broker
from tao.bulk_lists import BulkLists, ObjectFilter
from tao.cache import CacheTier, make_cache_tier
from tao.cache.shared_log import SharedInvalidations
from tao.cache_io import CacheIO
from tao.clock import Clock, StoreClock
from tao.erase import Erasure, Residue
from tao.errors import TaoError
from tao.holds import Holds, make_holds
from tao.id_leases import IdLeases, LeaseTable, lease_tables
from tao.ids import IdGenerator
from tao.instrumentation import instrument  # observability: verb counters, cache timings, spans
from tao.inverses import Inverses
from tao.lists import ListWrites
from tao.migrations import check_shard, migrate_shard
from tao.models import Appended, Assoc, ListCheck, Obj, PlannedObj
from tao.objects import Objects
from tao.outbox import Jobs, Outbox
from tao.rate_limits import RateLimiter, make_rate_limiter
from tao.registry import Registry
from tao.shardmap import ShardMap
from tao.shards import Errors, Shards
from tao.sketches import Sketches
from tao.types import REGISTRY
from tao.unique_keys import UniqueKeys


class Tao:
    """The store. Safe to share across tasks of one event loop; one per process."""

    __all__ = (
        # objects
        "obj_add", "obj_create", "obj_plan", "obj_add_many", "obj_get", "obj_update", "obj_delete", "obj_scan",
        # associations: writes
        "assoc_add", "assoc_add_many", "assoc_delete", "assoc_change_type",
        # associations: bulk and append-only lists (tao/bulk_lists.py)
        "assoc_add_to_objects", "assoc_append_many", "assoc_add_and_append", "assoc_trim",
        # associations: reads
        "assoc_get", "assoc_get_many", "assoc_count", "assoc_count_many", "assoc_range",
        "assoc_range_many", "assoc_time_range", "assoc_time_range_many",
        # unique keys
        "key_claim", "key_release", "key_get_many",
        # erasure (tao/erase.py): the store's own traces of deleted ids
        "erase_rows", "sweep_cache", "residue", "assoc_scan_to", "obj_scan_naming",
        # jobs
        "enqueue", "run_jobs_until_idle", "outbox",
        # the cache installs of several writes made together (tao/cache_io.py)
        "installs_together",
        # lifecycle and operations
        "migrate", "check_schema", "lease_ids", "id_lease_tables", "close", "ping_shards", "stats",
        "reset_stats",
        # routing and context
        "shard", "n_shards", "ids", "settings", "registry", "broker", "rate_limits", "holds",
        # the deployment's one clock (tao/clock.py): time windows are decided by it
        "clock", "sketches",
    )

    def __init__(self, settings: Settings, registry: Registry, shard_map: ShardMap,
                 backend: Backend, cache: CacheTier) -> None:
        self.settings = settings
        self.registry = registry
        self._shards = shards = Shards(backend, shard_map, cache.fence)
        # The store's one durable job queue: jobs commit with the writes that cause them.
        self.outbox = outbox = Outbox(shards, settings.jobs)
        outbox.store = self
        self._cache = cache_io = CacheIO(cache, registry, outbox, shards.counters, settings.cache.list_limit)
        self._objects = Objects(shards, cache_io, outbox, registry)
        self._keys = UniqueKeys(shards, cache_io, registry)
        lists = ListWrites(backend, cache_io, registry)
        self._inverses = Inverses(shards, lists, registry)
        self._bulk = BulkLists(shards, lists, outbox, registry)
        self._writes = AssocWrites(shards, lists, self._bulk, self._inverses, outbox, registry, self._objects)
        self._reads = AssocReads(shards, cache_io, lists, registry)
        self._erasure = Erasure(shards, cache_io, registry)
        self._cache_baseline: dict[str, int] = {}
        # The event broker (tao.broker): writes publish "look at the store" messages after
        # their commit; the real-time layer (resolvers.realtime) listens.
        self.broker: Broker = make_broker(settings.broker)
        # Rate limits shared by every process (tao.rate_limits): in Redis with the broker, else local.
        self.rate_limits: RateLimiter = make_rate_limiter(settings.broker)
        # Counted, leased holds shared by every process (tao.holds): each user's live WebSocket operations.
        self.holds: Holds = make_holds(settings.broker)
        # The store's time (shard 0's server), which every process agrees on; tests replace it
        # with a `ManualClock`.
        self._store_clock: StoreClock | None = StoreClock(shards, settings.store.clock_sync_seconds)
        self.clock: Clock = self._store_clock
        # Ids are made on the store's clock too (never a test's `ManualClock`), with the slots
        # this process leases, one from each database server (tao/id_leases.py): `lease_ids()`, at open.
        shards.ids.now_ms = self._store_clock.now_ms
        self._id_leases = IdLeases(shards, shards.ids, settings.store.id_lease_seconds)
        outbox.now = lambda: self.clock.now_ms()  # delayed jobs come due on the same clock
        # HyperLogLogs and bounded recent sets in Redis, where one is configured (tao/sketches.py).
        self.sketches = Sketches(settings.broker)
        outbox.register("tao.sync_inverses", _sync_inverses)
        outbox.register("tao.cache_refill", _cache_refill)

    # ---- objects --------------------------------------------------------------------------------

    async def obj_add(self, otype: str, data: dict | None = None, *, owner: int | None = None,
                      jobs: Jobs | Callable[[int], Jobs] = None) -> int:
        """Create an object (on `owner`'s shard, else on any live one); returns its id. `jobs`
        commit with it; pass a function of the new id when a job must name the object."""
        return (await self._objects.add(otype, data, owner=owner, jobs=jobs)).id

    async def obj_create(self, otype: str, data: dict | None = None, *, owner: int | None = None,
                         jobs: Jobs | Callable[[int], Jobs] = None) -> Obj:
        """obj_add that returns the object as stored (its times and version), for a caller that
        would otherwise read it back at once."""
        return await self._objects.add(otype, data, owner=owner, jobs=jobs)

    def obj_plan(self, otype: str, data: dict | None = None, *, owner: int, id: int | None = None) -> PlannedObj:
        """An object on `owner`'s shard whose id and time are taken now and which another write
        creates in its own transaction (`assoc_add_and_append(create=[...])`): a caller that
        must claim something under the id before the object exists. Nothing is written. `id`:
        an id of that shard planned before (a retry creating what an earlier try planned)."""
        return self._objects.plan(otype, data, owner, id)

    async def obj_add_many(self, items: list[tuple[str, dict | None, int | None]]) -> list[int]:
        """Bulk obj_add of (otype, data, owner) items (batch loads; no jobs); ids in input order."""
        return await self._objects.add_many(items)

    async def obj_get(self, ids: Iterable[int], *, errors: Errors = "raise", fresh: bool = False) -> dict[int, Obj]:
        """Objects by id; missing or deleted ids are absent from the answer. errors="return":
        an id on a failed shard maps to the `TaoError` instance. `fresh=True` reads SQL rather
        than the cache, for a caller that SQL has just told an object exists (a duplicate id)
        while its writer may not have installed it yet (`installs_together`); it fills the
        cache with what it read."""
        return await self._objects.get(ids, errors=errors, fresh=fresh)

    async def obj_scan(self, shard: int, otype: str, after: int = 0, limit: int = 1000) -> list[Obj]:
        """Objects of `otype` on logical shard `shard` with ids above `after`, in id order (a
        keyset page: pass the last id as the next `after`). For rebuilds and batch jobs."""
        return await self._objects.scan(shard, otype, after, limit)

    async def obj_update(self, id_: int, data: dict, *, jobs: Jobs = None, version: int | None = None) -> Obj:
        """Merge `data` into the object's data (a key set to None is removed); version + 1.
        `version`: write only if the object is still at that version (compare-and-set), else
        raise `VersionConflictError`, which carries the object as it stands, and write nothing."""
        return await self._objects.update(id_, data, jobs=jobs, version=version)

    async def obj_delete(self, id_: int, *, jobs: Jobs = None, version: int | None = None) -> bool:
        """Delete the object (its associations are the caller's to remove). Returns whether it
        existed. `version`: as obj_update's (a gone object is a conflict too)."""
        return await self._objects.delete(id_, jobs=jobs, version=version)

    # ---- associations: writes -------------------------------------------------------------------

    async def assoc_add(self, id1: int, atype: str, id2: int, time: int | None = None, data: dict | None = None,
                        *, jobs: Jobs = None) -> Assoc:
        """Add the edge, or update its time and data if it exists (upsert). Counts change only on insert."""
        return await self._writes.assoc_add(id1, atype, id2, time, data, jobs=jobs)

    async def assoc_add_many(self, edges: list[tuple], *, jobs_by_shard: dict[int, list] | None = None) -> int:
        """Bulk upsert of (id1, atype, id2[, time[, data]]) edges, one transaction per shard of
        id1 (`jobs_by_shard` commit with their shard's part); returns how many were new."""
        return await self._writes.assoc_add_many(edges, jobs_by_shard=jobs_by_shard)

    async def assoc_delete(self, id1: int, atype: str, id2: int, *, jobs: Jobs = None) -> bool:
        """Remove the edge; returns whether it existed. Caller jobs commit only if it did."""
        return await self._writes.assoc_delete(id1, atype, id2, jobs=jobs)

    async def assoc_change_type(self, id1: int, atype: str, id2: int, new_atype: str, *, jobs: Jobs = None) -> Assoc:
        """Move the edge to another counted list of id1 (FOLLOW_REQUESTED -> FOLLOWS) in one
        transaction, keeping its time and data."""
        return await self._writes.assoc_change_type(id1, atype, id2, new_atype, jobs=jobs)

    async def assoc_add_to_objects(self, id1s: list[int], atype: str, id2: int, time: int | None = None,
                                   data: dict | None = None, *, where: ObjectFilter | None = None) -> None:
        """Add (id1, atype, id2) from each of `id1s` that exists and passes `where`, filtered in
        the database; an uncounted type only (see tao/bulk_lists.py)."""
        await self._bulk.add_to_objects(id1s, atype, id2, time, data, where=where)

    async def assoc_append_many(self, edges: list[tuple[int, str, int, dict | None]]) -> list[Appended]:
        """Append (id1, atype, id2, data) edges at the head of their lists in commit order, each
        at a time above every earlier edge of its list (see tao/bulk_lists.py)."""
        return await self._bulk.append_many(edges)

    async def assoc_add_and_append(self, edges: list[tuple], appends: list[tuple[int, str, int, dict | None]],
                                   *, check: ListCheck | None = None,
                                   jobs_by_shard: dict[int, list] | None = None,
                                   create: list[PlannedObj] | None = None) -> tuple[int, list[Appended]]:
        """`assoc_add_many(edges)` and `assoc_append_many(appends)` together, one transaction per
        shard for both (a delivery that bumps each member's folders and appends to each
        member's stream): (how many edges were new, what each append did). `check` (a
        `ListCheck`): a condition on a small list, checked under its lock in the write's one
        transaction (every edge and append on the list's shard); raising aborts the write (and
        its jobs). `jobs_by_shard`: as `assoc_add_many`'s. `create`: objects planned with
        `obj_plan` on `check`'s shard, inserted in that transaction (a duplicate id raises
        DuplicateKeyError and writes nothing) and cached after it."""
        return await self._writes.add_and_append(edges, appends, check=check, jobs_by_shard=jobs_by_shard,
                                                 create=create)

    def installs_together(self) -> AbstractAsyncContextManager[None]:
        """`async with tao.installs_together():` the cache installs of every write committed in
        the block are made together at its end: one exchange per memcached server and step
        instead of one per write (a delivery's transactions on several shards). A read in the
        block may not see the block's own writes in the cache yet (see `CacheIO`)."""
        return self._cache.installs_together()

    async def assoc_trim(self, id1: int, atype: str, *, keep: int, before: int | None = None) -> int:
        """Delete the edges of an uncached list past its newest `keep`, and any older than
        `before` (ms); returns how many went."""
        return await self._bulk.trim(id1, atype, keep=keep, before=before)

    # ---- associations: reads --------------------------------------------------------------------

    async def assoc_get(self, id1: int, atype: str, id2s: Sequence[int], high: int | None = None,
                        low: int | None = None) -> dict[int, Assoc]:
        """The edges from id1 to each of id2s that exist (and whose time is within [low, high])."""
        return await self._reads.assoc_get(id1, atype, id2s, high, low)

    async def assoc_get_many(self, keys: list[EdgeKey], *, errors: Errors = "raise") -> dict[EdgeKey, Any]:
        """{(id1, atype, id2): the edge, or None where it does not exist}."""
        return await self._reads.assoc_get_many(keys, errors=errors)

    async def assoc_count(self, id1: int, atype: str) -> int:
        return await self._reads.assoc_count(id1, atype)

    async def assoc_count_many(self, keys: list[ListKey], *, errors: Errors = "raise") -> dict[ListKey, Any]:
        """{(id1, atype): the list's exact count} (counted types only)."""
        return await self._reads.assoc_count_many(keys, errors=errors)

    async def assoc_range(self, id1: int, atype: str, pos: int, limit: int) -> list[Assoc]:
        return await self._reads.assoc_range(id1, atype, pos, limit)

    async def assoc_range_many(self, keys: list[ListKey], pos: int, limit: int,
                               *, errors: Errors = "raise") -> dict[ListKey, Any]:
        """{(id1, atype): the edges at positions [pos, pos+limit), newest first}."""
        return await self._reads.assoc_range_many(keys, pos, limit, errors=errors)

    async def assoc_time_range(self, id1: int, atype: str, high: int | None = None, low: int | None = None,
                               limit: int = 100, after: tuple[int, int] | None = None) -> list[Assoc]:
        return await self._reads.assoc_time_range(id1, atype, high, low, limit, after)

    async def assoc_time_range_many(self, keys: list[ListKey], high: int | None = None, low: int | None = None,
                                    limit: int = 100, after: tuple[int, int] | None = None,
                                    *, errors: Errors = "raise") -> dict[ListKey, Any]:
        """{(id1, atype): edges with low <= time <= high, newest first, at most `limit`};
        `after=(time, id2)` starts strictly after that edge (a keyset cursor)."""
        return await self._reads.assoc_time_range_many(keys, high, low, limit, after, errors=errors)

    # ---- unique keys ----------------------------------------------------------------------------

    async def key_claim(self, ns: str, key: str, id_: int) -> bool:
        """Claim `key` in `ns` for `id_`. True if it is now (or already was) id_'s; False if another id
        holds it, and then the cache holds that id too (a loser reads the winner at once), unless
        the namespace is declared uncached (`Registry.uncached_key_namespace`)."""
        return await self._keys.claim(ns, key, id_)

    async def key_release(self, ns: str, key: str, id_: int, *, to: int = 0) -> bool:
        """Release `key` if `id_` holds it; True if it did. `to`: an id that holds it from then
        on, in the same transaction (0: free)."""
        return await self._keys.release(ns, key, id_, to)

    async def key_get_many(self, ns: str, keys: list[str], *, errors: Errors = "raise") -> dict[str, Any]:
        """{key: id} for the keys that are claimed; errors="return" as for the other many-keys reads.
        A namespace declared uncached is read from the shards alone, no cache read and no fill."""
        return await self._keys.get_many(ns, keys, errors)

    # ---- erasure (tao/erase.py) ----------------------------------------------------------------

    async def erase_rows(self, ids: list[int], *, naming: list[int] = ()) -> int:  # type: ignore[assignment]
        """Delete the empty count rows, inverse tombstones and unique keys of already-deleted ids;
        with `naming`, every unique key whose key text names one of them too (a full scan)."""
        return await self._erasure.erase_rows(ids, list(naming))

    async def assoc_scan_to(self, id2s: list[int], limit: int, *, naming: list[int] = ()) -> list[tuple[int, str, int]]:  # type: ignore[assignment]
        """Up to `limit` edges (any shard, any type) pointing at `id2s` or whose data names one of
        `naming`: a full scan, for erasure."""
        return await self._erasure.edges_to(id2s, limit, list(naming))

    async def obj_scan_naming(self, needle: int, otype: str, limit: int, *, field: str | None = None,
                              after: int = 0) -> list[int]:
        """Up to `limit` objects of `otype` (any shard) whose data names `needle` (with `field`:
        as that top-level field's value): a full scan, for erasure and export. Ascending ids
        above `after` (the last id of the previous page)."""
        return await self._erasure.objects_naming(needle, otype, limit, field, after)

    async def sweep_cache(self, needles: list[int]) -> int:
        """Delete every cache entry of an id gone from SQL, and any naming or holding `needles`."""
        return await self._erasure.sweep_cache(needles)

    async def residue(self, ids: list[int], needles: list[int]) -> Residue:
        """Every row (every shard) and cache key (every server) naming `ids` or holding `needles`."""
        return await self._erasure.residue(ids, needles)

    # ---- jobs -----------------------------------------------------------------------------------

    async def enqueue(self, near_id: int, handler: str, payload: dict, *, delay_ms: int = 0) -> int:
        """A standalone durable job on near_id's shard."""
        return await self.outbox.enqueue(self.shard(near_id), handler, payload, delay_ms=delay_ms)

    async def run_jobs_until_idle(self, *, include_delayed: bool = True) -> int:
        """Run every due job (with include_delayed, the delayed ones too) until none is left."""
        return await self.outbox.run_until_idle(include_delayed=include_delayed)

    # ---- routing, lifecycle, operations ---------------------------------------------------------

    @property
    def n_shards(self) -> int:
        return self._shards.n_shards

    @property
    def ids(self) -> IdGenerator:
        """Id generator: `ids.next_id(shard)` names a row (an event, a job) before it is written."""
        return self._shards.ids

    def shard(self, id_: int) -> int:
        """The logical shard of an id (InvalidIdError if it is not a valid id)."""
        return self._shards.shard(id_)

    async def migrate(self) -> dict[int, list[int]]:
        """Apply schema migrations to every logical shard: {shard: versions applied}."""
        return {s: await migrate_shard(self._shards.backend, s) for s in range(self.n_shards)}

    async def check_schema(self) -> None:
        """Raise MigrationError unless every shard is at the latest schema."""
        for s in range(self.n_shards):
            await check_shard(self._shards.backend, s)

    async def lease_ids(self) -> dict[int, int | None]:
        """Lease this process's id slot on every database server and keep them renewed until
        `close` (`open_tao` does it, after the schema check); returns {server: slot}, None for a
        server that could not be reached (its shards make no ids until its task takes one).
        IdSlotsExhaustedError if a server has none free."""
        return await self._id_leases.acquire()

    async def id_lease_tables(self) -> list[LeaseTable]:
        """Each database server's id slot table: slots held, the latest lease end, the server's
        now (`python -m tao id-slots`; what a shard move checks, docs/sharding.md)."""
        return await lease_tables(self._shards)

    async def ping_shards(self) -> dict[int, str | None]:
        """{shard: None if healthy else the error}: for /healthz."""
        return await self._shards.ping_all()

    def stats(self) -> dict[str, int]:
        """Counters since the last `reset_stats()`: `sql_queries` (statements sent), and the cache
        tier's counters prefixed `cache_` (`cache_round_trips` counts per-server batch calls)."""
        merged = dict(self._shards.counters)
        merged.setdefault("sql_queries", 0)
        for k, v in self._cache.tier.stats().items():
            merged[f"cache_{k}"] = v - self._cache_baseline.get(k, 0) if k != "entries" else v
        return merged

    def reset_stats(self) -> None:
        self._shards.counters.clear()
        self._cache_baseline = dict(self._cache.tier.stats())

    async def close(self) -> None:
        await self.outbox.stop()
        await self.outbox.flush_done()  # done jobs waiting for a commit to carry their deletion
        await self._id_leases.release()  # after the worker, whose jobs may make ids
        await self.broker.close()
        await self.rate_limits.close()
        await self.holds.close()
        await self.sketches.close()
        if self._store_clock is not None:
            await self._store_clock.close()
        await self._shards.backend.close()
        await self._cache.tier.close()


async def _sync_inverses(tao: Tao, payload: dict) -> None:
    await tao._inverses.sync([tuple(e) for e in payload["edges"]])


async def _cache_refill(tao: Tao, payload: dict) -> None:
    items = payload["items"]
    objs = [i for i in items if i["kind"] == "o"]
    lists = [i for i in items if i["kind"] == "l"]
    keys = [i for i in items if i["kind"] == "u"]
    if objs:
        await tao._objects.refill(objs)
    if lists:
        await tao._reads.refill(lists)
    if keys:
        await tao._keys.refill(keys)


def make_backend(settings: Settings, shard_map: ShardMap) -> Backend:
    if settings.store.backend == "mysql":
        from tao.backends.mysql import MySQLBackend
        return MySQLBackend(settings.store, shard_map)
    if settings.store.backend == "sqlite":
        from tao.backends.sqlite import SQLiteBackend
        return SQLiteBackend(settings.store, shard_map)
    raise TaoError(f"store.backend must be 'mysql' or 'sqlite', got {settings.store.backend!r}")


async def open_tao(settings: Settings, *, migrate: bool | None = None, start_worker: bool | None = None,
                   registry: Registry = REGISTRY, make_ids: bool = True) -> Tao:
    """Build the store. `migrate` defaults to True on the embedded SQLite default (a bare machine
    must just work) and False on MySQL, where `python -m tao migrate` is an operator's step and
    a schema mismatch is refused. The in-process worker starts when `jobs.in_process_worker`.
    `make_ids=False`: lease no id slot (a command that writes nothing, as `python -m tao
    id-slots`, which must not count itself among the holders); `ids.next_id` then refuses."""
    shard_map = ShardMap.from_settings(settings.store)
    log = None
    if settings.store.backend == "sqlite" and settings.cache.backend == "local":
        # The embedded default: other processes on this machine (a batch job beside the server)
        # may open the same files, so the in-process caches share an invalidation log.
        log = await asyncio.to_thread(SharedInvalidations.open, resolve_path(settings.store.sqlite_dir) / "cache-log")
    cache = make_cache_tier(settings.cache, log=log)
    if settings.store.backend == "mysql":
        # The first import of the MySQL backend reads files (its driver reads its own package
        # metadata as it loads): off the event loop, as any blocking I/O.
        await asyncio.to_thread(importlib.import_module, "tao.backends.mysql")
    tao = Tao(settings, registry, shard_map, make_backend(settings, shard_map), cache)
    instrument(tao, cache)
    try:
        if migrate if migrate is not None else settings.store.backend == "sqlite":
            await tao.migrate()
        else:
            await tao.check_schema()
        await tao.clock.sync()  # type: ignore[attr-defined]  # a StoreClock until a test swaps it
        if make_ids:
            await tao.lease_ids()
    except BaseException:
        await tao.close()
        raise
    if start_worker if start_worker is not None else settings.jobs.in_process_worker:
        tao.outbox.start()
    return tao
