"""Association lists: what every writer of a list shares (locking and bumping list versions,
reading edges, multi-row upserts, counts, the cache update after the commit), and the one
snapshot read of "list versions and these edges" that edge reads and inverse syncs share.

Invariants:
- Every change to a list (id1, atype) bumps its `assoc_counts.version` in the same transaction
  as the edges and the count, so counts are exact and each list has one monotonic version. An
  edge row's `version` is the list version that last wrote it.
- Writers lock a transaction's lists in one sorted order (the count rows), so two writers of
  the same lists never deadlock on each other.
- After the commit, a cached list one version behind is updated in place; any other cached
  list is replaced by a tombstone at the new version (never deleted: a delete would let a
  slow reader put back an older list). The list's count key gets the new count at the new
  version, and each touched edge key its new state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from tao.backends.base import Backend, Conn, any_of
from tao.cache.base import Install
from tao.cache_io import CacheIO, install_value
from tao.registry import Registry

ListId = tuple[int, int]        # (id1, atype code)
EdgeId = tuple[int, int, int]   # (id1, atype code, id2)


@dataclass(slots=True)
class ListChange:
    """What one transaction did to one list, for the cache update that follows the commit."""
    id1: int
    atype: int
    version: int                                        # the list's new version
    count: int                                          # the list's new count
    upserts: list[list] = field(default_factory=list)   # [id2, time, version, data] now present
    removed: list[int] = field(default_factory=list)    # id2s now absent
    count_before: int = 0


@dataclass(slots=True)
class Locked:
    """What `ListWrites.lock_and_read` found under the lists' locks."""
    heads: dict[ListId, list[int]]                   # list -> [version (bumped), count]
    edges: dict[EdgeId, tuple]                       # as `read_edges`: (time, version, data, src_version)
    newest: dict[ListId, int]                        # list -> its newest edge time, 0 if empty (if asked)
    tombstones: dict[EdgeId, int]                    # inverse key -> the src_version its removal recorded


def sort_key(edge: list) -> tuple[int, int]:
    """Lists are newest first by (time, id2); `edge` is [id2, time, ...]."""
    return (-edge[1], -edge[0])


def or_of(clause: str, n: int) -> str:
    return any_of([clause] * n)


def lists_where(backend: Backend, lists: list[ListId]) -> tuple[str, list[Any]]:
    """A WHERE clause (and its params) matching the lists' rows by (id1, atype)."""
    return backend.keys_in(("id1", "atype"), len(lists)), [x for lst in lists for x in lst]


def edges_where(backend: Backend, keys: list[EdgeId]) -> tuple[str, list[Any]]:
    """A WHERE clause (and its params) matching the edges `keys`: per list, `id2 IN (...)`; for
    one edge in each of many lists (a fan-out batch), the backend's key-set match over the
    three columns."""
    by_list: dict[ListId, list[int]] = {}
    for id1, code, id2 in keys:
        by_list.setdefault((id1, code), []).append(id2)
    if len(by_list) > 1 and len(keys) == len(by_list):
        return backend.keys_in(("id1", "atype", "id2"), len(keys)), [x for k in keys for x in k]
    params: list[Any] = []
    for (id1, code), id2s in by_list.items():
        params += [id1, code, *id2s]
    return any_of([f"(id1 = %s AND atype = %s AND id2 IN ({','.join(['%s'] * len(v))}))"
                   for v in by_list.values()]), params


async def read_snapshot(conn: Conn, backend: Backend, keys: list[EdgeId]
                        ) -> tuple[dict[ListId, int], dict[EdgeId, tuple[int, int, str]]]:
    """The versions of the keys' lists and the keys' edges, in one statement (one snapshot):
    ({list: version}, {edge: (edge version, time, data text)}). A list never written is absent
    (version 0); so is an edge that does not exist."""
    lists = list(dict.fromkeys((k[0], k[1]) for k in keys))
    heads, head_params = lists_where(backend, lists)
    edges, edge_params = edges_where(backend, keys)
    rows = await conn.fetchall(
        f"SELECT 0, id1, atype, 0, version, 0, '' FROM {{assoc_counts}} WHERE {heads} UNION ALL "
        f"SELECT 1, id1, atype, id2, version, time, data FROM {{assocs}} WHERE {edges}",
        head_params + edge_params)
    versions = {(r[1], r[2]): r[4] for r in rows if r[0] == 0}
    found = {(r[1], r[2], r[3]): (r[4], r[5], r[6]) for r in rows if r[0] == 1}
    return versions, found


