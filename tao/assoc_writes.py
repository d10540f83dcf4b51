"""Writes to counted lists: assoc_add (and its bulk form assoc_add_many), assoc_delete and
assoc_change_type. Uncounted types are handed to `tao.bulk_lists`.

Each write locks its lists, writes edges and counts, and commits in one transaction per shard of
id1 (`tao.lists`). An edge of a primary type with an inverse writes, in the same transaction, an
outbox row `tao.sync_inverses`; after the commit the writer syncs the inverses straight away
(`tao.inverses`) and deletes the row. If that fails, the worker retries it after a short grace
period.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from tao.backends.base import Conn
from tao.bulk_lists import MAX_BULK, BulkLists
from tao.errors import ConflictError, InvalidDataError, ObjectNotFoundError
from tao.inverses import Inverses
from tao.lists import EdgeId, ListChange, ListWrites, or_of
from tao.models import MAX_CHECKED, Appended, Assoc, ListCheck, PlannedObj, edge_time, encode_data, now_ms
from tao.objects import Objects
from tao.outbox import Jobs, Outbox
from tao.registry import Registry
from tao.shards import Shards

log = logging.getLogger("tao")

INVERSE_GRACE_MS = 5_000  # the worker leaves a fresh inverse job to its writer for this long


class AssocWrites:
    def __init__(self, shards: Shards, lists: ListWrites, bulk: BulkLists, inverses: Inverses,
                 outbox: Outbox, registry: Registry, objects: Objects) -> None:
        self._objects = objects
        self._shards = shards
        self._lists = lists
        self._bulk = bulk
        self.inverses = inverses
        self._outbox = outbox
        self._registry = registry

    async def assoc_add(self, id1: int, atype: str, id2: int, time: int | None = None, data: dict | None = None,
                        *, jobs: Jobs = None) -> Assoc:
        """Add the edge, or update its time and data if it exists (upsert). Counts change only on insert."""
        t = self._registry.primary_atype(atype)
        time = edge_time(time)
        row = (id1, t.code, id2, time, encode_data(data))
        if not t.counted:
            await self._bulk.put_uncounted(self._shards.shard(id1), [row], jobs)
            return Assoc(id1, atype, id2, time, 0, data or {})
        changes, _ = await self._add_on_shard(self._shards.shard(id1), [row], jobs)
        edge = changes[0].upserts[0]
        return Assoc(id1, atype, id2, time, edge[2], edge[3])

    async def assoc_add_many(self, edges: list[tuple], *, jobs_by_shard: dict[int, list] | None = None) -> int:
        """Bulk upsert of (id1, atype, id2[, time[, data]]) edges: one transaction and a few
        multi-row statements per shard of id1, shards in parallel. Returns how many edges were
        new. Used by feed fan-out and batch loads; each shard's part commits on its own."""
        return (await self.add_and_append(edges, [], jobs_by_shard=jobs_by_shard))[0]

    async def add_and_append(self, edges: list[tuple], appends: list[tuple[int, str, int, dict | None]], *,
                             jobs_by_shard: dict[int, list] | None = None,
                             check: ListCheck | None = None,
                             create: list[PlannedObj] | None = None) -> tuple[int, list[Appended]]:
        """`assoc_add_many(edges)` and `assoc_append_many(appends)` in one transaction per shard
        of id1 for both, shards in parallel: (edges new, what each append did). `check`: every
        edge and append must be on its list's shard (one transaction), checked in it; `create`:
        planned objects (`Objects.plan`) inserted in that checked transaction."""
        if create and (check is None or any(p.shard != self._shards.shard(check.id1) for p in create)):
            raise InvalidDataError("created objects go in the checked transaction: on its list's shard")
        if len(edges) + len(appends) > MAX_BULK:
            raise InvalidDataError(f"{len(edges) + len(appends)} edges in one call; the limit is {MAX_BULK}")
        append_rows = self._bulk.append_rows(appends)
        appends_by_shard = self._shards.by_shard(append_rows, lambda r: r[0])
        home = None if check is None else self._shards.shard(check.id1)
        if check is not None:
            if not self._registry.primary_atype(check.atype).counted or any(
                    self._shards.shard(e[0]) != home for e in [*edges, *append_rows]):
                raise InvalidDataError("a checked write is one transaction: a counted list, and every edge and "
                                       "append on its shard")
        rows: dict[tuple, tuple] = {}
        ts = now_ms()
        for e in edges:
            if not isinstance(e, (tuple, list)) or not 3 <= len(e) <= 5:
                raise InvalidDataError(f"an edge is (id1, atype, id2[, time[, data]]), got {e!r}")
            id1, atype, id2 = e[0], e[1], e[2]
            t = self._registry.primary_atype(atype)
            if t.unique:
                raise InvalidDataError(f"{atype} is unique per id1: add its edges one by one")
            time = edge_time(e[3]) if len(e) > 3 and e[3] is not None else ts
            rows[(id1, t.code, id2)] = (id1, t.code, id2, time, encode_data(e[4] if len(e) > 4 else None))
        groups = self._shards.by_shard(rows.values(), lambda r: r[0])
        for shard in appends_by_shard:
            groups.setdefault(shard, [])
        if check is not None:
            groups.setdefault(self._shards.shard(check.id1), [])
        appended: dict[EdgeId, Appended] = {}

        async def one(shard: int, group: list) -> dict:
            jobs = (jobs_by_shard or {}).get(shard)
            uncounted = [r for r in group if not self._registry.atype_by_code(r[1]).counted]
            counted = [r for r in group if self._registry.atype_by_code(r[1]).counted]
            mine = appends_by_shard.get(shard, [])
            if uncounted:
                await self._bulk.put_uncounted(shard, uncounted, None if counted or mine else jobs)
            if not counted and not mine and check is None:
                return {shard: len(uncounted)}
            changes, done = await self._add_on_shard(shard, counted, jobs, mine, check,
                                                     create if check is not None and shard == home else None)
            appended.update(done)
            return {shard: len(uncounted) + sum(c.count for c in changes) - sum(c.count_before for c in changes)}
        inserted = await self._shards.per_shard(groups, one)
        return sum(inserted.values()), [appended[(r[0], r[1], r[2])] for r in append_rows]

    async def _add_on_shard(self, shard: int, rows: list[tuple], jobs: Jobs, appends: list[tuple] = (),  # type: ignore[assignment]
                            check: ListCheck | None = None, create: list[PlannedObj] | None = None,
                            ) -> tuple[list[ListChange], dict[EdgeId, Appended]]:
        """Upsert `rows` (all on `shard`) and append `appends` (`BulkLists.append_rows`, on
        `shard`) in one transaction; returns the forward lists' changes and the appends'.
        An inverse that lives on this shard too (a thread's member who created it, a user's own
        object) is written in the same transaction, under its list's lock, at the forward list's
        new version: no outbox job, no second transaction. Inverses on other shards are synced
        after the commit (`tao.inverses`). `check`: its list is locked and read whole in the
        same statements, and `check.check` runs on it before anything is written (the edges it
        names are left out of the write)."""
        keys = [(r[0], r[1], r[2]) for r in rows]
        local: dict[EdgeId, EdgeId] = {}  # forward key -> its inverse's key, on this shard
        for id1, code, id2 in keys:
            inverse = self._registry.atype_by_code(code).inverse_code
            if self._shards.shard(id2) == shard and inverse is not None:
                local[(id1, code, id2)] = (id2, inverse, id1)
        remote = [k for k in keys if k not in local]
        inv_keys = list(local.values())

        app_keys = [(r[0], r[1], r[2]) for r in appends]
        checked = [] if check is None else [(check.id1, self._registry.primary_atype(check.atype).code)]

        left_out: set[EdgeId] = set()  # the edges the check found stale

        async def body(conn: Conn) -> Any:
            left_out.clear()  # a transaction redone (a deadlock) checks again
            for planned in create or ():  # queued: they go with the lock's round trip
                await self._objects.queue_insert(conn, planned)
            locked = await self._lists.lock_and_read(conn, [(k[0], k[1]) for k in keys + inv_keys + app_keys] + checked,
                                                     keys + inv_keys + app_keys, tombstones=inv_keys,
                                                     newest=bool(appends), whole=checked)
            existing = locked.edges
            if check is not None:  # before any write: raising rolls the lock's version bumps back
                stale = check.check(self._checked_list(locked.edges, checked[0], locked.heads[checked[0]][1]))
                left_out.update((e[0], self._registry.primary_atype(e[1]).code, e[2]) for e in stale or ())
            changes = {lst: ListChange(lst[0], lst[1], v, n, count_before=n) for lst, (v, n) in locked.heads.items()}
            put: list[tuple] = []
            for id1, code, id2, time, text in rows:
                if (id1, code, id2) in left_out:
                    continue
                c = changes[(id1, code)]
                put.append((id1, code, id2, time, c.version, text, None))
                c.upserts.append([id2, time, c.version, orjson.loads(text)])
                if (id1, code, id2) not in existing:
                    c.count += 1
                inv = local.get((id1, code, id2))
                if inv is not None:  # mirrors the state this transaction writes, at its list's version
                    ic = changes[(inv[0], inv[1])]
                    put.append((*inv, time, ic.version, text, c.version))
                    ic.upserts.append([inv[2], time, ic.version, orjson.loads(text)])
                    if inv not in existing:
                        ic.count += 1
            app_put, done = self._bulk.plan_appends(list(appends), locked, changes) if appends else ([], {})
            put += app_put
            for c in changes.values():
                if self._registry.atype_by_code(c.atype).unique and c.count > 1:
                    raise ConflictError(f"{self._registry.atype_by_code(c.atype).name} is unique per id1 and "
                                        f"{c.id1} already has one")
            await self._lists.put_edges(conn, put)
            await self._lists.set_counts(conn, {k: c.count for k, c in changes.items() if c.count != c.count_before})
            if locked.tombstones:  # the inverse exists again
                await conn.queue(f"DELETE FROM {{inverse_tombstones}} WHERE "
                                 f"{or_of('(id1 = %s AND atype = %s AND id2 = %s)', len(locked.tombstones))}",
                                 [x for k in locked.tombstones for x in k])
            job_id = await self._inverse_job(conn, [k for k in remote if k not in left_out])
            await self._outbox.add_jobs(conn, jobs)
            return changes, job_id, done
        changes, job_id, done = await self._shards.write(shard, body)
        written = [r for r in rows if (r[0], r[1], r[2]) not in left_out]
        states = {(r[0], r[1], r[2]): (changes[(r[0], r[1])].version, (r[3], r[4])) for r in written}
        if create:
            await self._objects.installed(create)
        await self._after_write(shard, list(changes.values()), job_id, [k for k in remote if k not in left_out], states)
        return [changes[lst] for lst in dict.fromkeys((k[0], k[1]) for k in keys)], done

    async def assoc_delete(self, id1: int, atype: str, id2: int, *, jobs: Jobs = None) -> bool:
        """Remove the edge; returns whether it existed. Caller jobs commit only if it did."""
        t = self._registry.primary_atype(atype)
        shard = self._shards.shard(id1)
        self._shards.shard(id2)
        if not t.counted:
            return await self._bulk.delete_uncounted(shard, (id1, t.code, id2), jobs)

        async def body(conn: Conn) -> Any:
            # A plain read first, so deleting a missing edge bumps nothing; then the list lock
            # (always taken before edge locks, as every writer does) and the authoritative read.
            if not await self._lists.read_edges(conn, [(id1, t.code, id2)]):
                return None, None
            (version, count), = (await self._lists.lock_lists(conn, [(id1, t.code)])).values()
            if not await self._lists.read_edges(conn, [(id1, t.code, id2)], lock=True):
                return ListChange(id1, t.code, version, count), None  # a concurrent delete won
            await self._lists.remove_edges(conn, [(id1, t.code, id2)])
            await self._lists.set_counts(conn, {(id1, t.code): count - 1})
            job_id = await self._inverse_job(conn, [(id1, t.code, id2)])
            await self._outbox.add_jobs(conn, jobs)
            return ListChange(id1, t.code, version, count - 1, removed=[id2]), job_id
        change, job_id = await self._shards.write(shard, body)
        if change is None:
            return False
        await self._after_write(shard, [change], job_id, [(id1, t.code, id2)])
        return bool(change.removed)

    async def assoc_change_type(self, id1: int, atype: str, id2: int, new_atype: str,
                                *, jobs: Jobs = None) -> Assoc:
        """Move the edge to another list of id1 (e.g. FOLLOW_REQUESTED -> FOLLOWS) in one transaction,
        keeping its time and data; both counts change together."""
        old_t, new_t = self._registry.primary_atype(atype), self._registry.primary_atype(new_atype)
        if not (old_t.counted and new_t.counted):
            raise InvalidDataError(f"assoc_change_type moves edges between counted lists; "
                                   f"{atype} or {new_atype} is not")
        shard = self._shards.shard(id1)
        self._shards.shard(id2)
        old_k, new_k = (id1, old_t.code, id2), (id1, new_t.code, id2)

        async def body(conn: Conn) -> Any:
            heads = await self._lists.lock_lists(conn, [(id1, old_t.code), (id1, new_t.code)])
            found = await self._lists.read_edges(conn, [old_k], lock=True)
            if not found:  # raising rolls the version bumps back
                raise ObjectNotFoundError(f"no {atype} edge from {id1} to {id2}")
            time, _, text, _ = found[old_k]
            v_old, n_old = heads[(id1, old_t.code)]
            v_new, n_new = heads[(id1, new_t.code)]
            existed = await self._lists.read_edges(conn, [new_k])
            await self._lists.remove_edges(conn, [old_k])
            await self._lists.put_edges(conn, [(id1, new_t.code, id2, time, v_new, text, None)])
            n_new += 0 if existed else 1
            await self._lists.set_counts(conn, {(id1, old_t.code): n_old - 1, (id1, new_t.code): n_new})
            job_id = await self._inverse_job(conn, [old_k, new_k])
            await self._outbox.add_jobs(conn, jobs)
            return [ListChange(id1, old_t.code, v_old, n_old - 1, removed=[id2]),
                    ListChange(id1, new_t.code, v_new, n_new, upserts=[[id2, time, v_new, orjson.loads(text)]])], job_id
        changes, job_id = await self._shards.write(shard, body)
        await self._after_write(shard, changes, job_id, [old_k, new_k])
        edge = changes[1].upserts[0]
        return Assoc(id1, new_atype, id2, edge[1], edge[2], edge[3])

    def _checked_list(self, edges: dict[EdgeId, tuple], lst: tuple[int, int], count: int) -> list[Assoc]:
        if count > MAX_CHECKED:
            raise InvalidDataError(f"a checked list holds at most {MAX_CHECKED} edges; this one {count}")
        name = self._registry.atype_by_code(lst[1]).name
        out = [Assoc(k[0], name, k[2], v[0], v[1], orjson.loads(v[2]) if v[2] else {})
               for k, v in edges.items() if (k[0], k[1]) == lst]
        out.sort(key=lambda a: (-a.time, -a.id2))
        return out

    # ---- after the commit ---------------------------------------------------------------------

    async def _inverse_job(self, conn: Conn, keys: list[EdgeId]) -> int | None:
        with_inverse = [[id1, self._registry.atype_by_code(code).name, id2] for id1, code, id2 in keys
                        if self._registry.atype_by_code(code).inverse is not None]
        if not with_inverse:
            return None
        return await self._outbox.add(conn, "tao.sync_inverses", {"edges": with_inverse}, delay_ms=INVERSE_GRACE_MS)

    async def _after_write(self, shard: int, changes: list[ListChange], job_id: int | None,
                           keys: list[EdgeId], states: dict[EdgeId, tuple] | None = None) -> None:
        """Install the changes, then sync the inverses of `keys` (`states`: their forward
        states as this write committed them, {key: (list version, (time, data text))})."""
        await self._lists.install_changes(shard, changes)
        if job_id is not None:
            with_inverse = [k for k in keys if self._registry.atype_by_code(k[1]).inverse is not None]
            edges = [(id1, self._registry.atype_by_code(code).name, id2) for id1, code, id2 in with_inverse]
            known = None if states is None else {e: states[k] for e, k in zip(edges, with_inverse)}
            try:
                await self.inverses.sync(edges, known=known)
            except Exception as exc:  # the outbox row retries it; the write itself is acknowledged
                self._shards.counters["inverse_sync_deferred"] += 1
                log.info("inverses of %d edges on shard %s deferred to the outbox: %s", len(edges), shard, exc)
            else:
                await self._outbox.delete_soon(shard, job_id)  # due INVERSE_GRACE_MS later: it can wait for a commit
        self._outbox.nudge(shard)
