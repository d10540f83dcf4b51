"""Erasure: removing the traces the store itself keeps of deleted ids, and proving none remain.

The verbs delete what callers name (objects, edges, unique keys); three kinds of trace outlive
them, because they are the store's own bookkeeping:
- `assoc_counts` rows of a deleted id1 (count 0, kept so a list's version only moves forward);
- `inverse_tombstones` naming a deleted id (they stop a stale inverse sync from resurrecting an
  edge; once the edge's ends are gone nothing can resurrect it);
- cache entries (absence markers, tombstones, lists and counts of a deleted id).
`erase_rows(ids)` removes the first two for ids whose objects are already deleted; `sweep_cache`
removes every cache entry that names an id no longer in SQL (or, by value, a given id).
`residue(ids, needles)` scans every shard and every cache server for anything left.

Invariant: erase only what has no live object behind it: `erase_rows` refuses ids whose object
still exists, and the sweep deletes only keys of ids missing from SQL, so erasing can never
lose data of a live account. Deleting a cache key (instead of installing a tombstone) reopens
the window a tombstone closes; it is safe here because the rows are gone: a refill can only
install an absence.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field

from tao.cache_io import CacheIO
from tao.errors import InvalidDataError
from tao.registry import Registry
from tao.shards import Shards

SCAN_BATCH = 500  # cache keys judged per step of a sweep or residue scan
FORGET_IDS = 16  # ids whose known cache keys (~160 each) are deleted per call


@dataclass
class Residue:
    """What a residue scan found: (shard, table, row) rows and (server, key) cache keys."""

    rows: list[tuple[int, str, tuple]] = field(default_factory=list)
    cache_keys: list[tuple[str, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.rows and not self.cache_keys


def _ids_in_key(key: str) -> list[int]:
    """The ids a store cache key names (`o:<id>`, `l:<id1>:<atype>`, `e:<id1>:<atype>:<id2>`, ...)."""
    return [int(p) for p in key.split(":")[1:] if p.isdigit()] if key[:2] in ("o:", "l:", "n:", "e:") else []


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


class Erasure:
    def __init__(self, shards: Shards, cache: CacheIO, registry: Registry) -> None:
        self._shards = shards
        self._cache = cache
        self._registry = registry

    def known_keys(self, ids: list[int]) -> list[str]:
        """Every cache key the store may have built for these ids as id1: the object, and each
        association type's list and count (edge keys name pairs and are found by scanning)."""
        codes = sorted({t.code for t in self._registry.atypes.values()})
        keys: list[str] = []
        for i in ids:
            keys.append(self._cache.obj_key(i))
            for c in codes:
                keys += [self._cache.list_key(i, c), self._cache.count_key(i, c)]
        return keys

    async def erase_rows(self, ids: list[int], naming: list[int] = ()) -> int:  # type: ignore[assignment]
        """Delete the empty count rows and inverse tombstones of `ids` (already-deleted objects),
        and the unique keys they hold; with `naming`, also every unique key whose key text names
        one of those ids (a full scan: for a deleted user's finish, not per batch). Returns the
        rows removed. Idempotent."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        named = await self._erase_keys_naming([n for n in naming if n not in await self._existing(list(naming))]) \
            if naming else 0
        live = await self._existing(ids)
        ids = [i for i in ids if i not in live]
        by_shard = self._shards.by_shard(ids, lambda i: i)

        async def own(shard: int, group: list[int]) -> dict:
            async def body(conn) -> int:
                n = await conn.execute(
                    f"DELETE FROM {{assoc_counts}} WHERE count = 0 AND id1 IN ({_marks(len(group))})", group)
                n += await conn.execute(f"DELETE FROM {{inverse_tombstones}} WHERE id1 IN ({_marks(len(group))})",
                                        group)
                return n
            return {shard: await self._shards.write(shard, body)}

        async def others(shard: int, _: None) -> dict:
            async def body(conn) -> int:
                # Unique keys are placed by the key's hash: a deleted object's claims (a
                # notification's group key, say) may be on any shard.
                n = await conn.execute(f"DELETE FROM {{unique_keys}} WHERE id IN ({_marks(len(ids))})", ids)
                return n + await conn.execute(f"DELETE FROM {{inverse_tombstones}} WHERE id2 IN ({_marks(len(ids))})",
                                              ids)
            return {-1 - shard: await self._shards.write(shard, body)}

        a = await self._shards.per_shard(by_shard, own)
        b = await self._shards.per_shard({s: None for s in range(self._shards.n_shards)}, others)
        await self._forget_known(ids)
        return sum(a.values()) + sum(b.values()) + named

    async def _erase_keys_naming(self, needles: list[int]) -> int:
        """Unique keys (any shard) whose key text names a needle (`totp_step` `<user>:<step>`, say):
        each row goes unless a live object holds it (id 0: released), with its cache entry."""
        if not needles:
            return 0
        likes = " OR ".join(["k LIKE %s"] * len(needles))
        pats = [f"%{n}%" for n in needles]

        async def scan(shard: int, _: None) -> dict:
            async with self._shards.read(shard) as conn:
                return {shard: [tuple(r) for r in await conn.fetchall(
                    f"SELECT ns, k, id FROM {{unique_keys}} WHERE {likes}", pats)]}
        found = await self._shards.per_shard({s: None for s in range(self._shards.n_shards)}, scan)
        holders = sorted({r[2] for rows in found.values() for r in rows if r[2]})
        live = await self._existing(holders) if holders else set()
        removed = 0
        for shard, rows in found.items():
            doomed = [r for r in rows if r[2] not in live]
            if not doomed:
                continue

            async def body(conn, doomed: list[tuple] = doomed) -> int:
                # `id = %s`: a row claimed again since the scan is left alone
                return sum([await conn.execute("DELETE FROM {unique_keys} WHERE ns = %s AND k = %s AND id = %s", r)
                            for r in doomed])
            removed += await self._shards.write(shard, body)
            await self._cache.tier.forget_many([self._cache.unique_key(ns, hashlib.sha1(k.encode()).hexdigest())
                                                for ns, k, _ in doomed])
        return removed

    async def _forget_known(self, ids: list[int]) -> None:
        """Delete the known keys of `ids` a few ids at a time: one id has ~160 (its object, each
        atype's list and count), so 200 ids' would be a 31 000-key list (~3 MB), and a purge's
        forget jobs, all due at once at its end, run up to the outbox batch together."""
        for i in range(0, len(ids), FORGET_IDS):
            await self._cache.tier.forget_many(self.known_keys(ids[i:i + FORGET_IDS]))

    async def edges_to(self, ids: list[int], limit: int, naming: list[int] = ()) -> list[tuple[int, str, int]]:  # type: ignore[assignment]
        """Up to `limit` edges, on any shard, whose id2 is one of `ids`, or whose data names one of
        `naming` (id1, atype, id2): how a purge finds edges of types without an inverse that point
        at a user, and others' edges that carry their id (a feed entry's author, a stream event's
        actor). A full scan of each shard's assocs: for erasure, never a request path."""
        marks = _marks(len(ids))
        likes = "".join(" OR data LIKE %s" for _ in naming)
        params = [*ids, *(f"%{n}%" for n in naming)]

        async def one(shard: int, _: None) -> dict:
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(f"SELECT id1, atype, id2 FROM {{assocs}} WHERE id2 IN ({marks}){likes} "
                                           f"LIMIT {int(limit)}", params)
            return {(r[0], self._registry.atype_by_code(r[1]).name, r[2]): True for r in rows}
        found = await self._shards.per_shard({s: None for s in range(self._shards.n_shards)}, one)
        return list(found)[:limit]

    async def objects_naming(self, needle: int, otype: str, limit: int, field: str | None = None,
                             after: int = 0) -> list[int]:
        """Up to `limit` ids of `otype` objects (any shard) whose data names `needle` (with
        `field`: as the value of that top-level field, `"field":needle` in the stored JSON, so
        objects naming it elsewhere, in a list of mentions or a text, do not fill the page): a
        full scan. The smallest such ids above `after`, ascending: pass the last id of a page to
        read the next (a keyset over every shard; an export reads a page at a time)."""
        code = self._registry.otypes[otype].code
        if field is None:
            where, params = "data LIKE %s", [f"%{needle}%"]
        else:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", field):
                raise InvalidDataError(f"field must be a plain field name, got {field!r}")
            # The store writes data as compact JSON (`encode_data`): the value ends at `,` or `}`.
            where, params = "(data LIKE %s OR data LIKE %s)", [f'%"{field}":{int(needle)},%',
                                                              f'%"{field}":{int(needle)}}}%']

        async def one(shard: int, _: None) -> dict:
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(f"SELECT id FROM {{objects}} WHERE otype = %s AND id > %s AND {where} "
                                           f"ORDER BY id LIMIT {int(limit)}", (code, int(after), *params))
            return {r[0]: True for r in rows}
        found = await self._shards.per_shard({s: None for s in range(self._shards.n_shards)}, one)
        return sorted(found)[:limit]  # each shard's smallest: the smallest of all are among them

    async def _existing(self, ids: list[int]) -> set[int]:
        async def one(shard: int, group: list[int]) -> dict:
            async with self._shards.read(shard) as conn:
                rows = await conn.fetchall(f"SELECT id FROM {{objects}} WHERE id IN ({_marks(len(group))})", group)
            return {r[0]: True for r in rows}
        out: set[int] = set()
        for i in range(0, len(ids), SCAN_BATCH):
            out |= set(await self._shards.per_shard(self._shards.by_shard(ids[i:i + SCAN_BATCH], lambda x: x), one))
        return out

    async def sweep_cache(self, needles: list[int]) -> int:
        """Delete every cache entry that names an id with no object in SQL (whatever it holds),
        or whose name or value names one of `needles`; returns how many. O(cache size) in time,
        constant in memory: the keys come from the tier `SCAN_BATCH` at a time, and each batch is
        judged (its ids checked in SQL, the values of the rest read) and swept before the next."""
        # memcached's metadump is best effort (it may miss items being bumped meanwhile): the
        # keys the store builds for the needles are deleted by name, whatever the scan saw.
        watched = set(needles)
        live_needles = await self._existing(list(watched)) if watched else set()
        await self._forget_known([n for n in needles if n not in live_needles])
        texts = [str(n).encode() for n in needles]
        swept = 0
        async for batch in self._cache.tier.scan_key_batches(SCAN_BATCH):
            keys = [k for _, k in batch]
            named = {i for k in keys for i in _ids_in_key(k)}
            live = await self._existing(sorted(named)) if named else set()
            doomed = [k for k in keys if any(i not in live or i in watched for i in _ids_in_key(k))]
            kept = set(doomed)
            rest = [k for k in keys if k not in kept]
            if texts and rest:
                values = await self._cache.tier.get_many(rest)
                doomed += [k for k, v in values.items() if any(t in repr(v).encode() for t in texts)]
            await self._cache.tier.forget_many(doomed)
            swept += len(doomed)
        return swept

    async def residue(self, ids: list[int], needles: list[int]) -> Residue:
        """Every row on every shard, and every cache key on every server, that names one of `ids`
        (objects, either end of an edge, count rows, tombstones, unique keys, cache key names) or
        holds one of `needles` in its data (object data, edge data, queued jobs, cached values,
        a unique key's key text)."""
        ids = list(dict.fromkeys([*ids, *needles]))
        out = Residue()
        marks = _marks(len(ids))
        likes = " OR ".join(["data LIKE %s"] * len(needles)) or "1 = 0"
        plikes = " OR ".join(["payload LIKE %s"] * len(needles)) or "1 = 0"
        klikes = " OR ".join(["k LIKE %s"] * len(needles)) or "1 = 0"
        pats = [f"%{n}%" for n in needles]
        queries: list[tuple[str, str, list]] = [
            ("objects", f"SELECT id, otype FROM {{objects}} WHERE id IN ({marks}) OR {likes}", [*ids, *pats]),
            ("assocs", f"SELECT id1, atype, id2 FROM {{assocs}} WHERE id1 IN ({marks}) OR id2 IN ({marks}) OR {likes}",
             [*ids, *ids, *pats]),
            ("assoc_counts", f"SELECT id1, atype, count FROM {{assoc_counts}} WHERE id1 IN ({marks})", ids),
            ("inverse_tombstones", f"SELECT id1, atype, id2 FROM {{inverse_tombstones}} "
                                   f"WHERE id1 IN ({marks}) OR id2 IN ({marks})", [*ids, *ids]),
            ("unique_keys", f"SELECT ns, k, id FROM {{unique_keys}} WHERE id IN ({marks}) OR {klikes}", [*ids, *pats]),
            ("outbox", f"SELECT id, handler FROM {{outbox}} WHERE {plikes}", pats),
        ]

        async def scan(shard: int, _: None) -> dict:
            found: list[tuple[int, str, tuple]] = []
            async with self._shards.read(shard) as conn:
                for table, sql, params in queries:
                    found += [(shard, table, tuple(r)) for r in await conn.fetchall(sql, params)]
            return {shard: found}

        per = await self._shards.per_shard({s: None for s in range(self._shards.n_shards)}, scan)
        for shard in sorted(per):
            out.rows += per[shard]
        # The cache, a batch at a time (memory does not grow with the cache; what is found does
        # with the residue): keys naming `ids`, then values holding `needles`.
        watched = set(ids)
        texts = [str(n).encode() for n in needles]
        async for batch in self._cache.tier.scan_key_batches(SCAN_BATCH):
            out.cache_keys += [(srv, k) for srv, k in batch if watched.intersection(_ids_in_key(k))]
            rest = {k: srv for srv, k in batch if not watched.intersection(_ids_in_key(k))}
            if texts and rest:
                values = await self._cache.tier.get_many(list(rest))
                out.cache_keys += [(rest[k], k) for k, v in values.items() if any(t in repr(v).encode() for t in texts)]
        # The scan is best effort (see sweep_cache): the known keys of `ids` are read by name too.
        seen = {k for _, k in out.cache_keys}
        for i in range(0, len(ids), FORGET_IDS):
            known = [k for k in self.known_keys(ids[i:i + FORGET_IDS]) if k not in seen]
            found = await self._cache.tier.get_many(known)
            out.cache_keys += [("get", k) for k in found]
        await asyncio.sleep(0)
        return out
