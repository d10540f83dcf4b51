"""Association writes: assoc_add (and its bulk form assoc_add_many), assoc_append_many (a
list in commit order: streams), assoc_delete, assoc_change_type, and assoc_trim (bounding a list).

An edge of a primary type with an inverse writes, in the same transaction, an outbox row
`tao.sync_inverses`; after the commit the writer syncs the inverses straight away (tao.inverses)
and deletes the row. If that fails, the worker retries it after a short grace period.
A bulk add writes each shard's edges with multi-row statements: one transaction per shard.
"""

from __future__ import annotations

import orjson

from tao.core import encode_data, log, now_ms
from tao.errors import ConflictError, InvalidDataError, ObjectNotFoundError
from tao.inverses import InverseSync
from tao.lists import ListChange
from tao.models import Appended, Assoc

INVERSE_GRACE_MS = 5_000  # the worker leaves a fresh inverse job to its writer for this long
MAX_BULK = 5_000
TRIM_BATCH = 1_000  # edges deleted per transaction by assoc_trim


class AssocWriteVerbs(InverseSync):
    async def assoc_add(self, id1: int, atype: str, id2: int, time: int | None = None, data: dict | None = None,
                        *, jobs: list[tuple[str, dict]] | None = None) -> Assoc:
        """Add the edge, or update its time and data if it exists (upsert). Counts change only on insert."""
        t = self.primary_atype(atype)
        time = now_ms() if time is None else int(time)
        row = (id1, t.code, id2, time, encode_data(data))
        if not t.counted:
            await self._put_uncounted(self.shard(id1), [row], jobs)
            return Assoc(id1, atype, id2, time, 0, data or {})
        changes = await self._add_on_shard(self.shard(id1), [row], jobs)
        edge = changes[0].upserts[0]
        return Assoc(id1, atype, id2, time, edge[2], edge[3])

    async def assoc_add_many(self, edges: list[tuple], *, jobs_by_shard: dict[int, list] | None = None) -> int:
        """Bulk upsert of (id1, atype, id2[, time[, data]]) edges: one transaction and a few
        multi-row statements per shard of id1, shards in parallel. Returns how many edges were
        new. Used by feed fan-out and batch loads; each shard's part commits on its own."""
        if len(edges) > MAX_BULK:
            raise InvalidDataError(f"{len(edges)} edges in one call; the limit is {MAX_BULK}")
        rows: dict[tuple, tuple] = {}
        ts = now_ms()
        for e in edges:
            id1, atype, id2 = e[0], e[1], e[2]
            t = self.primary_atype(atype)
            if t.unique:
                raise InvalidDataError(f"{atype} is unique per id1: add its edges one by one")
            time = int(e[3]) if len(e) > 3 and e[3] is not None else ts
            rows[(id1, t.code, id2)] = (id1, t.code, id2, time, encode_data(e[4] if len(e) > 4 else None))
        groups = self.by_shard(rows.values(), lambda r: r[0])

        async def one(shard: int, group: list) -> dict:
            jobs = (jobs_by_shard or {}).get(shard)
            uncounted = [r for r in group if not self.registry.atype_by_code(r[1]).counted]
            counted = [r for r in group if self.registry.atype_by_code(r[1]).counted]
            if uncounted:
                await self._put_uncounted(shard, uncounted, None if counted else jobs)
            if not counted:
                return {shard: len(uncounted)}
            changes = await self._add_on_shard(shard, counted, jobs)
            return {shard: len(uncounted) + sum(c.count for c in changes) - sum(c.count_before for c in changes)}
        inserted = await self.per_shard(groups, one)
        return sum(inserted.values())

    async def assoc_append_many(self, edges: list[tuple[int, str, int, dict | None]]) -> list[Appended]:
        """Append edges `(id1, atype, id2, data)` at the head of their counted lists, in commit order.

        Each new edge's time is `max(now, the list's newest time + 1)`, chosen while the list's
        count row is locked, so within a list times are unique and strictly increase in the
        order the appends commit: a reader that has seen every edge up to time t never later
        finds a new one at or below t. That makes an edge's time a gap-free resume cursor (the
        real-time streams' use). An edge that exists already is left as it is, so a retried
        append changes nothing (`Appended.new` False). One transaction per shard of id1."""
        rows = []
        for id1, atype, id2, data in edges:
            t = self.primary_atype(atype)
            if not t.counted or t.inverse is not None or t.unique:
                raise InvalidDataError(f"{atype}: assoc_append_many needs a counted type without inverse, not unique")
            self.shard(id2)
            rows.append((id1, t.code, id2, encode_data(data)))
        out: dict[tuple[int, int, int], Appended] = {}

        async def one(shard: int, group: list[tuple]) -> dict:
            changes, appended = await self.write(shard, lambda conn: self._append_on_shard(conn, group))
            await self.install_changes(shard, changes)
            return appended
        out = await self.per_shard(self.by_shard(rows, lambda r: r[0]), one)
        return [out[(r[0], r[1], r[2])] for r in rows]

    async def _append_on_shard(self, conn, rows: list[tuple]) -> tuple[list[ListChange], dict]:
        # The count rows' lock serializes every writer of these lists, and it is taken before
        # the transaction's first plain read (which fixes its snapshot), so the reads below see
        # every earlier append. No locking reads: on InnoDB they would take gap locks on the
        # index next to this list, blocking other users' lists for nothing.
        heads = await self.lock_lists(conn, [(r[0], r[1]) for r in rows])
        existing = await self.read_edges(conn, [(r[0], r[1], r[2]) for r in rows])
        newest: dict[tuple[int, int], int] = {}
        for key in heads:
            got = await conn.fetchall("SELECT time FROM {assocs} WHERE id1 = %s AND atype = %s "
                                      "ORDER BY time DESC LIMIT 1", key)
            newest[key] = got[0][0] if got else 0
        changes = {k: ListChange(k[0], k[1], v, n, count_before=n) for k, (v, n) in heads.items()}
        put, appended = [], {}
        ts = now_ms()
        for id1, code, id2, text in rows:
            name = self.registry.atype_by_code(code).name
            key = (id1, code, id2)
            if key in existing:
                time, version, old, _ = existing[key]
                data = orjson.loads(old) if isinstance(old, (str, bytes)) else old
                if data == orjson.loads(text):  # a retry of this append: nothing to do
                    appended[key] = Appended(Assoc(id1, name, id2, time, version, data), None, False)
                    continue
                # Another event drew the same id (two processes, one millisecond, one sequence
                # number): keep both, this one under a fresh id.
                id2 = self.ids.next_id(self.shard(id2))
            c, prev = changes[(id1, code)], newest[(id1, code)]
            time = max(ts, prev + 1)
            newest[(id1, code)] = time
            put.append((id1, code, id2, time, c.version, text, None))
            c.upserts.append([id2, time, c.version, orjson.loads(text)])
            c.count += 1
            appended[key] = Appended(Assoc(id1, name, id2, time, c.version, orjson.loads(text)), prev, True)
        await self.put_edges(conn, put)
        await self.set_counts(conn, {k: c.count for k, c in changes.items() if c.count != c.count_before})
        return list(changes.values()), appended

    async def _put_uncounted(self, shard: int, rows: list[tuple], jobs) -> None:
        """Upsert edges of uncounted types: one statement, no list lock, no count, version 0."""
        for _, _, id2, _, _ in rows:
            self.shard(id2)

        async def body(conn):
            await self.put_edges(conn, [(id1, code, id2, time, 0, text, None) for id1, code, id2, time, text in rows])
            await self.outbox.add_jobs(conn, jobs)
        await self.write(shard, body)
        self.outbox.nudge(shard)

    async def assoc_add_to_objects(self, id1s: list[int], atype: str, id2: int, time: int | None = None,
                                   data: dict | None = None, *, active_field: str | None = None,
                                   active_since: int | None = None) -> None:
        """Add the edge (id1, atype, id2) from each of `id1s` that is an existing object — and,
        with `active_field`, whose `data[active_field]` (its creation time where unset) is at
        least `active_since` — in one INSERT ... SELECT per shard of id1, shards in parallel.
        Edges that already exist are left as they are (a re-run changes nothing).

        Fan-out's write (feed posts to active followers): the filter runs in the database, so
        the caller never loads the objects. Only for uncounted types (they need no list lock)."""
        t = self.primary_atype(atype)
        if t.counted:
            raise InvalidDataError(f"{atype} keeps counts: use assoc_add_many")
        if len(id1s) > MAX_BULK:
            raise InvalidDataError(f"{len(id1s)} edges in one call; the limit is {MAX_BULK}")
        if (active_field is None) != (active_since is None):
            raise InvalidDataError("give both active_field and active_since, or neither")
        if active_field is not None and not active_field.isidentifier():
            raise InvalidDataError(f"active_field must be a plain field name, got {active_field!r}")
        self.shard(id2)
        time = now_ms() if time is None else int(time)
        text = encode_data(data)
        where = ""
        tail: list = []
        if active_field is not None:
            where = f" AND COALESCE({self.backend.json_int('data', active_field)}, created) >= %s"
            tail = [int(active_since)]

        async def one(shard: int, group: list[int]) -> dict:
            ids = list(dict.fromkeys(group))
            sql = (f"INSERT INTO {{assocs}} (id1, atype, id2, time, version, data, src_version) "
                   f"SELECT id, %s, %s, %s, 0, %s, NULL FROM {{objects}} "
                   f"WHERE id IN ({', '.join(['%s'] * len(ids))}){where}"
                   f"{self.backend.keep_existing(('id1', 'atype', 'id2'))}")
            await self.write(shard, lambda conn: conn.execute(sql, [t.code, id2, time, text, *ids, *tail]))
            return {}
        await self.per_shard(self.by_shard(id1s, lambda i: i), one)

    async def _add_on_shard(self, shard: int, rows: list[tuple], jobs) -> list[ListChange]:
        for _, _, id2, _, _ in rows:
            self.shard(id2)

        async def body(conn):
            heads = await self.lock_lists(conn, [(r[0], r[1]) for r in rows])
            existing = await self.read_edges(conn, [(r[0], r[1], r[2]) for r in rows])
            changes: dict[tuple, ListChange] = {}
            for (id1, code), (version, count) in heads.items():
                changes[(id1, code)] = ListChange(id1, code, version, count, count_before=count)
            put = []
            for id1, code, id2, time, text in rows:
                c = changes[(id1, code)]
                put.append((id1, code, id2, time, c.version, text, None))
                c.upserts.append([id2, time, c.version, orjson.loads(text)])
                if (id1, code, id2) not in existing:
                    c.count += 1
            for c in changes.values():
                if self.registry.atype_by_code(c.atype).unique and c.count > 1:
                    raise ConflictError(f"{self.registry.atype_by_code(c.atype).name} is unique per id1 and "
                                        f"{c.id1} already has one")
            await self.put_edges(conn, put)
            await self.set_counts(conn, {k: c.count for k, c in changes.items() if c.count != c.count_before})
            job_id = await self._inverse_job(conn, [(r[0], r[1], r[2]) for r in rows])
            await self.outbox.add_jobs(conn, jobs)
            return list(changes.values()), job_id
        changes, job_id = await self.write(shard, body)
        await self._after_write(shard, changes, job_id, [(r[0], r[1], r[2]) for r in rows])
        return changes

    async def assoc_delete(self, id1: int, atype: str, id2: int, *, jobs: list[tuple[str, dict]] | None = None) -> bool:
        """Remove the edge; returns whether it existed. Caller jobs commit only if it did."""
        t = self.primary_atype(atype)
        shard = self.shard(id1)
        self.shard(id2)
        if not t.counted:
            return await self._delete_uncounted(shard, (id1, t.code, id2), jobs)

        async def body(conn):
            # A plain read first, so deleting a missing edge bumps nothing; then the list lock
            # (always taken before edge locks, as every writer does) and the authoritative read.
            if not await self.read_edges(conn, [(id1, t.code, id2)]):
                return None, None
            (version, count), = (await self.lock_lists(conn, [(id1, t.code)])).values()
            if not await self.read_edges(conn, [(id1, t.code, id2)], lock=True):
                return ListChange(id1, t.code, version, count), None  # a concurrent delete won
            await self.remove_edges(conn, [(id1, t.code, id2)])
            await self.set_counts(conn, {(id1, t.code): count - 1})
            job_id = await self._inverse_job(conn, [(id1, t.code, id2)])
            await self.outbox.add_jobs(conn, jobs)
            return ListChange(id1, t.code, version, count - 1, removed=[id2]), job_id
        change, job_id = await self.write(shard, body)
        if change is None:
            return False
        await self._after_write(shard, [change], job_id, [(id1, t.code, id2)])
        return bool(change.removed)

    async def _delete_uncounted(self, shard: int, key: tuple[int, int, int], jobs) -> bool:
        async def body(conn):
            removed = await conn.execute("DELETE FROM {assocs} WHERE id1 = %s AND atype = %s AND id2 = %s", key)
            if removed:
                await self.outbox.add_jobs(conn, jobs)
            return bool(removed)
        removed = await self.write(shard, body)
        self.outbox.nudge(shard)
        return removed

    async def assoc_trim(self, id1: int, atype: str, *, keep: int, before: int | None = None) -> int:
        """Delete the edges of an uncached list (FEED, STREAM_EVENT) past its newest `keep`, and
        any older than `before` (ms): how lists that only grow are kept bounded. Deletes in
        batches of `TRIM_BATCH`, each batch its own transaction; a counted list's count goes
        down in the same transaction, under its lock. Cached types are refused: their cached
        lists and edges need the full write path. Returns how many edges went."""
        t = self.primary_atype(atype)
        if t.cached or t.inverse is not None:
            raise InvalidDataError(f"{atype} is cached or has an inverse: delete its edges with assoc_delete")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise InvalidDataError(f"keep must be a non-negative integer, got {keep!r}")
        shard = self.shard(id1)
        conds, params = [], []
        async with self.read(shard) as conn:  # the first edge past `keep`, newest first
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

        async def batch(conn) -> int:
            heads = await self.lock_lists(conn, [(id1, t.code)]) if t.counted else {}
            doomed = [r[0] for r in await conn.fetchall(f"SELECT id2 FROM {{assocs}} WHERE {where} LIMIT {TRIM_BATCH}",
                                                        [id1, t.code, *params])]
            if doomed:
                await conn.execute(f"DELETE FROM {{assocs}} WHERE id1 = %s AND atype = %s "
                                   f"AND id2 IN ({', '.join(['%s'] * len(doomed))})", [id1, t.code, *doomed])
                if t.counted:
                    await self.set_counts(conn, {(id1, t.code): heads[(id1, t.code)][1] - len(doomed)})
            return len(doomed)
        removed = 0
        while True:
            n = await self.write(shard, batch)
            removed += n
            if n < TRIM_BATCH:
                return removed

    async def assoc_change_type(self, id1: int, atype: str, id2: int, new_atype: str,
                                *, jobs: list[tuple[str, dict]] | None = None) -> Assoc:
        """Move the edge to another list of id1 (e.g. FOLLOW_REQUESTED -> FOLLOWS) in one transaction,
        keeping its time and data; both counts change together."""
        old_t, new_t = self.primary_atype(atype), self.primary_atype(new_atype)
        if not (old_t.counted and new_t.counted):
            raise InvalidDataError(f"assoc_change_type moves edges between counted lists; {atype} or {new_atype} is not")
        shard = self.shard(id1)
        self.shard(id2)
        old_k, new_k = (id1, old_t.code, id2), (id1, new_t.code, id2)

        async def body(conn):
            heads = await self.lock_lists(conn, [(id1, old_t.code), (id1, new_t.code)])
            found = await self.read_edges(conn, [old_k], lock=True)
            if not found:  # raising rolls the version bumps back
                raise ObjectNotFoundError(f"no {atype} edge from {id1} to {id2}")
            time, _, text, _ = found[old_k]
            v_old, n_old = heads[(id1, old_t.code)]
            v_new, n_new = heads[(id1, new_t.code)]
            existed = await self.read_edges(conn, [new_k])
            await self.remove_edges(conn, [old_k])
            await self.put_edges(conn, [(id1, new_t.code, id2, time, v_new, text, None)])
            n_new += 0 if existed else 1
            await self.set_counts(conn, {(id1, old_t.code): n_old - 1, (id1, new_t.code): n_new})
            job_id = await self._inverse_job(conn, [old_k, new_k])
            await self.outbox.add_jobs(conn, jobs)
            return [ListChange(id1, old_t.code, v_old, n_old - 1, removed=[id2]),
                    ListChange(id1, new_t.code, v_new, n_new, upserts=[[id2, time, v_new, orjson.loads(text)]])], job_id
        changes, job_id = await self.write(shard, body)
        await self._after_write(shard, changes, job_id, [old_k, new_k])
        edge = changes[1].upserts[0]
        return Assoc(id1, new_atype, id2, edge[1], edge[2], edge[3])

    # ---- after the commit ---------------------------------------------------------------------

    async def _inverse_job(self, conn, keys: list[tuple[int, int, int]]) -> int | None:
        with_inverse = [[id1, self.registry.atype_by_code(code).name, id2] for id1, code, id2 in keys
                        if self.registry.atype_by_code(code).inverse is not None]
        if not with_inverse:
            return None
        return await self.outbox.add(conn, "tao.sync_inverses", {"edges": with_inverse}, delay_ms=INVERSE_GRACE_MS)

    async def _after_write(self, shard: int, changes: list[ListChange], job_id: int | None,
                           keys: list[tuple[int, int, int]]) -> None:
        await self.install_changes(shard, changes)
        if job_id is not None:
            edges = [(id1, self.registry.atype_by_code(code).name, id2) for id1, code, id2 in keys
                     if self.registry.atype_by_code(code).inverse is not None]
            try:
                await self.sync_inverses(edges)
            except Exception as exc:  # the outbox row retries it; the write itself is acknowledged
                self._stats["inverse_sync_deferred"] += 1
                log.info("inverses of %d edges on shard %s deferred to the outbox: %s", len(edges), shard, exc)
            else:
                await self.outbox.delete(shard, job_id)
        self.outbox.nudge(shard)
