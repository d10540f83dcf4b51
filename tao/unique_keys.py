"""Unique keys: a durable, atomic claim of a string for one id (usernames, hashtag names, upload
ids, ...). A key lives on the shard chosen by hashing it; releasing a key keeps its
row with id 0 and a higher version, so the cache (`u:<ns>:<digest>`) can never resurrect it.
A namespace declared uncached (`Registry.uncached_key_namespace`, in tao/types.py) never touches
the cache: SQL alone answers every read, and no claim or release installs anything. It is a
property of the namespace, not of a call: an uncached claim installs nothing, so a cached read
of the same namespace could keep what the claim replaced.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Any

from tao.backends.base import Conn
from tao.cache_io import CacheIO, install_value
from tao.errors import DuplicateKeyError, InvalidDataError
from tao.models import check_many
from tao.registry import Registry
from tao.shards import Errors, Shards

MAX_KEY_LEN = 255


class UniqueKeys:
    def __init__(self, shards: Shards, cache: CacheIO, registry: Registry) -> None:
        self._shards = shards
        self._cache = cache
        self._uncached = registry.uncached_key_namespaces

    def _key_shard(self, ns: str, key: str) -> int:
        return zlib.crc32(f"{ns}\0{key}".encode()) % self._shards.n_shards

    def _ukey(self, ns: str, key: str) -> str:
        return self._cache.unique_key(ns, hashlib.sha1(key.encode()).hexdigest())

    @staticmethod
    def _check(ns: str, key: str) -> None:
        if not re.fullmatch(r"[a-z0-9_]{1,32}", ns or ""):
            raise InvalidDataError(f"namespace {ns!r} must be 1-32 lowercase letters, digits or _")
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LEN:
            raise InvalidDataError(f"a unique key must be a string of 1-{MAX_KEY_LEN} characters")
        try:
            key.encode()
        except UnicodeEncodeError:  # an unpaired surrogate: not storable (it was a bare UnicodeEncodeError)
            raise InvalidDataError("a unique key must be valid Unicode text (it holds an unpaired surrogate)") from None

    async def claim(self, ns: str, key: str, id_: int) -> bool:
        """Claim `key` in `ns` for `id_`. True if it is now (or already was) id_'s; False if another id holds it.

        A lost claim leaves the cache holding the winner, as its locking read found it: the
        winner installs its id only after its commit, and a loser that then reads the key (to
        join the winner: `create, claim, else read the winner's`) must not read the "unclaimed"
        that the cache may still hold meanwhile (or for good, if the winner died in between)."""
        self._check(ns, key)
        self._shards.shard(id_)
        shard = self._key_shard(ns, key)

        async def body(conn: Conn) -> Any:
            rows = await conn.fetchall(f"SELECT id, version FROM {{unique_keys}} WHERE ns = %s AND k = %s"
                                       f"{self._shards.backend.for_update}", (ns, key))
            if rows and rows[0][0] == id_:
                return True, None
            if rows and rows[0][0] != 0:
                return False, (rows[0][0], rows[0][1])  # held by another: that is what the cache should say
            if rows:
                version = rows[0][1] + 1
                await conn.execute("UPDATE {unique_keys} SET id = %s, version = %s WHERE ns = %s AND k = %s",
                                   (id_, version, ns, key))
            else:
                version = 1
                await conn.execute("INSERT INTO {unique_keys} (ns, k, id, version) VALUES (%s, %s, %s, 1)",
                                   (ns, key, id_))
            return True, (id_, version)
        # Most claims are of a key no one ever held: one autocommit insert takes it. A key that
        # has a row (held, or released and kept at id 0) is left as it is, and the locking read
        # below decides.
        backend = self._shards.backend
        if await self._shards.write_one(shard, "INSERT INTO {unique_keys} (ns, k, id, version) VALUES (%s, %s, %s, 1)"
                                        + backend.keep_existing(("ns", "k")), (ns, key, id_)):
            ok, holder = True, (id_, 1)
        else:
            try:
                ok, holder = await self._shards.write(shard, body)
            except DuplicateKeyError:  # lost an insert race: read the winner's row under the lock
                ok, holder = await self._shards.write(shard, body)
        if holder is not None and ns not in self._uncached:
            await self._install_key(shard, ns, key, *holder)
        return ok

    async def release(self, ns: str, key: str, id_: int, to: int = 0) -> bool:
        """Release `key` if `id_` holds it (to `to`: 0 frees it, another id takes it over at once);
        True if it did."""
        self._check(ns, key)
        if to:
            self._shards.shard(to)
        shard = self._key_shard(ns, key)

        async def body(conn: Conn) -> Any:
            rows = await conn.fetchall(f"SELECT id, version FROM {{unique_keys}} WHERE ns = %s AND k = %s"
                                       f"{self._shards.backend.for_update}", (ns, key))
            if not rows or rows[0][0] != id_:
                return None
            await conn.execute("UPDATE {unique_keys} SET id = %s, version = %s WHERE ns = %s AND k = %s",
                               (to, rows[0][1] + 1, ns, key))
            return rows[0][1] + 1
        version = await self._shards.write(shard, body)
        if version is None:
            return False
        if ns not in self._uncached:
            await self._install_key(shard, ns, key, to, version)
        return True

    async def _install_key(self, shard: int, ns: str, key: str, id_: int, version: int) -> None:
        value = {"id": id_}
        await self._cache.install([install_value(self._ukey(ns, key), version, value)],
                                  shard, [{"kind": "u", "ns": ns, "key": key}])

    async def get_many(self, ns: str, keys: list[str], errors: Errors = "raise") -> dict[str, Any]:
        """{key: id} for the keys that are claimed; with errors="return", a key whose shard failed
        maps to the exception instead (see `Shards.per_shard`). An uncached namespace: SQL alone, no fill."""
        if isinstance(keys, (str, bytes)):  # a lone key would be read as its characters
            raise InvalidDataError("keys must be a list of keys, not one string: key_get_many(ns, [key])")
        keys = list(dict.fromkeys(keys))
        for k in keys:
            self._check(ns, k)
        check_many(keys)
        if ns in self._uncached:
            return {k: v for k, v in (await self._fill_keys(ns, keys, errors, fill=False)).items() if v}
        out = await self._cache.read_through({self._ukey(ns, k): k for k in keys}, f"u:{ns}",
                                             lambda misses: self._fill_keys(ns, misses, errors),
                                             lambda k, value: value["id"], errors)
        return {k: v for k, v in out.items() if v}

    async def _fill_keys(self, ns: str, keys: list[str], errors: Errors = "raise", *, fill: bool = True) -> dict:
        groups: dict[int, list[str]] = {}
        for k in keys:
            groups.setdefault(self._key_shard(ns, k), []).append(k)

        async def one(shard: int, group: list[str]) -> dict:
            marks = ",".join(["%s"] * len(group))
            fence = self._cache.fence()
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(
                    f"SELECT k, id, version FROM {{unique_keys}} WHERE ns = %s AND k IN ({marks})", [ns, *group])
            found = {r[0]: (r[1], r[2]) for r in rows}
            installs, result = [], {}
            for k in group:
                id_, version = found.get(k, (0, 0))
                installs.append(install_value(self._ukey(ns, k), version, {"id": id_}))
                result[k] = id_
            if fill:
                await self._cache.fill(installs, fence)
            return result
        return await self._shards.per_shard(groups, one, errors=errors, keys_of=lambda g: g)

    async def refill(self, items: list[dict]) -> None:
        for ns in {i["ns"] for i in items}:
            await self._fill_keys(ns, [i["key"] for i in items if i["ns"] == ns])
