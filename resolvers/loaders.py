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

from resolvers.errors import domain_error
from resolvers.records import User, record_of
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


async def load_each(loader: Any, keys: list) -> list:
    """`loader.load_many(keys)`, except that a key that failed answers its exception instead of
    failing the others (for batch functions built on other loaders)."""
    if isinstance(loader, _StoreLoader):
        return await loader.load_each(keys)
    return list(await asyncio.gather(*(loader.load(k) for k in keys), return_exceptions=True))


class _Batch:
    """Keys queued for one call of a loader's batch function, and the future it settles."""

    __slots__ = ("keys", "done", "values", "error")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.keys: list[Any] = []
        self.done: asyncio.Future[None] = loop.create_future()
        self.values: dict[Any, Any] = {}
        self.error: BaseException | None = None


_NOT_LOADED: Any = object()


class _StoreLoader:
    """A DataLoader (the same contract as aiodataloader's: `load`, `load_many`, `prime`, `clear`,
    `clear_all`; keys loaded in the same few event-loop ticks go to one `batch_load_fn` call)
    that costs one future per *call* rather than one per key. A page's builder asks for 20-60
    keys at a time (`load_each`); with a future, a done-callback and a gather slot per key that
    was ~1 000 event-loop callbacks per profile page (docs/BENCHMARKS.md, issue 16).

    A key's answer is its value, or an exception instance for that key alone (raised by `load`,
    returned by `load_each`). A batch function that raises fails its whole batch, and those keys
    are not remembered (a later load retries them), as aiodataloader does."""

    def __init__(self, loaders: Loaders) -> None:
        self._answers: dict[Any, Any] = {}  # this request's loaded keys
        self._pending: dict[Any, _Batch] = {}  # keys queued or in flight, and their batch
        self._queue: _Batch | None = None
        # A weak reference: `Loaders` holds its loaders, so a strong one back would make every
        # request's loaders (and what they cache) a cycle that only the garbage collector
        # frees, and its passes would land inside later requests.
        self._loaders = weakref.ref(loaders)
        self.tao = loaders.tao

    async def batch_load_fn(self, keys: list) -> list:
        raise NotImplementedError

    @property
    def loaders(self) -> Loaders:
        loaders = self._loaders()
        if loaders is None:
            raise RuntimeError("this request's loaders are gone: a loader outlived its request")
        return loaders

    # -- loading

    async def load_each(self, keys: list) -> list:
        """One answer per key, a failed key's exception in its slot (keys loaded before answer
        at once, without a future)."""
        batches = self._batches_for(keys)
        for batch in batches:
            await batch.done
        return [self._answer(k, batches) for k in keys]

    def load(self, key: Any) -> asyncio.Future:
        return self._future(key, single=True)

    def prefetch(self, keys: Iterable[Any]) -> None:
        """Queue the keys not loaded yet into the coming batch, answering no one: a caller that
        knows what a later step will load lets those reads ride in this round (a later `load`
        of them is answered from the request's cache, or joins their batch in flight). A
        failed batch is not remembered, as for `load`: the later `load` reads again."""
        self._batches_for(keys)

    def load_many(self, keys: Iterable[Any]) -> asyncio.Future:
        """The keys' values in order; fails with the first failed key's exception."""
        return self._future(list(keys), single=False)

    def _future(self, key_or_keys: Any, single: bool) -> asyncio.Future:
        keys = [key_or_keys] if single else key_or_keys
        out: asyncio.Future = asyncio.get_running_loop().create_future()
        batches = self._batches_for(keys)
        if not batches:
            self._settle(out, keys, batches, single)
            return out
        remaining = [len(batches)]

        def one_done(_: Any) -> None:
            remaining[0] -= 1
            if remaining[0] == 0 and not out.done():
                self._settle(out, keys, batches, single)
        for batch in batches:
            batch.done.add_done_callback(one_done)
        return out

    def _settle(self, out: asyncio.Future, keys: list, batches: dict[_Batch, None], single: bool) -> None:
        answers = [self._answer(k, batches) for k in keys]
        failed = next((a for a in answers if isinstance(a, Exception)), None)
        if failed is not None:
            out.set_exception(failed)
        else:
            out.set_result(answers[0] if single else answers)

    def _answer(self, key: Any, batches: dict[_Batch, None]) -> Any:
        answer = self._answers.get(key, _NOT_LOADED)
        if answer is not _NOT_LOADED:
            return answer
        # Cleared since its batch answered (a write in this request), or its batch failed.
        for batch in batches:
            if key in batch.values:
                return batch.values[key]
        error = next((b.error for b in batches if b.error is not None), None)
        return error if isinstance(error, Exception) else RuntimeError(f"key {key!r} was not loaded")

    def _batches_for(self, keys: Iterable[Any]) -> dict[_Batch, None]:
        """The batches that will answer the keys not loaded yet (queueing those nobody asked for)."""
        answers, pending = self._answers, self._pending
        batches: dict[_Batch, None] = {}
        for key in keys:
            if key in answers:
                continue
            batch = pending.get(key)
            if batch is None:
                batch = self._queue
                if batch is None:
                    loop = asyncio.get_running_loop()
                    batch = self._queue = _Batch(loop)
                    loop.call_soon(self._close_queue, loop)
                batch.keys.append(key)
                pending[key] = batch
            batches[batch] = None
        return batches

    # -- dispatching: the queue closes two loop iterations after its first key, and its batch
    # runs in the next (aiodataloader's timing: sibling fields resolving in those iterations
    # join the batch).

    def _close_queue(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon(self._dispatch, loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._queue = self._queue, None
        if batch is not None:
            loop.create_task(self._run(batch))

    async def _run(self, batch: _Batch) -> None:
        keys = batch.keys
        try:
            values = list(await self.batch_load_fn(keys))
            if len(values) != len(keys):
                raise TypeError(f"{type(self).__name__}.batch_load_fn answered {len(values)} values "
                                f"for {len(keys)} keys")
        except BaseException as exc:
            batch.error = exc
            for key in keys:
                if self._pending.get(key) is batch:
                    del self._pending[key]
            batch.done.set_result(None)
            if not isinstance(exc, Exception):
                raise
            return
        batch.values = dict(zip(keys, values))
        for key, value in batch.values.items():
            if self._pending.get(key) is batch:  # not cleared (or cleared and queued again) meanwhile
                del self._pending[key]
                self._answers[key] = value
        batch.done.set_result(None)

    # -- the request's cache

    def prime(self, key: Any, value: Any) -> _StoreLoader:
        """Answer `key` with `value` for the rest of the request, unless it is loaded or loading."""
        if key not in self._answers and key not in self._pending:
            self._answers[key] = value
        return self

    def clear(self, key: Any) -> _StoreLoader:
        self._answers.pop(key, None)
        self._pending.pop(key, None)
        return self

    def clear_all(self) -> _StoreLoader:
        self._answers.clear()
        self._pending.clear()
        return self


# Records of these types hold only immutable values (str, int, enums, tuples of them, frozen
# records), and an object's (id, version) names one content forever (every write bumps the
# version), so one decoded record serves every request of the process that reads that version:
# a page's 100-odd users, posts and comments are not decoded again per request, nor the story
# tray's ~60 avatars and story media (a media record's renditions are read-only mappings).
_SHARED_TYPES = frozenset({"USER", "POST", "COMMENT", "STORY", "MEDIA"})
SHARED_RECORDS_MAX = 50_000
_SHARED: weakref.WeakKeyDictionary[Tao, dict[tuple[int, int], Any]] = weakref.WeakKeyDictionary()


def shared_record(tao: Tao, obj: Obj) -> Any:
    """`record_of(obj)`, the same instance for every read of this version of the object."""
    if obj.otype not in _SHARED_TYPES:
        return record_of(obj)
    memo = _SHARED.get(tao)
    if memo is None:
        memo = _SHARED.setdefault(tao, {})
    key = (obj.id, obj.version)
    record = memo.get(key)
    if record is None:
        record = record_of(obj)
        if len(memo) >= SHARED_RECORDS_MAX:
            memo.pop(next(iter(memo)), None)  # the oldest decoded: the memo only saves work
        memo[key] = record
    return record


class ObjectByIdLoader(_StoreLoader):
    """id -> the object's record (`resolvers.records`), or None when missing or deleted (`obj_get`)."""

    async def batch_load_fn(self, keys: list[int]) -> list[Any]:
        found = await self.tao.obj_get(keys, errors="return")
        tao = self.tao
        return _each({k: v if isinstance(v, Exception) else shared_record(tao, v) for k, v in found.items()}, keys)


class UserIdByUsernameLoader(_StoreLoader):
    """lower-cased username -> user id, or None (`key_get_many("username", ...)`). A name that
    an account holds after renaming away from it (`resolvers.usernames`) resolves to nobody:
    the holder is read (through `object_by_id`, which the caller reads next anyway) and must
    still bear the name."""

    async def batch_load_fn(self, keys: list[str]) -> list[int | None]:
        ids = _each(await self.tao.key_get_many("username", list(keys), errors="return"), keys)
        found = [i for i in ids if isinstance(i, int)]
        users = dict(zip(found, await self.loaders.object_by_id.load_each(found), strict=True))
        out: list = []
        for key, uid in zip(keys, ids, strict=True):
            if isinstance(uid, int):
                user = users.get(uid)
                if not isinstance(user, Exception) and not (isinstance(user, User) and user.username.lower() == key):
                    uid = None  # held after a rename, or the account is gone (a failed read: as it was)
            out.append(uid)
        return out


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
        # The groups' calls together: their cache reads go out in one round trip, not one a group
        # (a thread's member list and the viewer's block lists, say, are pages of two sizes).
        shapes = list(groups.items())
        if len(shapes) == 1:
            (limit, after), lists = shapes[0]
            founds = [await self.tao.assoc_time_range_many(lists, limit=limit, after=after, errors="return")]
        else:
            founds = await asyncio.gather(*(self.tao.assoc_time_range_many(lists, limit=limit, after=after,
                                                                           errors="return")
                                            for (limit, after), lists in shapes))
        pages: dict[PageKey, list[Assoc]] = {}
        for ((limit, after), lists), found in zip(shapes, founds):
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
