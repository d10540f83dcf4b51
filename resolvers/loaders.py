"""Per-request DataLoaders: every read of the store made while resolving GraphQL goes through one.

Sibling fields that `load()` in the same event-loop tick are collected into one batch, and each
batch function makes one call to the store's many-keys API (one cache round trip per memcached
server, one SQL query per shard for the misses). So a query's round trips grow with its depth,
not with the number of items it returns.

Invariants: a batch function answers one value per key, in key order: the value, `None` for a
missing key, or an exception instance for that key alone. Every store call here asks for the
store's per-key error mode (`errors="return"`), so a key whose shard is down fails alone, with
the domain's error (`resolvers.errors.domain_error`): a query whose data spans two servers
answers the fields on the live one and `UNAVAILABLE` on the others. Loaders cache for one
operation only (`RequestContext.reset_loaders`), and a mutation field starts with fresh ones
(`schema.mutations`), so its payload reads its own write.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from aiodataloader import DataLoader

from resolvers.errors import domain_error
from resolvers.records import record_of
from tao import Assoc, Obj, Tao
from tao.types import REGISTRY

AssocKey = tuple[int, str, int]           # (id1, atype, id2)
ListKey = tuple[int, str]                 # (id1, atype)
# (id1, atype, limit, after): a keyset page of a list; after is a (time, id2) cursor or None.
PageKey = tuple[int, str, int, tuple[int, int] | None]


def _each(found: dict, keys: list, missing: Any = None) -> list:
    """One answer per key from a many-keys answer: the value, `missing`, or the domain's error."""
    out = []
    for k in keys:
        value = found.get(k, missing)
        out.append(domain_error(value) if isinstance(value, Exception) else value)
    return out


async def load_each(loader: DataLoader, keys: list) -> list:
    """`loader.load_many(keys)`, except that a key that failed answers its exception instead of
    failing the others (for batch functions built on other loaders)."""
    if isinstance(loader, _StoreLoader) and (done := loader.finished(keys)) is not None:
        return [f.exception() or f.result() for f in done]
    return list(await asyncio.gather(*(loader.load(k) for k in keys), return_exceptions=True))


class _StoreLoader(DataLoader):
    def __init__(self, loaders: Loaders) -> None:
        self._futures: dict[Any, asyncio.Future] = {}  # this request's loads, by key (aiodataloader's cache)
        super().__init__(cache_map=self._futures)
        # A weak reference: `Loaders` holds its loaders, so a strong one back would make every
        # request's loaders (and the futures they cache) a cycle that only the garbage
        # collector frees, and its passes would land inside later requests.
        self._loaders = weakref.ref(loaders)
        self.tao = loaders.tao

    def finished(self, keys: list) -> list[asyncio.Future] | None:
        """The futures of `keys` if this request has loaded every one of them already, else None."""
        futures = [self._futures.get(k) for k in keys]
        return futures if all(f is not None and f.done() for f in futures) else None  # type: ignore[return-value]

    def load_many(self, keys: Iterable[Any]) -> asyncio.Future:
        """DataLoader's `load_many`; keys this request has all loaded before answer at once (a
        page's second look at its authors, say), without a gather and its callbacks."""
        keys = list(keys)
        if (done := self.finished(keys)) is None:
            return super().load_many(keys)
        answer = asyncio.get_running_loop().create_future()
        if failed := next((f.exception() for f in done if f.exception() is not None), None):
            answer.set_exception(failed)
        else:
            answer.set_result([f.result() for f in done])
        return answer

    @property
    def loaders(self) -> Loaders:
        loaders = self._loaders()
        if loaders is None:
            raise RuntimeError("this request's loaders are gone: a loader outlived its request")
        return loaders


class ObjectByIdLoader(_StoreLoader):
    """id -> the object's record (`resolvers.records`), or None when missing or deleted (`obj_get`)."""

    async def batch_load_fn(self, keys: list[int]) -> list[Any]:
        found = await self.tao.obj_get(keys, errors="return")
        return _each({k: v if isinstance(v, Exception) else record_of(v) for k, v in found.items()}, keys)


class UserIdByUsernameLoader(_StoreLoader):
    """lower-cased username -> user id, or None (`key_get_many("username", ...)`)."""

    async def batch_load_fn(self, keys: list[str]) -> list[int | None]:
        return _each(await self.tao.key_get_many("username", list(keys), errors="return"), keys)


