"""Object verbs: obj_add, obj_get (many keys), obj_update, obj_delete.

Cache entries (`o:<id>`) carry the row's version; a deleted or never-existing object is cached
as absent (`{"v": n, "absent": true}`), distinct from a miss. A delete installs absent at the
deleted row's version + 1, so a slow reader holding the old row can never bring it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tao.cache.base import Install
from tao.core import TaoCore, encode_data, now_ms
from tao.errors import DuplicateKeyError, InvalidDataError, ObjectNotFoundError, ShardUnavailableError
from tao.models import Obj

_OBJ_COLS = "id, otype, version, created, updated, data"


class ObjectVerbs(TaoCore):
    def _obj_value(self, row: tuple) -> dict:
        id_, otype, version, created, updated, data = row
        return {"v": version, "o": [otype, created, updated, orjson.loads(data)]}

    def _obj_from_value(self, id_: int, value: dict) -> Obj | None:
        if value.get("absent"):
            return None
        otype, created, updated, data = value["o"]
        return Obj(id_, self.registry.otype_by_code(otype).name, value["v"], created, updated, data)

    async def obj_add(self, otype: str, data: dict | None = None, *, owner: int | None = None,
                      jobs: list[tuple] | Callable[[int], list[tuple]] | None = None) -> int:
        """Create an object (on `owner`'s shard, else on any live one); returns its id. `jobs`
        commit with it; pass a function of the new id when a job must name the object."""
        code = self.registry.otype(otype).code
        text = encode_data(data)
        shard = self.shard(owner) if owner is not None else self.placement_shard()
        failed_shards: set[int] = set()
        ts = now_ms()
        for _ in range(5):  # a duplicate id needs two processes in one ms with the same sequence
            id_ = self.ids.next_id(shard)

            async def body(conn):
                await conn.execute(f"INSERT INTO {{objects}} ({_OBJ_COLS}) VALUES (%s, %s, 1, %s, %s, %s)",
                                   (id_, code, ts, ts, text))
                await self.outbox.add_jobs(conn, jobs(id_) if callable(jobs) else jobs)
            try:
                await self.write(shard, body)
                break
            except DuplicateKeyError:
                continue
            except ShardUnavailableError as exc:
                # An unowned object may live anywhere: if nothing reached the shard, try another.
                failed_shards.add(shard)
                other = self.placement_shard(failed_shards) if owner is None and exc.unsent else None
                if other is None:
                    raise
                shard = other
        else:
            raise DuplicateKeyError("could not allocate a fresh id after 5 tries")
        value = self._obj_value((id_, code, 1, ts, ts, text))
        await self.cache_install([Install(self.obj_key(id_), 1, lambda old: value)],
                                 shard, [{"kind": "o", "id": id_}])
        self.outbox.nudge(shard)
        return id_

    async def obj_add_many(self, items: list[tuple[str, dict | None, int | None]]) -> list[int]:
        """Bulk obj_add of (otype, data, owner) items: one multi-row insert per shard, shards in
        parallel. Returns the new ids in input order. For batch loads; no jobs."""
        if len(items) > 5_000:
            raise InvalidDataError(f"{len(items)} objects in one call; the limit is 5000")
        ts = now_ms()
        rows = []
        for otype, data, owner in items:
            shard = self.shard(owner) if owner is not None else self.placement_shard()
            rows.append((self.ids.next_id(shard), self.registry.otype(otype).code, 1, ts, ts, encode_data(data)))

        async def one(shard: int, group: list[tuple]) -> dict:
            sql = f"INSERT INTO {{objects}} ({_OBJ_COLS}) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(group))

            async def body(conn):
                await conn.execute(sql, [x for r in group for x in r])
            await self.write(shard, body)
            await self.cache_install([Install(self.obj_key(r[0]), 1, lambda old, v=self._obj_value(r): v)
                                      for r in group], shard, [{"kind": "o", "id": r[0]} for r in group])
            return {}
        await self.per_shard(self.by_shard(rows, lambda r: r[0]), one)
        return [r[0] for r in rows]

    async def obj_get(self, ids: Iterable[int], *, errors: str = "raise") -> dict[int, Obj]:
        """Objects by id; missing or deleted ids are absent from the answer."""
        ids = list(dict.fromkeys(ids))
        self.check_many(ids)
        for id_ in ids:
            self.shard(id_)
        if not ids:
            return {}
        out = await self.read_through({self.obj_key(i): i for i in ids}, "o",
                                      lambda misses: self._obj_fill(misses, errors), self._obj_from_value, errors)
        return {i: o for i, o in out.items() if o is not None}

    async def _obj_fill(self, ids: list[int], errors: str, absent_versions: dict[int, int] | None = None) -> dict:
        absent_versions = absent_versions or {}

        async def one(shard: int, group: list[int]) -> dict:
            marks = ",".join(["%s"] * len(group))
            fence = self.cache.fence()
            async with self.read(shard) as conn:
                rows = await conn.fetchall(f"SELECT {_OBJ_COLS} FROM {{objects}} WHERE id IN ({marks})", group)
            found = {r[0]: r for r in rows}
            installs, result = [], {}
            for id_ in group:
                row = found.get(id_)
                value = self._obj_value(row) if row else {"v": absent_versions.get(id_, 0), "absent": True}
                installs.append(Install(self.obj_key(id_), value["v"], lambda old, v=value: v))
                result[id_] = self._obj_from_value(id_, value)
            await self.fill_install(installs, fence)
            return result
        return await self.per_shard(self.by_shard(ids, lambda i: i), one, errors=errors,
                                    keys_of=lambda g: g)

    async def obj_update(self, id_: int, data: dict, *, jobs: list[tuple[str, dict]] | None = None) -> Obj:
        """Merge `data` into the object's data (a key set to None is removed); version + 1."""
        shard = self.shard(id_)
        encode_data(data)

        async def body(conn):
            rows = await conn.fetchall(f"SELECT {_OBJ_COLS} FROM {{objects}} WHERE id = %s{self.backend.for_update}", (id_,))
            if not rows:
                raise ObjectNotFoundError(f"object {id_} does not exist")
            _, otype, version, created, _, old = rows[0]
            merged = orjson.loads(old)
            for k, v in data.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            text = encode_data(merged)
            ts = now_ms()
            await conn.execute("UPDATE {objects} SET data = %s, version = %s, updated = %s WHERE id = %s",
                               (text, version + 1, ts, id_))
            await self.outbox.add_jobs(conn, jobs)
            return (id_, otype, version + 1, created, ts, text)
        row = await self.write(shard, body)
        value = self._obj_value(row)
        await self.cache_install([Install(self.obj_key(id_), row[2], lambda old: value)],
                                 shard, [{"kind": "o", "id": id_}])
        self.outbox.nudge(shard)
        return self._obj_from_value(id_, value)

    async def obj_delete(self, id_: int, *, jobs: list[tuple[str, dict]] | None = None) -> bool:
        """Delete the object (its associations are the caller's to remove). Returns whether it existed."""
        shard = self.shard(id_)

        async def body(conn):
            rows = await conn.fetchall(f"SELECT version FROM {{objects}} WHERE id = %s{self.backend.for_update}", (id_,))
            if not rows:
                return None
            await conn.execute("DELETE FROM {objects} WHERE id = %s", (id_,))
            await self.outbox.add_jobs(conn, jobs)
            return rows[0][0]
        version = await self.write(shard, body)
        if version is None:
            return False
        absent = {"v": version + 1, "absent": True}
        await self.cache_install([Install(self.obj_key(id_), version + 1, lambda old: absent)],
                                 shard, [{"kind": "o", "id": id_, "absent_v": version + 1}])
        self.outbox.nudge(shard)
        return True

    async def refill_objects(self, items: list[dict]) -> None:
        """Re-read SQL and install (the outbox's cache repair). A deleted object is installed as
        absent at the version its delete recorded (`absent_v`), above any version it had."""
        await self._obj_fill([i["id"] for i in items], "raise",
                             {i["id"]: i["absent_v"] for i in items if "absent_v" in i})
