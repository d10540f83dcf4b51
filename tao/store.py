"""The `Tao` client: the store's whole API (the TAO paper's verbs and their many-keys forms),
assembled from one module per concern, and `open_tao()` that builds it from Settings.

    tao = await open_tao(load_settings())
    uid = await tao.obj_add("USER", {"username": "ada"})
    await tao.assoc_add(uid, "FOLLOWS", other)
    await tao.close()
"""

from __future__ import annotations

import asyncio
import logging

from config import Settings, resolve_path
from tao.assoc_reads import AssocReadVerbs
from tao.backends.base import Backend
from tao.broker import Broker, make_broker
from tao.cache import CacheTier, make_cache_tier
from tao.cache.shared_log import SharedInvalidations
from tao.errors import TaoError
from tao.instrumentation import instrument  # observability: verb counters, cache timings, spans
from tao.migrations import check_shard, migrate_shard
from tao.objects import ObjectVerbs
from tao.outbox import Outbox
from tao.registry import Registry
from tao.shardmap import ShardMap
from tao.types import REGISTRY
from tao.unique_keys import UniqueKeyVerbs

log = logging.getLogger("tao")


class Tao(AssocReadVerbs, ObjectVerbs, UniqueKeyVerbs):
    """The store. Safe to share across tasks of one event loop; one per process."""

    def __init__(self, settings: Settings, registry: Registry, shard_map: ShardMap,
                 backend: Backend, cache: CacheTier) -> None:
        super().__init__(settings, registry, shard_map, backend, cache)
        self.outbox = self.jobs = Outbox(self, settings.jobs)
        # The event broker (tao.broker): writes publish "look at the store" messages after
        # their commit; the real-time layer (resolvers.realtime) listens.
        self.broker: Broker = make_broker(settings.broker)
        self.jobs.register("tao.sync_inverses", _sync_inverses)
        self.jobs.register("tao.cache_refill", _cache_refill)

    async def enqueue(self, near_id: int, handler: str, payload: dict, *, delay_ms: int = 0) -> int:
        """A standalone durable job on near_id's shard."""
        return await self.outbox.enqueue(self.shard(near_id), handler, payload, delay_ms=delay_ms)

    async def run_jobs_until_idle(self, *, include_delayed: bool = True) -> int:
        return await self.outbox.run_until_idle(include_delayed=include_delayed)

    async def migrate(self) -> dict[int, list[int]]:
        return {s: await migrate_shard(self.backend, s) for s in range(self.n_shards)}

    async def check_schema(self) -> None:
        for s in range(self.n_shards):
            await check_shard(self.backend, s)

    async def close(self) -> None:
        await self.outbox.stop()
        await self.broker.close()
        await self.backend.close()
        await self.cache.close()


async def _sync_inverses(tao: Tao, payload: dict) -> None:
    await tao.sync_inverses([tuple(e) for e in payload["edges"]])


async def _cache_refill(tao: Tao, payload: dict) -> None:
    items = payload["items"]
    objs = [i for i in items if i["kind"] == "o"]
    lists = [i for i in items if i["kind"] == "l"]
    keys = [i for i in items if i["kind"] == "u"]
    if objs:
        await tao.refill_objects(objs)
    if lists:
        await tao.refill_lists(lists)
    if keys:
        await tao.refill_keys(keys)


def make_backend(settings: Settings, shard_map: ShardMap) -> Backend:
    if settings.store.backend == "mysql":
        from tao.backends.mysql import MySQLBackend
        return MySQLBackend(settings.store, shard_map)
    if settings.store.backend == "sqlite":
        from tao.backends.sqlite import SQLiteBackend
        return SQLiteBackend(settings.store, shard_map)
    raise TaoError(f"store.backend must be 'mysql' or 'sqlite', got {settings.store.backend!r}")


async def open_tao(settings: Settings, *, migrate: bool | None = None, start_worker: bool | None = None,
                   registry: Registry = REGISTRY) -> Tao:
    """Build the store. `migrate` defaults to True on the embedded SQLite default (a bare machine
    must just work) and False on MySQL, where `python -m tao migrate` is an operator's step and
    a schema mismatch is refused. The in-process worker starts when `jobs.in_process_worker`."""
    shard_map = ShardMap.from_settings(settings.store)
    log = None
    if settings.store.backend == "sqlite" and settings.cache.backend == "local":
        # The embedded default: other processes on this machine (a batch job beside the server)
        # may open the same files, so the in-process caches share an invalidation log.
        log = await asyncio.to_thread(SharedInvalidations.open, resolve_path(settings.store.sqlite_dir) / "cache-log")
    tao = Tao(settings, registry, shard_map, make_backend(settings, shard_map), make_cache_tier(settings.cache, log=log))
    instrument(tao)
    try:
        if migrate if migrate is not None else settings.store.backend == "sqlite":
            await tao.migrate()
        else:
            await tao.check_schema()
    except BaseException:
        await tao.close()
        raise
    if start_worker if start_worker is not None else settings.jobs.in_process_worker:
        tao.outbox.start()
    return tao