class ListWrites:
    def __init__(self, backend: Backend, cache: CacheIO, registry: Registry) -> None:
        self._backend = backend
        self._cache = cache
        self._registry = registry

    async def lock_lists(self, conn: Conn, lists: list[ListId], *, bump: bool = True) -> dict[ListId, list[int]]:
        """Lock the lists' count rows (creating them) in sorted order, bumping their versions when
        `bump`; return {list: [version, count]}."""
        lists = sorted(set(lists))
        if not lists:
            return {}
        await self._lock(conn, lists, bump=bump)
        return await self.read_heads(conn, lists)

    async def lock_only(self, conn: Conn, lists: list[ListId], *, bump: bool = False) -> None:
        """Lock the lists' count rows (creating them) in sorted order without reading them;
        `bump`: their versions go up by one."""
        lists = sorted(set(lists))
        if lists:
            await self._lock(conn, lists, bump=bump)

    async def lock_and_read(self, conn: Conn, lists: list[ListId], keys: list[EdgeId], *, newest: bool = False,
                            tombstones: list[EdgeId] | None = None, whole: list[ListId] = ()) -> Locked:  # type: ignore[assignment]
        """`lock_lists` (bumping) and `read_edges(keys)` in two statements instead of three: the
        lock, then one read of the heads and the edges (see `Locked`). With `newest`, the same
        read gives each list's newest edge time; with `tombstones`, those keys' inverse
        tombstones; with `whole` (lists among `lists`), every edge of those lists too."""
        lists = sorted(set(lists))
        if not lists:
            return Locked({}, {}, {}, {})
        await self._lock(conn, lists, bump=True)
        return await self.read_locked(conn, lists, keys, newest=newest, tombstones=tombstones, whole=whole)

    async def read_locked(self, conn: Conn, lists: list[ListId], keys: list[EdgeId], *, newest: bool = False,
                          tombstones: list[EdgeId] | None = None, whole: list[ListId] = ()) -> Locked:  # type: ignore[assignment]
        """The read half of `lock_and_read`, for lists this transaction has locked already: a
        plain read (the locks taken before it fix the snapshot after every earlier writer's
        commit; a locking read would take gap locks next to other lists for nothing)."""
        out = Locked({}, {}, {}, {})
        lists = sorted(set(lists))
        if not lists:
            return out
        where, params = lists_where(self._backend, lists)
        # Each list's newest time as one step down its `by_time` index. Not MAX(time): in a
        # correlated subquery MariaDB reads every edge of the list for it (a thread's messages,
        # a stream's events: a long conversation made each send cost MariaDB its whole length).
        top = ("(SELECT a.time FROM {assocs} a WHERE a.id1 = c.id1 AND a.atype = c.atype "
               "ORDER BY a.time DESC LIMIT 1)" if newest else "0")
        sql = f"SELECT 0, id1, atype, 0, version, count, {top}, NULL, NULL FROM {{assoc_counts}} c WHERE {where}"
        if keys:
            edges, edge_params = edges_where(self._backend, keys)
            sql += (" UNION ALL SELECT 1, id1, atype, id2, version, time, 0, data, src_version FROM {assocs} "
                    f"WHERE {edges}")
            params += edge_params
        if whole:  # small lists only (a checked list: `ListCheck`)
            where_whole, whole_params = lists_where(self._backend, list(whole))
            sql += (" UNION ALL SELECT 1, id1, atype, id2, version, time, 0, data, src_version FROM {assocs} "
                    f"WHERE {where_whole}")
            params += whole_params
        if tombstones:
            sql += (" UNION ALL SELECT 2, id1, atype, id2, src_version, 0, 0, NULL, NULL FROM {inverse_tombstones} "
                    f"WHERE {or_of('(id1 = %s AND atype = %s AND id2 = %s)', len(tombstones))}")
            params += [x for k in tombstones for x in k]
        for kind, id1, atype, id2, version, n, top_time, data, src_version in await conn.fetchall(sql, params):
            if kind == 0:
                out.heads[(id1, atype)] = [version, n]
                out.newest[(id1, atype)] = top_time or 0
            elif kind == 1:
                out.edges[(id1, atype, id2)] = (n, version, data, src_version)
            else:
                out.tombstones[(id1, atype, id2)] = version
        return out

    async def _lock(self, conn: Conn, lists: list[ListId], *, bump: bool) -> None:
        update = {"version": "version + 1"} if bump else {"version": "version"}
        params = [x for id1, code in lists for x in (id1, code, 0, 1 if bump else 0)]
        # Queued: it goes with the read that follows it, or with the transaction's writes.
        await conn.queue(self._backend.upsert("assoc_counts", ("id1", "atype", "count", "version"),
                                              ("id1", "atype"), update, rows=len(lists)), params)

    async def read_heads(self, conn: Conn, lists: list[ListId]) -> dict[ListId, list[int]]:
        """{list: [version, count]} for the lists that have a count row."""
        where, params = lists_where(self._backend, lists)
        rows = await conn.fetchall(f"SELECT id1, atype, version, count FROM {{assoc_counts}} WHERE {where}", params)
        return {(r[0], r[1]): [r[2], r[3]] for r in rows}

    async def read_edges(self, conn: Conn, keys: list[EdgeId], *, lock: bool = False) -> dict[EdgeId, tuple]:
        """{(id1, atype, id2): (time, version, data, src_version)} for the keys that exist."""
        if not keys:
            return {}
        where, params = edges_where(self._backend, keys)
        rows = await conn.fetchall(f"SELECT id1, atype, id2, time, version, data, src_version FROM {{assocs}} "
                                   f"WHERE {where}{self._backend.for_update if lock else ''}", params)
        return {(r[0], r[1], r[2]): r[3:] for r in rows}

    async def put_edges(self, conn: Conn, rows: list[tuple]) -> None:
        """Upsert edges: rows of (id1, atype, id2, time, version, data_text, src_version)."""
        if rows:
            await conn.queue(self._backend.upsert(
                "assocs", ("id1", "atype", "id2", "time", "version", "data", "src_version"), ("id1", "atype", "id2"),
                {c: f"NEW({c})" for c in ("time", "version", "data", "src_version")}, rows=len(rows)),
                [x for r in rows for x in r])

    async def remove_edges(self, conn: Conn, keys: list[EdgeId]) -> None:
        if keys:
            await conn.execute(
                f"DELETE FROM {{assocs}} WHERE {or_of('(id1 = %s AND atype = %s AND id2 = %s)', len(keys))}",
                [x for k in keys for x in k])

    async def set_counts(self, conn: Conn, counts: dict[ListId, int]) -> None:
        if counts:
            items = sorted(counts.items())
            await conn.queue(self._backend.upsert("assoc_counts", ("id1", "atype", "count", "version"),
                                                  ("id1", "atype"), {"count": "NEW(count)"}, rows=len(items)),
                             [x for (id1, code), n in items for x in (id1, code, n, 0)])

    # ---- after the commit ---------------------------------------------------------------------

    def count_install(self, id1: int, code: int, version: int, count: int) -> Install:
        """The list's count key at `version`: exact whatever was cached, so it needs no `old`."""
        return install_value(self._cache.count_key(id1, code), version, {"n": count})

    async def install_changes(self, shard: int, changes: list[ListChange]) -> None:
        installs, refill = [], []
        for c in changes:
            if not self._registry.atype_by_code(c.atype).cached:
                continue
            installs.append(Install(self._cache.list_key(c.id1, c.atype), c.version,
                                    functools.partial(self.apply_to_cached_list, change=c)))
            # The count alone, exact at this version whatever was cached: count reads (ranking
            # reads hundreds) must not decode a popular list's window of newest edges.
            installs.append(self.count_install(c.id1, c.atype, c.version, c.count))
            for e in c.upserts:
                installs.append(self._edge_install(c.id1, c.atype, e[0], c.version, e[1:]))
            for id2 in c.removed:
                installs.append(self._edge_install(c.id1, c.atype, id2, c.version, None))
            if len(c.upserts) + len(c.removed) <= 20:
                refill += [{"kind": "l", "id1": c.id1, "atype": c.atype, "id2": id2}
                           for id2 in [e[0] for e in c.upserts] + c.removed]
            else:  # big batches: repairing the list is enough; edge keys carry the TTL
                refill.append({"kind": "l", "id1": c.id1, "atype": c.atype})
        await self._cache.install(installs, shard, refill)

    def _edge_install(self, id1: int, code: int, id2: int, version: int, state: list | None) -> Install:
        return install_value(self._cache.edge_key(id1, code, id2), version, {"a": state})

    def apply_to_cached_list(self, old: dict | None, change: ListChange) -> dict[str, Any]:
        """Update a cached list in place when it is exactly one version behind; else a tombstone."""
        c = change
        if old is None or old.get("v") != c.version - 1:
            return {"stale": True}
        touched = {e[0] for e in c.upserts} | set(c.removed)
        edges = [e for e in old["e"] if e[0] not in touched]
        complete = old["c"]
        cutoff = None if complete or not old["e"] else sort_key(old["e"][-1])
        # Insert only edges that fall inside the cached window of newest edges.
        edges += [e for e in c.upserts if cutoff is None or sort_key(e) < cutoff]
        edges.sort(key=sort_key)
        window = self._cache.window(c.atype)
        if len(edges) > window:
            edges = edges[:window]
            complete = False
        return {"n": c.count, "c": complete and len(edges) == c.count, "e": edges}
