"""Objects: obj_add (and obj_add_many), obj_get (many keys), obj_update, obj_delete.

Cache entries (`o:<id>`) carry the row's version; a deleted or never-existing object is cached
as absent (`{"v": n, "absent": true}`), distinct from a miss. A delete installs absent at the
deleted row's version + 1, so a slow reader holding the old row can never bring it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tao.backends.base import Conn
from tao.cache_io import CacheIO, install_value
from tao.errors import (
    DuplicateKeyError,
    IdLeaseLostError,
    InvalidDataError,
    InvalidIdError,
    ObjectNotFoundError,
    ShardUnavailableError,
    VersionConflictError,
)
from tao.models import Obj, PlannedObj, check_count, check_many, encode_data, now_ms
from tao.outbox import Jobs, Outbox
from tao.registry import Registry
from tao.shards import Errors, Shards

_OBJ_COLS = "id, otype, version, created, updated, data"
MAX_SCAN = 10_000  # objects in one obj_scan page


async def _queue_row(conn: Conn, id_: int, code: int, ts: int, text: str) -> None:
    """A new object's row (version 1, created = updated = `ts`), queued in the caller's transaction."""
    await conn.queue(f"INSERT INTO {{objects}} ({_OBJ_COLS}) VALUES (%s, %s, 1, %s, %s, %s)", (id_, code, ts, ts, text))


class Objects:
    def __init__(self, shards: Shards, cache: CacheIO, outbox: Outbox, registry: Registry) -> None:
        self._shards = shards
        self._cache = cache
        self._outbox = outbox
        self._registry = registry

    def _obj_value(self, row: tuple) -> dict:
        id_, otype, version, created, updated, data = row
        return {"v": version, "o": [otype, created, updated, orjson.loads(data)]}

    def _obj_from_value(self, id_: int, value: dict) -> Obj | None:
        if value.get("absent"):
            return None
        otype, created, updated, data = value["o"]
        return Obj(id_, self._registry.otype_by_code(otype).name, value["v"], created, updated, data)

    async def add(self, otype: str, data: dict | None = None, *, owner: int | None = None,
                  jobs: Jobs | Callable[[int], Jobs] = None) -> Obj:
        """Create an object (on `owner`'s shard, else on any live one); returns it as stored.
        `jobs` commit with it; pass a function of the new id when a job must name the object."""
        code = self._registry.otype(otype).code
        text = encode_data(data)
        shard = self._shards.home_shard(owner)
        failed_shards: set[int] = set()
        ts = now_ms()
        for attempt in range(5):  # a duplicate id: since id slots (tao/ids.py), only against an id made before them
            try:
                id_ = self._shards.ids.next_id(shard)
            except IdLeaseLostError:
                # No id slot on the shard's server now (unreachable, or its lease being renewed):
                # an unowned object may live on another server's shards.
                shard_map = self._shards.shard_map
                failed_shards.update(shard_map.shards_on(shard_map.server_of_shard[shard]))
                other = self._shards.placement_shard(failed_shards) if owner is None else None
                if other is None or attempt == 4:
                    raise
                shard = other
                continue

            # Called within this iteration; the default binds this attempt's id all the same.
            async def body(conn: Conn, id_: int = id_) -> Any:
                # Queued: BEGIN, it and the jobs go in one round trip (a duplicate id is raised there)
                await _queue_row(conn, id_, code, ts, text)
                await self._outbox.add_jobs(conn, jobs(id_) if callable(jobs) else jobs)
            try:
                # An owned object is never placed elsewhere: no need to know that a failure sent nothing
                await self._shards.write(shard, body, one_trip=owner is not None)
                break
            except DuplicateKeyError:
                continue
            except ShardUnavailableError as exc:
                # An unowned object may live anywhere: if nothing reached the shard, try another.
                failed_shards.add(shard)
                other = self._shards.placement_shard(failed_shards) if owner is None and exc.unsent else None
                if other is None:
                    raise
                shard = other
        else:
            raise DuplicateKeyError("could not allocate a fresh id after 5 tries")
        value = await self._install_new(shard, id_, code, ts, text)
        self._outbox.nudge(shard)
        return Obj(id_, otype, 1, ts, ts, value["o"][3])

    async def _install_new(self, shard: int, id_: int, code: int, ts: int, text: str) -> dict:
        """Install an object just inserted (version 1); returns its cache value."""
        value = self._obj_value((id_, code, 1, ts, ts, text))
        await self._cache.install([install_value(self._cache.obj_key(id_), 1, value)],
                                  shard, [{"kind": "o", "id": id_}])
        return value

    def plan(self, otype: str, data: dict | None, owner: int, id_: int | None = None) -> PlannedObj:
        """An object on `owner`'s shard, its id and time taken now (or `id_`, an id of that shard
        made for it before), to be inserted by another write's transaction (`queue_insert`, then
        `installed` after its commit)."""
        code = self._registry.otype(otype).code
        text = encode_data(data)
        shard = self._shards.home_shard(owner)
        if id_ is None:
            id_ = self._shards.ids.next_id(shard)  # IdLeaseLostError: no slot on the server now
        elif self._shards.shard(id_) != shard:
            raise InvalidDataError(f"id {id_} is not on the shard of its owner {owner}")
        ts = now_ms()
        return PlannedObj(shard, code, text, Obj(id_, otype, 1, ts, ts, orjson.loads(text)))

    @staticmethod
    async def queue_insert(conn: Conn, planned: PlannedObj) -> None:
        """Insert the planned object in the caller's transaction (queued: no round trip of its
        own; a duplicate id is raised with the statement that carries it)."""
        await _queue_row(conn, planned.obj.id, planned.code, planned.obj.created, planned.text)

    async def installed(self, planned: list[PlannedObj]) -> None:
        """After the commit that inserted them: install the new objects, as `add` does."""
        for p in planned:
            await self._install_new(p.shard, p.obj.id, p.code, p.obj.created, p.text)

    async def add_many(self, items: list[tuple[str, dict | None, int | None]]) -> list[int]:
        """Bulk obj_add of (otype, data, owner) items: one multi-row insert per shard, shards in
        parallel. Returns the new ids in input order. For batch loads; no jobs."""
        if len(items) > 5_000:
            raise InvalidDataError(f"{len(items)} objects in one call; the limit is 5000")
        ts = now_ms()
        rows = []
        for otype, data, owner in items:
            shard = self._shards.home_shard(owner)
            rows.append((self._shards.ids.next_id(shard), self._registry.otype(otype).code, 1, ts, ts,
                         encode_data(data)))

        async def one(shard: int, group: list[tuple]) -> dict:
            sql = (f"INSERT INTO {{objects}} ({_OBJ_COLS}) VALUES "
                   + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(group)))

            async def body(conn: Conn) -> Any:
                await conn.execute(sql, [x for r in group for x in r])
            await self._shards.write(shard, body)
            await self._cache.install([install_value(self._cache.obj_key(r[0]), 1, self._obj_value(r))
                                      for r in group], shard, [{"kind": "o", "id": r[0]} for r in group])
            return {}
        await self._shards.per_shard(self._shards.by_shard(rows, lambda r: r[0]), one)
        return [r[0] for r in rows]

    async def get(self, ids: Iterable[int], *, errors: Errors = "raise", fresh: bool = False) -> dict[int, Any]:
        """Objects by id; missing or deleted ids are absent from the answer. With errors="return",
        an id whose shard failed maps to the exception instead. `fresh`: read SQL, not the cache
        (and fill the cache from it)."""
        ids = list(dict.fromkeys(ids))
        check_many(ids)
        for id_ in ids:
            self._shards.shard(id_)
        if not ids:
            return {}
        if fresh:
            out = await self._fill(ids, errors)
            return {i: o for i, o in out.items() if o is not None}
        out = await self._cache.read_through({self._cache.obj_key(i): i for i in ids}, "o",
                                             lambda misses: self._fill(misses, errors), self._obj_from_value, errors)
        return {i: o for i, o in out.items() if o is not None}

    async def _fill(self, ids: list[int], errors: Errors, absent_versions: dict[int, int] | None = None) -> dict:
        absent_versions = absent_versions or {}

        async def one(shard: int, group: list[int]) -> dict:
            marks = ",".join(["%s"] * len(group))
            fence = self._cache.fence()
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(f"SELECT {_OBJ_COLS} FROM {{objects}} WHERE id IN ({marks})", group)
            found = {r[0]: r for r in rows}
            installs, result = [], {}
            for id_ in group:
                row = found.get(id_)
                value = self._obj_value(row) if row else {"v": absent_versions.get(id_, 0), "absent": True}
                installs.append(install_value(self._cache.obj_key(id_), value["v"], value))
                result[id_] = self._obj_from_value(id_, value)
            await self._cache.fill(installs, fence)
            return result
        return await self._shards.per_shard(self._shards.by_shard(ids, lambda i: i), one, errors=errors,
                                            keys_of=lambda g: g)

    async def scan(self, shard: int, otype: str, after: int = 0, limit: int = 1000) -> list[Obj]:
        """Objects of `otype` on one logical shard with ids above `after`, in id order (rebuilds
        and batch jobs page through a shard this way). Straight from SQL: a scan must not flood
        the cache."""
        code = self._registry.otype(otype).code
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < self._shards.n_shards:
            raise InvalidIdError(f"logical shard {shard!r} is out of range (0..{self._shards.n_shards - 1})")
        check_count("limit", limit, MAX_SCAN)  # a negative LIMIT read the whole shard on SQLite
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidDataError(f"after must be an object id (or 0), got {after!r}")
        async with self._shards.read(shard) as conn:
            rows = await conn.fetchall(f"SELECT {_OBJ_COLS} FROM {{objects}} WHERE id > %s AND otype = %s "
                                       "ORDER BY id LIMIT %s", (after, code, limit))
        return [o for o in (self._obj_from_value(r[0], self._obj_value(r)) for r in rows) if o is not None]

    def _conflict(self, id_: int, expected: int, row: tuple | None) -> VersionConflictError:
        current = self._obj_from_value(id_, self._obj_value(row)) if row else None
        found = f"at version {row[2]}" if row else "gone"
        return VersionConflictError(f"object {id_} is {found}, not at version {expected}: nothing was written",
                                    current)

    async def update(self, id_: int, data: dict, *, jobs: Jobs = None, version: int | None = None) -> Obj:
        """Merge `data` into the object's data (a key set to None is removed); version + 1.
        With `version`: only if the object is still at that version (compare-and-set), else
        VersionConflictError (carrying the object as it stands) and nothing is written."""
        shard = self._shards.shard(id_)
        encode_data(data)
        for_update = self._shards.backend.for_update

        async def body(conn: Conn) -> Any:
            rows = await conn.fetchall(f"SELECT {_OBJ_COLS} FROM {{objects}} WHERE id = %s{for_update}", (id_,))
            if version is not None and (not rows or rows[0][2] != version):
                raise self._conflict(id_, version, rows[0] if rows else None)
            if not rows:
                raise ObjectNotFoundError(f"object {id_} does not exist")
            _, otype, version_now, created, _, old = rows[0]
            merged = orjson.loads(old)
            for k, v in data.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            text = encode_data(merged)
            ts = now_ms()
            await conn.execute("UPDATE {objects} SET data = %s, version = %s, updated = %s WHERE id = %s",
                               (text, version_now + 1, ts, id_))
            await self._outbox.add_jobs(conn, jobs)
            return (id_, otype, version_now + 1, created, ts, text)
        row = await self._shards.write(shard, body)
        value = self._obj_value(row)
        await self._cache.install([install_value(self._cache.obj_key(id_), row[2], value)],
                                  shard, [{"kind": "o", "id": id_}])
        self._outbox.nudge(shard)
        return Obj(id_, self._registry.otype_by_code(row[1]).name, row[2], row[3], row[4], value["o"][3])

    async def delete(self, id_: int, *, jobs: Jobs = None, version: int | None = None) -> bool:
        """Delete the object (its associations are the caller's to remove). Returns whether it
        existed. With `version`: only if it is still at that version, else VersionConflictError."""
        shard = self._shards.shard(id_)
        for_update = self._shards.backend.for_update

        async def body(conn: Conn) -> Any:
            rows = await conn.fetchall(f"SELECT version FROM {{objects}} WHERE id = %s{for_update}", (id_,))
            if version is not None and (not rows or rows[0][0] != version):
                full = await conn.fetchall(f"SELECT {_OBJ_COLS} FROM {{objects}} WHERE id = %s", (id_,))
                raise self._conflict(id_, version, full[0] if full else None)
            if not rows:
                return None
            await conn.execute("DELETE FROM {objects} WHERE id = %s", (id_,))
            await self._outbox.add_jobs(conn, jobs)
            return rows[0][0]
        version = await self._shards.write(shard, body)
        if version is None:
            return False
        absent = {"v": version + 1, "absent": True}
        await self._cache.install([install_value(self._cache.obj_key(id_), version + 1, absent)],
                                  shard, [{"kind": "o", "id": id_, "absent_v": version + 1}])
        self._outbox.nudge(shard)
        return True

    async def refill(self, items: list[dict]) -> None:
        """Re-read SQL and install (the outbox's cache repair). A deleted object is installed as
        absent at the version its delete recorded (`absent_v`), above any version it had."""
        await self._fill([i["id"] for i in items], "raise",
                         {i["id"]: i["absent_v"] for i in items if "absent_v" in i})
