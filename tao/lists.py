"""Shared machinery for every write to association lists: locking and bumping list versions,
reading edges, writing them in multi-row statements, and updating the cache after the commit.

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

from dataclasses import dataclass, field
from typing import Any

from tao.cache.base import Install
from tao.core import TaoCore

ListId = tuple[int, int]  # (id1, atype code)


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


def sort_key(edge: list) -> tuple[int, int]:
    return (-edge[1], -edge[0])


def _or(clause: str, n: int) -> str:
    return " OR ".join([clause] * n)


def _row_in(cols: tuple[str, ...], n: int) -> str:
    row = "(" + ", ".join(["%s"] * len(cols)) + ")"
    return f"({', '.join(cols)}) IN ({', '.join([row] * n)})"


class ListWrites(TaoCore):
    @property
    def _row_in(self) -> bool:
        # MariaDB plans a long OR of per-key conditions slowly (measured: 965 ms for 600 keys,
        # 74 ms as a row-constructor IN; bench/feed_bench.py, docs/BENCHMARKS.md "Feed"); SQLite
        # scans the table for a row-value IN list, so it keeps the OR form.
        return self.backend.name == "mysql"

    def _keys_in(self, cols: tuple[str, ...], n: int) -> str:
        """A WHERE clause matching n keys over `cols` (params: each key's values in order)."""
        if self._row_in and n > 1:
            return _row_in(cols, n)
        return _or("(" + " AND ".join(f"{c} = %s" for c in cols) + ")", n)

    async def lock_lists(self, conn, lists: list[ListId], *, bump: bool = True) -> dict[ListId, list[int]]:
        """Lock the lists' count rows (creating them) in sorted order, bumping their versions when
        `bump`; return {list: [version, count]}."""
        lists = sorted(set(lists))
        if not lists:
            return {}
        update = {"version": "version + 1"} if bump else {"version": "version"}
        params = [x for id1, code in lists for x in (id1, code, 0, 1 if bump else 0)]
        await conn.execute(self.backend.upsert("assoc_counts", ("id1", "atype", "count", "version"),
                                               ("id1", "atype"), update, rows=len(lists)), params)
        return await self.read_heads(conn, lists)

    async def read_heads(self, conn, lists: list[ListId]) -> dict[ListId, list[int]]:
        rows = await conn.fetchall(f"SELECT id1, atype, version, count FROM {{assoc_counts}} "
                                   f"WHERE {self._keys_in(('id1', 'atype'), len(lists))}",
                                   [x for lst in lists for x in lst])
        return {(r[0], r[1]): [r[2], r[3]] for r in rows}

    async def read_edges(self, conn, keys: list[tuple[int, int, int]], *, lock: bool = False) -> dict[tuple, tuple]:
        """{(id1, atype, id2): (time, version, data, src_version)} for the keys that exist."""
        if not keys:
            return {}
        by_list: dict[ListId, list[int]] = {}
        for id1, code, id2 in keys:
            by_list.setdefault((id1, code), []).append(id2)
        params: list[Any] = []
        if self._row_in and len(by_list) > 1 and len(keys) == len(by_list):
            # One edge in each of many lists (a fan-out batch): a row-constructor IN.
            where = self._keys_in(("id1", "atype", "id2"), len(keys))
            params = [x for k in keys for x in k]
        else:
            where = " OR ".join(f"(id1 = %s AND atype = %s AND id2 IN ({','.join(['%s'] * len(v))}))"
                                for v in by_list.values())
            for (id1, code), id2s in by_list.items():
                params += [id1, code, *id2s]
        rows = await conn.fetchall(f"SELECT id1, atype, id2, time, version, data, src_version FROM {{assocs}} "
                                   f"WHERE {where}{self.backend.for_update if lock else ''}", params)
        return {(r[0], r[1], r[2]): r[3:] for r in rows}

    async def put_edges(self, conn, rows: list[tuple]) -> None:
        """Upsert edges: rows of (id1, atype, id2, time, version, data_text, src_version)."""
        if rows:
            await conn.execute(self.backend.upsert(
                "assocs", ("id1", "atype", "id2", "time", "version", "data", "src_version"), ("id1", "atype", "id2"),
                {c: f"NEW({c})" for c in ("time", "version", "data", "src_version")}, rows=len(rows)),
                [x for r in rows for x in r])

    async def remove_edges(self, conn, keys: list[tuple[int, int, int]]) -> None:
        if keys:
            await conn.execute(f"DELETE FROM {{assocs}} WHERE {_or('(id1 = %s AND atype = %s AND id2 = %s)', len(keys))}",
                               [x for k in keys for x in k])

    async def set_counts(self, conn, counts: dict[ListId, int]) -> None:
        if counts:
            items = sorted(counts.items())
            await conn.execute(self.backend.upsert("assoc_counts", ("id1", "atype", "count", "version"),
                                                   ("id1", "atype"), {"count": "NEW(count)"}, rows=len(items)),
                               [x for (id1, code), n in items for x in (id1, code, n, 0)])

    # ---- after the commit ---------------------------------------------------------------------

    def count_install(self, id1: int, code: int, version: int, count: int) -> Install:
        """The list's count key at `version`: exact whatever was cached, so it needs no `old`."""
        return Install(self.count_key(id1, code), version, lambda old: {"n": count})

    async def install_changes(self, shard: int, changes: list[ListChange]) -> None:
        installs, refill = [], []
        for c in changes:
            if not self.registry.atype_by_code(c.atype).cached:
                continue
            installs.append(Install(self.list_key(c.id1, c.atype), c.version,
                                    lambda old, c=c: self.apply_to_cached_list(old, c)))
            # The count alone, exact at this version whatever was cached: count reads (ranking
            # reads hundreds) must not decode a popular list's window of newest edges.
            installs.append(self.count_install(c.id1, c.atype, c.version, c.count))
            for e in c.upserts:
                installs.append(Install(self.edge_key(c.id1, c.atype, e[0]), c.version,
                                        lambda old, a=e[1:]: {"a": a}))
            for id2 in c.removed:
                installs.append(Install(self.edge_key(c.id1, c.atype, id2), c.version, lambda old: {"a": None}))
            if len(c.upserts) + len(c.removed) <= 20:
                refill += [{"kind": "l", "id1": c.id1, "atype": c.atype, "id2": id2}
                           for id2 in [e[0] for e in c.upserts] + c.removed]
            else:  # big batches: repairing the list is enough; edge keys carry the TTL
                refill.append({"kind": "l", "id1": c.id1, "atype": c.atype})
        await self.cache_install(installs, shard, refill)

    def apply_to_cached_list(self, old: dict | None, c: ListChange) -> dict[str, Any]:
        """Update a cached list in place when it is exactly one version behind; else a tombstone."""
        if old is None or old.get("v") != c.version - 1:
            return {"stale": True}
        touched = {e[0] for e in c.upserts} | set(c.removed)
        edges = [e for e in old["e"] if e[0] not in touched]
        complete = old["c"]
        cutoff = None if complete or not old["e"] else sort_key(old["e"][-1])
        # Insert only edges that fall inside the cached window of newest edges.
        edges += [e for e in c.upserts if cutoff is None or sort_key(e) < cutoff]
        edges.sort(key=sort_key)
        if len(edges) > self.list_limit:
            edges = edges[:self.list_limit]
            complete = False
        return {"n": c.count, "c": complete and len(edges) == c.count, "e": edges}
