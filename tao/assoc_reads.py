"""Association reads: assoc_get, assoc_count, assoc_range, assoc_time_range, each with a
many-keys form answering with one cache round trip and, for the misses, one SQL statement per
shard, shards in parallel.

Cached lists (`l:<id1>:<atype>`) hold the newest `cache.list_limit` edges (or their type's own
`window`: FOLLOWS is cached whole up to the follow cap), the exact count and a
"complete" flag; a read is answered from the cache whenever the cached prefix determines the
answer. Counts are also cached alone (`n:<id1>:<atype>`, at the list's version), so a count
read never decodes a popular list's window of edges. A list is filled from one SQL statement
(the count row and the newest edges in a single UNION), so the cached value is one snapshot
labelled with the list version of that snapshot.
Edges (`e:<id1>:<atype>:<id2>`) are cached one by one for assoc_get, present or absent; an
absent edge is labelled with its list's version, read in the same statement
(`tao.lists.read_snapshot`).

Per-key errors: every many-keys read takes `errors="raise"` (a failed shard raises) or
`errors="return"` (the keys that shard held map to the exception instance instead).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from tao.cache_io import CacheIO, install_value
from tao.errors import InvalidDataError
from tao.lists import EdgeId, ListWrites, lists_where, read_snapshot, sort_key
from tao.models import Assoc, check_count, check_many
from tao.registry import AssocType, Registry
from tao.shards import Errors, Shards

ListKey = tuple[int, str]          # (id1, atype)
EdgeKey = tuple[int, str, int]     # (id1, atype, id2)
MAX_LIMIT = 10_000


def _check_limit(limit: int, name: str = "limit") -> int:
    return check_count(name, limit, MAX_LIMIT)


def _check_bound(name: str, value: Any) -> None:
    """`high`/`low`: ms since the epoch (a number; whole ms are used) or None."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value):
        raise InvalidDataError(f"{name} must be ms since the epoch (a number) or None, got {value!r}")