class AssocByKeyLoader(_StoreLoader):
    """(id1, atype, id2) -> Assoc, or None when there is no such edge (`assoc_get_many`)."""

    async def batch_load_fn(self, keys: list[AssocKey]) -> list[Assoc | None]:
        return _each(await self.tao.assoc_get_many(list(keys), errors="return"), keys)


class AssocCountByKeyLoader(_StoreLoader):
    """(id1, atype) -> exact count of the list (`assoc_count_many`)."""

    async def batch_load_fn(self, keys: list[ListKey]) -> list[int]:
        return _each(await self.tao.assoc_count_many(list(keys), errors="return"), keys, 0)


class AssocPageByKeyLoader(_StoreLoader):
    """(id1, atype, limit, after) -> the newest-first keyset page (`assoc_time_range_many`).

    The many-keys call takes one (limit, after) for all its keys, so keys are grouped by those:
    the common case (the first page of many lists of one size) is still one call.
    """

    async def batch_load_fn(self, keys: list[PageKey]) -> list[list[Assoc]]:
        groups: dict[tuple[int, Any], list[ListKey]] = defaultdict(list)
        for id1, atype, limit, after in keys:
            groups[(limit, after)].append((id1, atype))
        pages: dict[PageKey, list[Assoc]] = {}
        for (limit, after), lists in groups.items():
            found = await self.tao.assoc_time_range_many(lists, limit=limit, after=after, errors="return")
            for id1, atype in lists:
                pages[(id1, atype, limit, after)] = found.get((id1, atype), [])
        return _each(pages, keys)


class VisibilityByUserIdLoader(_StoreLoader):
    """user id -> what the viewer may see of that user (`resolvers.privacy.Visibility`)."""

    async def batch_load_fn(self, keys: list[int]) -> list[Any]:
        from resolvers.privacy import user_visibility_batch  # privacy builds on these loaders

        return await user_visibility_batch(self.loaders, list(keys))


class Loaders:
    """One request's loaders, created on first use."""

    def __init__(self, tao: Tao, viewer_id: int | None = None) -> None:
        self.tao = tao
        self.viewer_id = viewer_id

    @cached_property
    def object_by_id(self) -> ObjectByIdLoader:
        return ObjectByIdLoader(self)

    @cached_property
    def user_id_by_username(self) -> UserIdByUsernameLoader:
        return UserIdByUsernameLoader(self)

    @cached_property
    def assoc_by_key(self) -> AssocByKeyLoader:
        return AssocByKeyLoader(self)

    @cached_property
    def assoc_count_by_key(self) -> AssocCountByKeyLoader:
        return AssocCountByKeyLoader(self)

    @cached_property
    def assoc_page_by_key(self) -> AssocPageByKeyLoader:
        return AssocPageByKeyLoader(self)

    @cached_property
    def visibility_by_user_id(self) -> VisibilityByUserIdLoader:
        return VisibilityByUserIdLoader(self)

    def prime_object(self, obj: Obj) -> Any:
        """After writing `obj`: cache its record for the rest of this request; returns the record."""
        record = record_of(obj)
        self.object_by_id.clear(obj.id).prime(obj.id, record)
        return record

    def forget_user(self, user_id: int) -> None:
        """Drop what this request cached about a user after writing it (own-write reads)."""
        self.object_by_id.clear(user_id)
        self.visibility_by_user_id.clear(user_id)

    def forget_edges(self, *keys: AssocKey) -> None:
        """Drop cached edges, their lists' counts and pages, and the visibility they decide."""
        for id1, atype, id2 in keys:
            inverse = REGISTRY.atype(atype).inverse or REGISTRY.atype(atype).derived_from
            for a, t, b in ((id1, atype, id2), (id2, inverse, id1)):
                if t is not None:
                    self.assoc_by_key.clear((a, t, b))
                    self.assoc_count_by_key.clear((a, t))
            self.visibility_by_user_id.clear(id1)
            self.visibility_by_user_id.clear(id2)
        # Pages are keyed by cursor too; after a write, drop them all (a mutation reads few).
        self.assoc_page_by_key.clear_all()
