"""Inverse edges: make (id2, inverse, id1) mirror (id1, atype, id2), many edges at a time.

A sync reads each forward edge *and* its list's version in one statement (one snapshot,
`tao.lists.read_snapshot`) on id1's shard, then, in one transaction per shard of id2, applies
each inverse only if that version is newer than the one last applied there (kept on the inverse
row as `src_version`, or in `inverse_tombstones` once the inverse was removed). So syncs may run
in any order, any number of times, concurrently, and every inverse converges to its forward
edge's latest state.
"""

from __future__ import annotations

from typing import Any

import orjson

from tao.backends.base import Conn
from tao.lists import EdgeId, ListChange, ListWrites, or_of, read_snapshot
from tao.registry import Registry
from tao.shards import Shards

Edge = tuple[int, str, int]  # (id1, primary atype, id2)


class Inverses:
    def __init__(self, shards: Shards, lists: ListWrites, registry: Registry) -> None:
        self._shards = shards
        self._lists = lists
        self._registry = registry

    async def sync(self, edges: list[Edge], *, force: bool = False, known: dict[Edge, tuple] | None = None) -> None:
        """Idempotent and order-independent. `force` (the repair command) re-applies a state whose
        version was already recorded, for an inverse damaged outside the store; an older state is
        still never applied. `known`: {edge: (list version, (time, data text) or None)} that its
        writer just committed, for every edge: what the snapshot read would find (or an older
        state, which a newer sync then supersedes), so it is not read again."""
        edges = list(dict.fromkeys((e[0], e[1], e[2]) for e in edges))
        for _id1, atype, id2 in edges:
            if self._registry.primary_atype(atype).inverse is None:
                raise ValueError(f"{atype} has no inverse")
            self._shards.shard(id2)
        if known is not None and all(e in known for e in edges):
            forward = {e: known[e] for e in edges}
        else:
            forward = await self._shards.per_shard(self._shards.by_shard(edges, lambda e: e[0]), self._read_forward)

        async def apply(shard: int, group: list[Edge]) -> dict:
            changes = await self._shards.write(shard, lambda conn: self._apply(conn, group, forward, force))
            await self._lists.install_changes(shard, changes)
            return {}
        await self._shards.per_shard(self._shards.by_shard(edges, lambda e: e[2]), apply)

    async def _read_forward(self, shard: int, group: list[Edge]) -> dict[Edge, Any]:
        """{edge: (list version, (time, data_text) or None)} in one snapshot."""
        keys: dict[Edge, EdgeId] = {e: (e[0], self._registry.atype(e[1]).code, e[2]) for e in group}
        async with self._shards.read(shard) as conn:
            versions, found = await read_snapshot(conn, self._shards.backend, list(keys.values()))
        out = {}
        for e, k in keys.items():
            row = found.get(k)
            out[e] = (versions.get((k[0], k[1]), 0), (row[1], row[2]) if row else None)
        return out

    async def _apply(self, conn: Conn, group: list[Edge], forward: dict, force: bool) -> list[ListChange]:
        backend = self._shards.backend
        lists = self._lists
        inv: dict[Edge, EdgeId] = {e: (e[2], self._registry.inverse_code(e[1]), e[0]) for e in group}
        # Lock every inverse list first (no bump yet): writers of a list serialize on this row.
        # Then one read under those locks: the lists' heads, the inverse edges, their tombstones.
        inv_lists = [(k[0], k[1]) for k in inv.values()]
        await lists.lock_only(conn, inv_lists)
        snap = await lists.read_locked(conn, inv_lists, list(inv.values()), tombstones=list(inv.values()))
        current, tomb = snap.edges, snap.tombstones
        to_put: list[tuple[EdgeId, tuple, int]] = []
        to_remove: list[EdgeId] = []
        new_tombs: list[tuple[EdgeId, int]] = []
        drop_tombs: list[EdgeId] = []
        for e, key in inv.items():
            src_version, fwd = forward[e]
            cur = current.get(key)
            applied = max((cur[3] or 0) if cur else 0, tomb.get(key, 0))
            if src_version < applied or (src_version == applied and not force):
                continue  # this state, or a newer one, is already mirrored
            if fwd is not None:
                to_put.append((key, fwd, src_version))
                if key in tomb:
                    drop_tombs.append(key)
            else:
                new_tombs.append((key, src_version))
                if cur is not None:
                    to_remove.append(key)
        touched = list(dict.fromkeys([(k[0], k[1]) for k, _, _ in to_put] + [(k[0], k[1]) for k in to_remove]))
        await lists.lock_only(conn, touched, bump=True)  # locked by this transaction: the read's version + 1
        changes = {lst: ListChange(lst[0], lst[1], snap.heads[lst][0] + 1, snap.heads[lst][1],
                                   count_before=snap.heads[lst][1]) for lst in touched}
        rows = []
        for key, (time, text), src_version in to_put:
            c = changes[(key[0], key[1])]
            rows.append((*key, time, c.version, text, src_version))
            c.upserts.append([key[2], time, c.version, orjson.loads(text)])
            c.count += 0 if key in current else 1
        for key in to_remove:
            c = changes[(key[0], key[1])]
            c.removed.append(key[2])
            c.count -= 1
        await lists.put_edges(conn, rows)
        await lists.remove_edges(conn, to_remove)
        await lists.set_counts(conn, {k: c.count for k, c in changes.items() if c.count != c.count_before})
        if new_tombs:
            await conn.execute(backend.upsert("inverse_tombstones", ("id1", "atype", "id2", "src_version"),
                                              ("id1", "atype", "id2"), {"src_version": "NEW(src_version)"},
                                              rows=len(new_tombs)),
                               [x for key, v in new_tombs for x in (*key, v)])
        if drop_tombs:
            await conn.execute(f"DELETE FROM {{inverse_tombstones}} WHERE "
                               f"{or_of('(id1 = %s AND atype = %s AND id2 = %s)', len(drop_tombs))}",
                               [x for k in drop_tombs for x in k])
        return list(changes.values())
