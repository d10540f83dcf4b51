"""Lists written in bulk or only appended, and never cached: uncounted lists (FEED: a viewer's
feed, written by fan-out) and append-only streams (STREAM_EVENT, through `append_many`).

- An uncounted type's edge write is one upsert: no list lock, no existence read, no count row,
  version 0 (its lists have no version). Its lists are read only from SQL.
- `add_to_objects` adds one edge from each of many objects, keeping only the objects that pass
  an `ObjectFilter`, evaluated in the database (so the caller never loads them).
- `append_many` appends to counted, uncached lists in commit order: within a list, edge times
  are unique and strictly increase in the order the appends commit.
- `trim` bounds such lists (they only grow otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tao.backends.base import Conn
from tao.errors import InvalidDataError
from tao.lists import EdgeId, ListChange, ListId, ListWrites, Locked
from tao.models import Appended, Assoc, edge_time, encode_data, now_ms
from tao.outbox import Jobs, Outbox
from tao.registry import Registry
from tao.shards import Shards

MAX_BULK = 5_000
TRIM_BATCH = 1_000  # edges deleted per transaction by trim


@dataclass(frozen=True, slots=True)
class ObjectFilter:
    """Keep the objects whose integer `data[field]` is at least `at_least`; an object without the
    field (or with null) counts with its creation time instead (`created`, ms), so a new object
    passes a "recently active" filter. `field` is a plain name (an identifier)."""
    field: str
    at_least: int

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field.isidentifier():
            raise InvalidDataError(f"a filter's field must be a plain field name, got {self.field!r}")
        if isinstance(self.at_least, bool) or not isinstance(self.at_least, int):
            raise InvalidDataError(f"a filter's bound must be an integer, got {self.at_least!r}")


class BulkLists:
    def __init__(self, shards: Shards, lists: ListWrites, outbox: Outbox, registry: Registry) -> None:
        self._shards = shards
        self._lists = lists
        self._outbox = outbox
        self._registry = registry

    async def append_many(self, edges: list[tuple[int, str, int, dict | None]]) -> list[Appended]:
        """Append edges `(id1, atype, id2, data)` at the head of their counted lists, in commit order.

        Each new edge's time is `max(now, the list's newest time + 1)`, chosen while the list's
        count row is locked, so within a list times are unique and strictly increase in the
        order the appends commit: a reader that has seen every edge up to time t never later
        finds a new one at or below t. That makes an edge's time a gap-free resume cursor (the
        real-time streams' use). An edge that exists already is left as it is, so a retried
        append changes nothing (`Appended.new` False). One transaction per shard of id1."""
        rows = self.append_rows(edges)

        async def one(shard: int, group: list[tuple]) -> dict:
            changes, appended = await self._shards.write(shard, lambda conn: self._append_on_shard(conn, group))
            await self._lists.install_changes(shard, changes)
            return appended
        out: dict[EdgeId, Appended] = await self._shards.per_shard(self._shards.by_shard(rows, lambda r: r[0]), one)
        return [out[(r[0], r[1], r[2])] for r in rows]

    def append_rows(self, edges: list[tuple[int, str, int, dict | None]]) -> list[tuple]:
        """Check `(id1, atype, id2, data)` appends; rows `(id1, code, id2, data text)`."""
        rows = []
        for id1, atype, id2, data in edges:
            t = self._registry.primary_atype(atype)
            if not t.counted or t.inverse is not None or t.unique:
                raise InvalidDataError(f"{atype}: assoc_append_many needs a counted type without inverse, not unique")
            self._shards.shard(id2)
            rows.append((id1, t.code, id2, encode_data(data)))
        return rows

    async def _append_on_shard(self, conn: Conn, rows: list[tuple]) -> tuple[list[ListChange], dict]:
        # The count rows' lock serializes every writer of these lists, and it is taken before
        # the transaction's first plain read (which fixes its snapshot), so the reads below see
        # every earlier append. No locking reads: on InnoDB they would take gap locks on the
        # index next to this list, blocking other users' lists for nothing.
        locked = await self._lists.lock_and_read(conn, [(r[0], r[1]) for r in rows],
                                                 [(r[0], r[1], r[2]) for r in rows], newest=True)
        changes = {k: ListChange(k[0], k[1], v, n, count_before=n) for k, (v, n) in locked.heads.items()}
        put, appended = self.plan_appends(rows, locked, changes)
        await self._lists.put_edges(conn, put)
        await self._lists.set_counts(conn, {k: c.count for k, c in changes.items() if c.count != c.count_before})
        return list(changes.values()), appended

    def plan_appends(self, rows: list[tuple], locked: Locked, changes: dict[ListId, ListChange]
                     ) -> tuple[list[tuple], dict[EdgeId, Appended]]:
        """The edge rows that append `rows` to lists this transaction locked and read (`locked`,
        with `newest`), and what each append did; `changes` (per list) are updated."""
        existing, newest = locked.edges, locked.newest
        put: list[tuple] = []
        appended: dict[EdgeId, Appended] = {}
        ts = now_ms()
        for id1, code, id2, text in rows:
            name = self._registry.atype_by_code(code).name
            key = (id1, code, id2)
            if key in existing:
                time, version, old, _ = existing[key]
                data = orjson.loads(old) if isinstance(old, (str, bytes)) else old
                if data == orjson.loads(text):  # a retry of this append: nothing to do
                    appended[key] = Appended(Assoc(id1, name, id2, time, version, data), None, False)
                    continue
                # Another event under the same id: since ids carry their process's slot
                # (tao/ids.py) only an id made before slots, or one a caller reused, can meet
                # here. Keep both, this one under a fresh id.
                id2 = self._shards.ids.next_id(self._shards.shard(id2))
            c, prev = changes[(id1, code)], newest[(id1, code)]
            time = max(ts, prev + 1)
            newest[(id1, code)] = time
            put.append((id1, code, id2, time, c.version, text, None))
            c.upserts.append([id2, time, c.version, orjson.loads(text)])
            c.count += 1
            appended[key] = Appended(Assoc(id1, name, id2, time, c.version, orjson.loads(text)), prev, True)
        return put, appended

    async def put_uncounted(self, shard: int, rows: list[tuple], jobs: Jobs) -> None:
        """Upsert edges of uncounted types: one statement, no list lock, no count, version 0."""
        for _, _, id2, _, _ in rows:
            self._shards.shard(id2)

        async def body(conn: Conn) -> Any:
            await self._lists.put_edges(conn, [(id1, code, id2, time, 0, text, None)
                                               for id1, code, id2, time, text in rows])
            await self._outbox.add_jobs(conn, jobs)
        await self._shards.write(shard, body)
        self._outbox.nudge(shard)

    async def add_to_objects(self, id1s: list[int], atype: str, id2: int, time: int | None = None,
                             data: dict | None = None, *, where: ObjectFilter | None = None) -> None:
        """Add the edge (id1, atype, id2) from each of `id1s` that is an existing object (and
        passes `where`), in one INSERT ... SELECT per shard of id1, shards in parallel. Edges
        that already exist are left as they are (a re-run changes nothing). Only for uncounted
        types (they need no list lock)."""
        t = self._registry.primary_atype(atype)
        if t.counted:
            raise InvalidDataError(f"{atype} keeps counts: use assoc_add_many")
        if len(id1s) > MAX_BULK:
            raise InvalidDataError(f"{len(id1s)} edges in one call; the limit is {MAX_BULK}")
        if where is not None and not isinstance(where, ObjectFilter):
            raise InvalidDataError(f"where must be an ObjectFilter, got {where!r}")
        self._shards.shard(id2)
        time = edge_time(time)
        text = encode_data(data)
        backend = self._shards.backend
        cond, tail = "", []
        if where is not None:
            cond = f" AND COALESCE({backend.json_int('data', where.field)}, created) >= %s"
            tail = [where.at_least]

        async def one(shard: int, group: list[int]) -> dict:
            ids = list(dict.fromkeys(group))
            sql = (f"INSERT INTO {{assocs}} (id1, atype, id2, time, version, data, src_version) "
                   f"SELECT id, %s, %s, %s, 0, %s, NULL FROM {{objects}} "
                   f"WHERE id IN ({', '.join(['%s'] * len(ids))}){cond}"
                   f"{backend.keep_existing(('id1', 'atype', 'id2'))}")
            await self._shards.write(shard, lambda conn: conn.execute(sql, [t.code, id2, time, text, *ids, *tail]))
            return {}
        await self._shards.per_shard(self._shards.by_shard(id1s, lambda i: i), one)

    async def delete_uncounted(self, shard: int, key: EdgeId, jobs: Jobs) -> bool:
        async def body(conn: Conn) -> Any:
            removed = await conn.execute("DELETE FROM {assocs} WHERE id1 = %s AND atype = %s AND id2 = %s", key)
            if removed:
                await self._outbox.add_jobs(conn, jobs)
            return bool(removed)
        removed = await self._shards.write(shard, body)
        self._outbox.nudge(shard)
        return removed

    async def trim(self, id1: int, atype: str, *, keep: int, before: int | None = None) -> int:
        """Delete the edges of an uncached list (FEED, STREAM_EVENT) past its newest `keep`, and
        any older than `before` (ms): how lists that only grow are kept bounded. Deletes in
        batches of `TRIM_BATCH`, each batch its own transaction; a counted list's count goes
        down in the same transaction, under its lock. Cached types are refused: their cached
        lists and edges need the full write path. Returns how many edges went."""
        t = self._registry.primary_atype(atype)
        if t.cached or t.inverse is not None:
            raise InvalidDataError(f"{atype} is cached or has an inverse: delete its edges with assoc_delete")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise InvalidDataError(f"keep must be a non-negative integer, got {keep!r}")
        shard = self._shards.shard(id1)
        conds, params = [], []
        async with self._shards.read(shard) as conn:  # the first edge past `keep`, newest first
            rows = await conn.fetchall("SELECT time, id2 FROM {assocs} WHERE id1 = %s AND atype = %s "
                                       "ORDER BY time DESC, id2 DESC LIMIT 1 OFFSET %s", (id1, t.code, keep))
        if rows:
            conds.append("(time < %s OR (time = %s AND id2 <= %s))")
            params += [rows[0][0], rows[0][0], rows[0][1]]
        if before is not None:
            conds.append("time < %s")
            params.append(int(before))
        if not conds:
            return 0
        where = f"id1 = %s AND atype = %s AND ({' OR '.join(conds)})"

        async def batch(conn: Conn) -> int:
            heads = await self._lists.lock_lists(conn, [(id1, t.code)]) if t.counted else {}
            doomed = [r[0] for r in await conn.fetchall(f"SELECT id2 FROM {{assocs}} WHERE {where} LIMIT {TRIM_BATCH}",
                                                        [id1, t.code, *params])]
            if doomed:
                await conn.execute(f"DELETE FROM {{assocs}} WHERE id1 = %s AND atype = %s "
                                   f"AND id2 IN ({', '.join(['%s'] * len(doomed))})", [id1, t.code, *doomed])
                if t.counted:
                    await self._lists.set_counts(conn, {(id1, t.code): heads[(id1, t.code)][1] - len(doomed)})
            return len(doomed)
        removed = 0
        while True:
            n = await self._shards.write(shard, batch)
            removed += n
            if n < TRIM_BATCH:
                return removed
