"""Inverse edges: make (id2, inverse, id1) mirror (id1, atype, id2), many edges at a time.

A sync reads each forward edge *and* its list's version in one statement (one snapshot) on
id1's shard, then, in one transaction per shard of id2, applies each inverse only if that
version is newer than the one last applied there (kept on the inverse row as `src_version`, or
in `inverse_tombstones` once the inverse was removed). So syncs may run in any order, any number
of times, concurrently, and every inverse converges to its forward edge's latest state.
"""

from __future__ import annotations

from typing import Any

import orjson

from tao.lists import ListChange, ListWrites, _or

Edge = tuple[int, str, int]  # (id1, primary atype, id2)


class InverseSync(ListWrites):
    async def sync_inverse(self, id1: int, atype: str, id2: int, *, force: bool = False) -> None:
        await self.sync_inverses([(id1, atype, id2)], force=force)

    async def sync_inverses(self, edges: list[Edge], *, force: bool = False) -> None:
        """Idempotent and order-independent. `force` (the repair command) re-applies a state whose
        version was already recorded, for an inverse damaged outside the store; an older state is
        still never applied."""
        edges = list(dict.fromkeys((e[0], e[1], e[2]) for e in edges))
        for id1, atype, id2 in edges:
            if self.primary_atype(atype).inverse is None:
                raise ValueError(f"{atype} has no inverse")
            self.shard(id2)
        forward = await self.per_shard(self.by_shard(edges, lambda e: e[0]), self._read_forward)

        async def apply(shard: int, group: list[Edge]) -> dict:
            changes = await self.write(shard, lambda conn: self._apply_inverses(conn, group, forward, force))
            await self.install_changes(shard, changes)
            return {}
        await self.per_shard(self.by_shard(edges, lambda e: e[2]), apply)

    async def _read_forward(self, shard: int, group: list[Edge]) -> dict[Edge, Any]:
        """{edge: (src_version, (time, data_text) or None)} in one snapshot."""
        lists = list(dict.fromkeys((id1, self.atype(a).code) for id1, a, _ in group))
        by_list: dict[tuple[int, int], list[int]] = {}
        for id1, a, id2 in group:
            by_list.setdefault((id1, self.atype(a).code), []).append(id2)
        edge_where = " OR ".join(f"(id1 = %s AND atype = %s AND id2 IN ({','.join(['%s'] * len(v))}))"
                                 for v in by_list.values())
        params: list[Any] = [x for lst in lists for x in lst]
        for (id1, code), id2s in by_list.items():
            params += [id1, code, *id2s]
        async with self.read(shard) as conn:
            rows = await conn.fetchall(
                f"SELECT 0, id1, atype, 0, version, 0, '' FROM {{assoc_counts}} "
                f"WHERE {_or('(id1 = %s AND atype = %s)', len(lists))} UNION ALL "
                f"SELECT 1, id1, atype, id2, 0, time, data FROM {{assocs}} WHERE {edge_where}", params)
        versions = {(r[1], r[2]): r[4] for r in rows if r[0] == 0}
        present = {(r[1], r[2], r[3]): (r[5], r[6]) for r in rows if r[0] == 1}
        out = {}
        for id1, a, id2 in group:
            code = self.atype(a).code
            out[(id1, a, id2)] = (versions.get((id1, code), 0), present.get((id1, code, id2)))
        return out

    async def _apply_inverses(self, conn, group: list[Edge], forward: dict, force: bool) -> list[ListChange]:
        inv = {e: (e[2], self.atype(e[1]).inverse_code, e[0]) for e in group}  # the inverse's key
        # Lock every inverse list first (no bump yet): writers of a list serialize on this row.
        await self.lock_lists(conn, [(k[0], k[1]) for k in inv.values()], bump=False)
        current = await self.read_edges(conn, list(inv.values()), lock=True)
        tombs = await conn.fetchall(
            f"SELECT id1, atype, id2, src_version FROM {{inverse_tombstones}} "
            f"WHERE {_or('(id1 = %s AND atype = %s AND id2 = %s)', len(inv))}", [x for k in inv.values() for x in k])
        tomb = {(r[0], r[1], r[2]): r[3] for r in tombs}
        to_put, to_remove, new_tombs, drop_tombs = [], [], [], []
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
        heads = await self.lock_lists(conn, touched) if touched else {}
        changes = {lst: ListChange(lst[0], lst[1], v, n, count_before=n) for lst, (v, n) in heads.items()}
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
        await self.put_edges(conn, rows)
        await self.remove_edges(conn, to_remove)
        await self.set_counts(conn, {k: c.count for k, c in changes.items() if c.count != c.count_before})
        if new_tombs:
            await conn.execute(self.backend.upsert("inverse_tombstones", ("id1", "atype", "id2", "src_version"),
                                                   ("id1", "atype", "id2"), {"src_version": "NEW(src_version)"},
                                                   rows=len(new_tombs)),
                               [x for key, v in new_tombs for x in (*key, v)])
        if drop_tombs:
            await conn.execute(f"DELETE FROM {{inverse_tombstones}} WHERE "
                               f"{_or('(id1 = %s AND atype = %s AND id2 = %s)', len(drop_tombs))}",
                               [x for k in drop_tombs for x in k])
        return list(changes.values())