class AssocReads:
    def __init__(self, shards: Shards, cache: CacheIO, lists: ListWrites, registry: Registry) -> None:
        self._shards = shards
        self._cache = cache
        self._lists = lists
        self._registry = registry

    def atype(self, name: str) -> AssocType:
        return self._registry.atype(name)

    async def _per_id1_shard(self, keys: list[Any], one: Callable[[int, list[Any]], Awaitable[dict]],
                             errors: Errors) -> dict:
        """`one(shard, keys on it)` for each shard of the keys' id1, shards in parallel; with
        errors="return", the keys of a failed shard map to its error."""
        return await self._shards.per_shard(self._shards.by_shard(keys, lambda k: k[0]), one, errors=errors,
                                            keys_of=lambda g: g)

    # ---- cached lists -------------------------------------------------------------------------

    async def _cached_lists(self, keys: list[ListKey], errors: Errors) -> dict[ListKey, Any]:
        cached = [k for k in keys if self.atype(k[1]).cached]
        out = await self._cache.read_through(
            {self._cache.list_key(k[0], self.atype(k[1]).code): k for k in cached}, "l",
            lambda misses: self._fill_lists(misses, errors), lambda k, value: value, errors)
        if len(cached) < len(keys):  # uncached types: the same snapshot read, straight from SQL
            out.update(await self._fill_lists([k for k in keys if not self.atype(k[1]).cached], errors,
                                              install=False))
        return out

    async def _fill_lists(self, keys: list[ListKey], errors: Errors, *, install: bool = True) -> dict:
        async def one(shard: int, group: list[ListKey]) -> dict:
            where, params = lists_where(self._shards.backend, [(id1, self.atype(a).code) for id1, a in group])
            parts = [f"SELECT 0, id1, atype, version, count, 0, 0, 0, '' FROM {{assoc_counts}} WHERE {where}"]
            for id1, atype in group:
                parts.append("SELECT 1 AS k, id1, atype, 0 AS v, 0 AS n, id2, time, version, data "
                             "FROM {assocs} WHERE id1 = %s AND atype = %s ORDER BY time DESC, id2 DESC LIMIT %s")
                params += [id1, self.atype(atype).code, self._cache.window(self.atype(atype).code) + 1]
            fence = self._cache.fence()
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(self._shards.backend.union_all(parts), params)
            heads: dict[tuple[int, int], tuple[int, int]] = {}
            edges: dict[tuple[int, int], list] = {}
            for kind, id1, code, version, count, id2, time, ev, data in rows:
                if kind == 0:
                    heads[(id1, code)] = (version, count)
                else:
                    edges.setdefault((id1, code), []).append([id2, time, ev, orjson.loads(data)])
            result, installs = {}, []
            for id1, atype in group:
                code = self.atype(atype).code
                version, count = heads.get((id1, code), (0, 0))
                es = edges.get((id1, code), [])
                window = self._cache.window(code)
                complete = len(es) <= window
                value = {"v": version, "n": count, "c": complete, "e": es[:window]}
                installs.append(install_value(self._cache.list_key(id1, code), version, value))
                installs.append(self._lists.count_install(id1, code, version, count))
                result[(id1, atype)] = value
            if install:
                await self._cache.fill(installs, fence)
            return result
        return await self._per_id1_shard(keys, one, errors)

    def _assoc(self, id1: int, atype: str, e: Sequence) -> Assoc:
        return Assoc(id1, atype, e[0], e[1], e[2], e[3])

    # ---- counts and ranges ------------------------------------------------------------------

    async def assoc_count_many(self, keys: list[ListKey], *, errors: Errors = "raise") -> dict[ListKey, Any]:
        keys = list(dict.fromkeys(keys))
        check_many(keys)
        for id1, atype in keys:
            self._shards.shard(id1)
            if not self.atype(atype).counted:
                raise InvalidDataError(f"{atype} keeps no count (it is written in bulk and never counted)")
        cached = [k for k in keys if self.atype(k[1]).cached]
        out = await self._cache.read_through(
            {self._cache.count_key(k[0], self.atype(k[1]).code): k for k in cached}, "n",
            lambda misses: self._fill_counts(misses, errors), lambda k, value: value["n"], errors)
        if len(cached) < len(keys):  # uncached types: straight from the count rows
            out.update(await self._fill_counts([k for k in keys if not self.atype(k[1]).cached], errors,
                                               install=False))
        return out

    async def _fill_counts(self, keys: list[ListKey], errors: Errors, *, install: bool = True) -> dict:
        """Counts from the lists' count rows (a list never written counts 0 at version 0), one
        statement per shard; installed as count keys at the row's version."""
        async def one(shard: int, group: list[ListKey]) -> dict:
            lists = [(id1, self.atype(atype).code) for id1, atype in group]
            fence = self._cache.fence()
            async with self._shards.read(shard) as conn:
                heads = await self._lists.read_heads(conn, lists)
            result, installs = {}, []
            for (id1, atype), (_, code) in zip(group, lists):
                version, count = heads.get((id1, code), (0, 0))
                installs.append(self._lists.count_install(id1, code, version, count))
                result[(id1, atype)] = count
            if install:
                await self._cache.fill(installs, fence)
            return result
        return await self._per_id1_shard(keys, one, errors)

    async def assoc_count(self, id1: int, atype: str) -> int:
        return (await self.assoc_count_many([(id1, atype)]))[(id1, atype)]

    async def _ranges(self, keys: list[ListKey], errors: Errors, from_cache: Callable[[dict], list | None],
                      sql_where: str, sql_params: list, sql_tail: str, limit: int) -> dict[ListKey, Any]:
        """What the range verbs share: answer each list from its cached window when
        `from_cache(value)` can (it returns None when the window does not decide the answer),
        and the rest with one SQL statement per shard."""
        keys = list(dict.fromkeys(keys))
        check_many(keys)
        for id1, _ in keys:
            self._shards.shard(id1)
        # Uncached types have no window to answer from: straight to the range query.
        deep = [k for k in keys if not self.atype(k[1]).cached]
        lists = await self._cached_lists([k for k in keys if self.atype(k[1]).cached], errors)
        out: dict[ListKey, Any] = {}
        for k, v in lists.items():
            if isinstance(v, Exception):
                out[k] = v
                continue
            page = from_cache(v)
            if page is None:
                deep.append(k)
            else:
                out[k] = [self._assoc(k[0], k[1], e) for e in page]
        if deep:
            out.update(await self._sql_ranges(deep, sql_where, sql_params, sql_tail, limit, errors))
        return out

    async def assoc_range_many(self, keys: list[ListKey], pos: int, limit: int,
                               *, errors: Errors = "raise") -> dict[ListKey, Any]:
        """The edges at positions [pos, pos+limit) of each list, newest first."""
        _check_limit(limit)
        _check_limit(pos, "pos")

        def from_cache(v: dict) -> list | None:
            return v["e"][pos:pos + limit] if v["c"] or pos + limit <= len(v["e"]) else None
        return await self._ranges(keys, errors, from_cache, "", [], f"LIMIT {limit} OFFSET {pos}", limit)

    async def assoc_range(self, id1: int, atype: str, pos: int, limit: int) -> list[Assoc]:
        return (await self.assoc_range_many([(id1, atype)], pos, limit))[(id1, atype)]

    async def assoc_time_range_many(self, keys: list[ListKey], high: int | None = None, low: int | None = None,
                                    limit: int = 100, after: tuple[int, int] | None = None,
                                    *, errors: Errors = "raise") -> dict[ListKey, Any]:
        """Edges with low <= time <= high, newest first, at most `limit`; `after=(time, id2)` starts
        strictly after that edge (a keyset cursor)."""
        _check_limit(limit)
        _check_bound("high", high)
        _check_bound("low", low)
        if after is not None and (not isinstance(after, (tuple, list)) or len(after) != 2
                                  or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in after)):
            raise InvalidDataError(f"after must be a (time, id2) pair of integers from a page's last edge, "
                                   f"got {after!r}")
        conds, params = [], []
        if high is not None:
            conds.append("time <= %s")
            params.append(int(high))
        if low is not None:
            conds.append("time >= %s")
            params.append(int(low))
        if after is not None:
            conds.append("(time < %s OR (time = %s AND id2 < %s))")
            params += [int(after[0]), int(after[0]), int(after[1])]

        def from_cache(v: dict) -> list | None:
            page, decided = self._time_range_from_cache(v, high, low, limit, after)
            return page if decided else None
        return await self._ranges(keys, errors, from_cache, "".join(f" AND {c}" for c in conds), params,
                                  f"LIMIT {limit}", limit)

    async def assoc_time_range(self, id1: int, atype: str, high: int | None = None, low: int | None = None,
                               limit: int = 100, after: tuple[int, int] | None = None) -> list[Assoc]:
        return (await self.assoc_time_range_many([(id1, atype)], high, low, limit, after))[(id1, atype)]

    @staticmethod
    def _time_range_from_cache(value: dict, high: int | None, low: int | None, limit: int,
                               after: tuple[int, int] | None) -> tuple[list, bool]:
        page: list[list] = []
        after_key = sort_key([after[1], after[0]]) if after is not None else None
        for e in value["e"]:
            if len(page) >= limit:
                return page, True
            if high is not None and e[1] > high:
                continue
            if after_key is not None and sort_key(e) <= after_key:
                continue
            if low is not None and e[1] < low:
                return page, True
            page.append(e)
        return page, len(page) >= limit or value["c"]

    async def _sql_ranges(self, keys: list[ListKey], extra: str, extra_params: list, tail: str, limit: int,
                          errors: Errors) -> dict[ListKey, Any]:
        """Ranges past the cached window: straight from SQL, one UNION statement per shard."""
        async def one(shard: int, group: list[ListKey]) -> dict:
            res: dict[ListKey, list] = {k: [] for k in group}
            if len(group) == 1:
                # One list (a feed page, a fan-out page): no UNION, and no id1/atype columns to
                # parse — the driver's per-column cost dominates reads of hundreds of rows.
                (id1, atype), = group
                params = [id1, self.atype(atype).code] + extra_params
                page = f"{{assocs}} WHERE id1 = %s AND atype = %s{extra} ORDER BY time DESC, id2 DESC {tail}"
                async with self._shards.read(shard) as conn:
                    edges = await self._shards.backend.fetch_edges(conn, page, params, limit)
                res[(id1, atype)] = [Assoc(id1, atype, id2, time, version, data) for id2, time, version, data in edges]
                return res
            parts, params = [], []
            for id1, atype in group:
                parts.append(f"SELECT id1, atype, id2, time, version, data FROM {{assocs}} "
                             f"WHERE id1 = %s AND atype = %s{extra} ORDER BY time DESC, id2 DESC {tail}")
                params += [id1, self.atype(atype).code] + extra_params
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(self._shards.backend.union_all(parts), params)
            names = {(id1, self.atype(a).code): (id1, a) for id1, a in group}
            for id1, code, id2, time, version, data in rows:
                k = names[(id1, code)]
                res[k].append(Assoc(id1, k[1], id2, time, version, orjson.loads(data)))
            for k in res:
                res[k].sort(key=lambda a: (-a.time, -a.id2))
            return res
        return await self._per_id1_shard(keys, one, errors)

    # ---- single edges -------------------------------------------------------------------------

    async def assoc_get_many(self, keys: list[EdgeKey], *, errors: Errors = "raise") -> dict[EdgeKey, Any]:
        """Each edge, or None where it does not exist."""
        keys = list(dict.fromkeys(keys))
        check_many(keys)
        for id1, _atype, id2 in keys:
            self._shards.shard(id1)
            self._shards.shard(id2)
        cached = [k for k in keys if self.atype(k[1]).cached]
        out = await self._cache.read_through(
            {self._cache.edge_key(k[0], self.atype(k[1]).code, k[2]): k for k in cached}, "e",
            lambda misses: self._fill_edges(misses, errors), self._edge_from_value, errors)
        if len(cached) < len(keys):  # types without edge keys: straight from SQL
            out.update(await self._fill_edges([k for k in keys if not self.atype(k[1]).cached], errors,
                                              install=False))
        return out

    def _edge_from_value(self, k: EdgeKey, value: dict) -> Assoc | None:
        a = value["a"]
        return None if a is None else Assoc(k[0], k[1], k[2], a[0], a[1], a[2])

    async def _fill_edges(self, keys: list[EdgeKey], errors: Errors, *, install: bool = True) -> dict:
        async def one(shard: int, group: list[EdgeKey]) -> dict:
            keys: list[EdgeId] = [(id1, self.atype(atype).code, id2) for id1, atype, id2 in group]
            fence = self._cache.fence()
            async with self._shards.read(shard) as conn:
                list_versions, found = await read_snapshot(conn, self._shards.backend, keys)
            result, installs = {}, []
            for id1, atype, id2 in group:
                code = self.atype(atype).code
                row = found.get((id1, code, id2))
                version = row[0] if row else list_versions.get((id1, code), 0)
                value = {"v": version, "a": [row[1], row[0], orjson.loads(row[2])] if row else None}
                installs.append(install_value(self._cache.edge_key(id1, code, id2), version, value))
                result[(id1, atype, id2)] = self._edge_from_value((id1, atype, id2), value)
            if install:
                await self._cache.fill(installs, fence)
            return result
        return await self._per_id1_shard(keys, one, errors)

    async def assoc_get(self, id1: int, atype: str, id2s: Sequence[int], high: int | None = None,
                        low: int | None = None) -> dict[int, Assoc]:
        """The edges from id1 to each of id2s that exist (and whose time is within [low, high])."""
        got = await self.assoc_get_many([(id1, atype, id2) for id2 in id2s])
        return {k[2]: a for k, a in got.items()
                if a is not None and (high is None or a.time <= high) and (low is None or a.time >= low)}

    async def refill(self, items: list[dict]) -> None:
        """The outbox's cache repair for lists and edges: re-read SQL, install by version."""
        keys = list({(i["id1"], self._registry.atype_by_code(i["atype"]).name) for i in items})
        await self._fill_lists(keys, "raise")
        edges = list({(i["id1"], self._registry.atype_by_code(i["atype"]).name, i["id2"]) for i in items
                      if "id2" in i and self._registry.atype_by_code(i["atype"]).cached})
        if edges:
            await self._fill_edges(edges, "raise")
