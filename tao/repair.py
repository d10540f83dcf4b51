"""Verify and repair one shard: exact counts and mirrored inverse edges.

`verify_shard` compares every list's stored count with its edges, every primary edge with its
inverse on id2's shard (present, with the same time and data), and every inverse edge with its
primary on id1's shard. `fix=True` rewrites wrong counts (bumping the list version, so cached
lists are superseded) and re-syncs mismatched inverses through the store's own order-independent
inverse sync (`tao.inverses`). Safe to run while the shard serves traffic: fixes only ever install the state
read from the primary edge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tao.backends.base import Conn
from tao.cache_io import install_value
from tao.lists import edges_where
from tao.store import Tao

BATCH = 1000


@dataclass
class ShardReport:
    shard: int
    lists: int = 0
    edges: int = 0
    bad_counts: list[tuple[int, str, int, int]] = field(default_factory=list)   # id1, atype, stored, actual
    # primary edges whose inverse is absent or differs
    missing_inverses: list[tuple[int, str, int]] = field(default_factory=list)
    orphan_inverses: list[tuple[int, str, int]] = field(default_factory=list)   # derived edges without primary
    fixed: int = 0

    @property
    def ok(self) -> bool:
        return not (self.bad_counts or self.missing_inverses or self.orphan_inverses)


async def verify_shard(tao: Tao, shard: int, *, fix: bool = False) -> ShardReport:
    report = ShardReport(shard)
    # Uncounted types (FEED) have edges and no count rows by design.
    uncounted = ",".join(str(t.code) for t in tao.registry.atypes.values() if not t.counted) or "-1"
    async with tao._shards.read(shard) as conn:
        rows = await conn.fetchall(
            "SELECT c.id1, c.atype, c.count, COUNT(a.id2) FROM {assoc_counts} c LEFT JOIN {assocs} a "
            "ON a.id1 = c.id1 AND a.atype = c.atype GROUP BY c.id1, c.atype, c.count")
        orphans = await conn.fetchall(
            "SELECT a.id1, a.atype, COUNT(*) FROM {assocs} a LEFT JOIN {assoc_counts} c "
            f"ON a.id1 = c.id1 AND a.atype = c.atype WHERE c.id1 IS NULL AND a.atype NOT IN ({uncounted}) "
            "GROUP BY a.id1, a.atype")
    report.lists = len(rows)
    for id1, code, stored, actual in list(rows) + [(r[0], r[1], 0, r[2]) for r in orphans]:
        if stored != actual:
            report.bad_counts.append((id1, tao.registry.atype_by_code(code).name, stored, actual))
    await _check_edges(tao, shard, report)
    if fix:
        await _fix(tao, shard, report)
    return report


async def _check_edges(tao: Tao, shard: int, report: ShardReport) -> None:
    with_inverse = [t for t in tao.registry.atypes.values() if t.inverse is not None]
    codes = ",".join(str(t.code) for t in with_inverse)
    after = (-1, -1, -1)
    while True:
        async with tao._shards.read(shard) as conn:
            rows = await conn.fetchall(
                f"SELECT id1, atype, id2, time, data FROM {{assocs}} WHERE atype IN ({codes}) AND "
                "(id1 > %s OR (id1 = %s AND (atype > %s OR (atype = %s AND id2 > %s)))) "
                "ORDER BY id1, atype, id2 LIMIT %s", (after[0], after[0], after[1], after[1], after[2], BATCH))
        if not rows:
            return
        after = rows[-1][:3]
        report.edges += len(rows)
        mirrors = []
        for id1, code, id2, time, data in rows:
            t = tao.registry.atype_by_code(code)
            assert t.inverse is not None  # only types with an inverse were selected
            mirrors.append(((id1, t.name, id2), (id2, t.inverse, id1), (time, json.loads(data))))
        found = await _edges_exist(tao, [m for _, m, _ in mirrors])
        for edge, mirror, state in mirrors:
            primary = tao.registry.atype(edge[1]).derived_from is None
            if found[mirror] is None:
                (report.missing_inverses if primary else report.orphan_inverses).append(edge)
            elif primary and found[mirror] != state:
                # An inverse with another time or data is not a mirror: re-sync it from the primary.
                report.missing_inverses.append(edge)


async def _edges_exist(tao: Tao, edges: list[tuple[int, str, int]]) -> dict[tuple[int, str, int], tuple | None]:
    """{edge: (time, data) or None if absent}, straight from SQL (the cache is what a repair must
    not trust)."""
    async def one(shard: int, group: list) -> dict:
        keys = [(id1, tao.registry.atype(a).code, id2) for id1, a, id2 in group]
        where, params = edges_where(tao._shards.backend, keys)
        async with tao._shards.read(shard) as conn:
            rows = await conn.fetchall(f"SELECT id1, atype, id2, time, data FROM {{assocs}} WHERE {where}", params)
        present = {(r[0], tao.registry.atype_by_code(r[1]).name, r[2]): (r[3], json.loads(r[4])) for r in rows}
        return {e: present.get(e) for e in group}
    return await tao._shards.per_shard(tao._shards.by_shard(edges, lambda e: e[0]), one)


async def _fix(tao: Tao, shard: int, report: ShardReport) -> None:
    for id1, atype, _, _ in report.bad_counts:
        code = tao.registry.atype(atype).code

        async def body(conn: Conn, id1: int = id1, code: int = code) -> int:
            await conn.execute(tao._shards.backend.upsert("assoc_counts", ("id1", "atype", "count", "version"),
                                                  ("id1", "atype"), {"version": "version + 1"}), (id1, code, 0, 1))
            n = (await conn.fetchall("SELECT COUNT(*) FROM {assocs} WHERE id1 = %s AND atype = %s", (id1, code)))[0][0]
            await conn.execute("UPDATE {assoc_counts} SET count = %s WHERE id1 = %s AND atype = %s", (n, id1, code))
            return (await conn.fetchall("SELECT version FROM {assoc_counts} WHERE id1 = %s AND atype = %s",
                                        (id1, code)))[0][0]
        version = await tao._shards.write(shard, body)
        cache = tao._cache
        await cache.install([install_value(cache.list_key(id1, code), version, {"stale": True}),
                             install_value(cache.count_key(id1, code), version, {"stale": True})],
                            shard, [{"kind": "l", "id1": id1, "atype": code}])
        report.fixed += 1
    for id1, atype, id2 in report.missing_inverses:
        await tao._inverses.sync([(id1, atype, id2)], force=True)
        report.fixed += 1
    for id1, atype, id2 in report.orphan_inverses:
        primary = tao.registry.atype(atype).derived_from
        assert primary is not None  # an orphan inverse is of a derived type
        await tao._inverses.sync([(id2, primary, id1)], force=True)
        report.fixed += 1
