"""`TaoTestHooks`: what the store's own tests and the benchmarks reach below the API (the cache
tier, raw SQL on a shard, key names, the cached-list window, inverse syncs). Nothing else in
the tree imports this module; domain code uses `Tao`'s verbs only.

    hooks = TaoTestHooks(tao)
    await hooks.cache.flush()
    async with hooks.read(hooks.shard(id_)) as conn: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from tao.backends.base import Backend, Conn
from tao.cache.base import CacheTier
from tao.inverses import Edge, Inverses
from tao.registry import AssocType
from tao.shardmap import ShardMap
from tao.store import Tao

T = TypeVar("T")


class TaoTestHooks:
    def __init__(self, tao: Tao) -> None:
        self._tao = tao
        self.cache: CacheTier = tao._cache.tier
        self.backend: Backend = tao._shards.backend
        self.shard_map: ShardMap = tao._shards.shard_map
        self.inverses: Inverses = tao._inverses

    def shard(self, id_: int) -> int:
        return self._tao.shard(id_)

    def key_shard(self, ns: str, key: str) -> int:
        """The shard a unique key's row lives on."""
        return self._tao._keys._key_shard(ns, key)

    def atype(self, name: str) -> AssocType:
        return self._tao.registry.atype(name)

    def read(self, shard: int) -> AbstractAsyncContextManager[Conn]:
        """An autocommit connection to `shard`, counted in `sql_queries`."""
        return self._tao._shards.read(shard)

    async def write(self, shard: int, body: Callable[[Conn], Awaitable[T]]) -> T:
        """`body(conn)` in one transaction on `shard`."""
        return await self._tao._shards.write(shard, body)

    def obj_key(self, id_: int) -> str:
        return self._tao._cache.obj_key(id_)

    def list_key(self, id1: int, code: int) -> str:
        return self._tao._cache.list_key(id1, code)

    def count_key(self, id1: int, code: int) -> str:
        return self._tao._cache.count_key(id1, code)

    @property
    def list_limit(self) -> int:
        """How many newest edges a cached list holds (settable, for tests of the window's edge)."""
        return self._tao._cache.list_limit

    @list_limit.setter
    def list_limit(self, value: int) -> None:
        self._tao._cache.list_limit = value

    async def sync_inverses(self, edges: list[Edge], *, force: bool = False) -> None:
        await self._tao._inverses.sync(edges, force=force)

    async def sync_inverse(self, id1: int, atype: str, id2: int, *, force: bool = False) -> None:
        await self._tao._inverses.sync([(id1, atype, id2)], force=force)
