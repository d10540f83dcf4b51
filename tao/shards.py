"""Routing and transactions: which logical shard holds an id, one transaction on a shard (with
deadlock retry), reads on a shard, the same call on many shards in parallel, and the counters
the batching tests and benchmarks read (`Tao.stats()`).

Invariants kept here:
- every statement the store sends goes through `read` or `write`, so `sql_queries` counts them all
  (but the id lease's renewals, on their own schedule, which count as `id_lease_queries`);
- a failed shard's server is remembered for `AVOID_FAILED_SHARD_SECONDS`, and new objects with no
  owner are placed elsewhere meanwhile;
- `write` records the cache fence taken before its transaction (`write_fence`): installs made
  after the commit carry it, so the cache tier refuses them if their server had a fault since.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Literal, NamedTuple, TypeVar

from tao.backends.base import Backend, Conn
from tao.errors import DeadlockError, ShardUnavailableError, TaoError
from tao.ids import IdGenerator, check_id, shard_of
from tao.shardmap import ShardMap

T = TypeVar("T")
G = TypeVar("G")

# What a many-keys read does when a shard fails: "raise" the first failure, or "return" the
# exception instance in the slot of each key that shard held (a DataLoader hands it to just
# those keys).
Errors = Literal["raise", "return"]

DEADLOCK_RETRIES = 5
# How long after a shard fails new unowned objects are placed elsewhere (see placement_shard).
AVOID_FAILED_SHARD_SECONDS = 5.0

# The cache fence taken at the start of the current task's last write transaction. A ContextVar,
# because gather() runs each shard's part in its own task.
write_fence: ContextVar[int | None] = ContextVar("tao_write_fence", default=None)


class _CountingConn:
    """Counts statements (`sql_queries`) for the batching tests and benchmarks."""

    __slots__ = ("_conn", "_counters", "_counter", "shard")

    def __init__(self, conn: Conn, counters: dict[str, int], counter: str = "sql_queries") -> None:
        self._conn = conn
        self._counters = counters
        self._counter = counter
        self.shard = conn.shard

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._counters[self._counter] += 1
        return await self._conn.execute(sql, params)

    async def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._counters[self._counter] += 1
        await self._conn.queue(sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        self._counters[self._counter] += 1
        return await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._counters[self._counter] += 1
        return await self._conn.fetchall(sql, params)


class Ride(NamedTuple):
    """A statement that needs no answer and no round trip of its own: it goes with the COMMIT
    of the next transaction this process commits on its shard (`Shards.rider`), and `done`
    is told whether that transaction committed (False: it must be carried again)."""

    sql: str
    params: Sequence[Any]
    done: Callable[[bool], None]


class Shards:
    def __init__(self, backend: Backend, shard_map: ShardMap, cache_fence: Callable[[], int]) -> None:
        self.backend = backend
        # What a transaction on a shard carries with its COMMIT (`Ride`), if anything: the
        # outbox's done jobs (`Outbox.delete_soon`). Set by the outbox where the backend
        # batches statements (MariaDB); None: nothing rides.
        self.rider: Callable[[int], Ride | None] | None = None
        self.shard_map = shard_map
        self.ids = IdGenerator(server_of_shard=shard_map.server_of_shard)  # slots per server: tao/id_leases.py
        self.counters: dict[str, int] = defaultdict(int)
        self._cache_fence = cache_fence
        # shard -> monotonic time until which new unowned objects avoid it (it failed recently).
        self._avoid_until: dict[int, float] = {}

    # ---- routing ----------------------------------------------------------------------------

    @property
    def n_shards(self) -> int:
        return self.shard_map.n_shards

    def shard(self, id_: int) -> int:
        """The logical shard of a valid id (InvalidIdError otherwise)."""
        return shard_of(check_id(id_, self.n_shards))

    def placement_shard(self, exclude: Iterable[int] = ()) -> int | None:
        """The shard for a new object with no owner: any shard will do, so pick at random among
        those that have not failed in the last `AVOID_FAILED_SHARD_SECONDS` (all if every one
        has), leaving out `exclude` (shards this call already failed on). None: nothing left."""
        now = time.monotonic()
        excluded = set(exclude)
        candidates = [s for s in range(self.n_shards) if s not in excluded]
        live = [s for s in candidates if self._avoid_until.get(s, 0.0) <= now]
        return random.choice(live or candidates) if candidates else None

    def home_shard(self, owner: int | None) -> int:
        """The shard of a new object: its owner's, or for an object with no owner a live one."""
        if owner is not None:
            return self.shard(owner)
        shard = self.placement_shard()
        assert shard is not None  # nothing excluded: every shard is a candidate
        return shard

    def note_unavailable(self, shard: int) -> None:
        """Remember a failure of `shard`'s server: its other shards are down with it."""
        until = time.monotonic() + AVOID_FAILED_SHARD_SECONDS
        for s in self.shard_map.shards_on(self.shard_map.server_of_shard[shard]):
            self._avoid_until[s] = until

    def by_shard(self, items: Iterable[T], id_of: Callable[[T], int]) -> dict[int, list[T]]:
        groups: dict[int, list[T]] = defaultdict(list)
        for item in items:
            groups[self.shard(id_of(item))].append(item)
        return groups

    # ---- SQL --------------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self, shard: int) -> AsyncIterator[Conn]:
        """An autocommit connection to `shard` (each statement sees a committed snapshot)."""
        try:
            async with self.backend.connection(shard) as conn:
                yield _CountingConn(conn, self.counters)
        except ShardUnavailableError:
            self.note_unavailable(shard)
            raise

    async def write(self, shard: int, body: Callable[[Conn], Awaitable[T]], *, one_trip: bool = False,
                    counter: str = "sql_queries") -> T:
        """Run `body(conn)` in one transaction on `shard`, retrying deadlock victims.
        `one_trip`: see `Backend.transaction` (for a caller that never tries another shard).
        `counter`: where its statements are counted (the id lease's own count theirs apart)."""
        write_fence.set(self._cache_fence())
        for attempt in range(DEADLOCK_RETRIES):
            ride: Ride | None = None
            try:
                try:
                    async with self.backend.transaction(shard, one_trip=one_trip) as conn:
                        result = await body(_CountingConn(conn, self.counters, counter))
                        # Only a transaction that sends something anyway carries a ride
                        if self.rider is not None and getattr(conn, "writes_to_commit", False):
                            ride = self.rider(shard)
                            if ride is not None:
                                await conn.queue(ride.sql, ride.params)
                except BaseException:
                    if ride is not None:
                        ride.done(False)  # carried again (by another commit, or on its own)
                    raise
                if ride is not None:
                    ride.done(True)
                return result
            except ShardUnavailableError:
                self.note_unavailable(shard)
                raise
            except DeadlockError:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                self.counters["deadlock_retries"] += 1
                await asyncio.sleep(0.005 * (2 ** attempt))
        raise AssertionError("unreachable")

    async def write_one(self, shard: int, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement that commits on its own (affected rows): sent alone on an autocommit
        connection where the backend allows it (one round trip instead of BEGIN, it, COMMIT)."""
        if not self.backend.autocommit_writes:
            return await self.write(shard, lambda conn: conn.execute(sql, params))
        async with self.read(shard) as conn:
            return await conn.execute(sql, params)

    async def per_shard(self, groups: dict[int, G], fn: Callable[[int, G], Awaitable[dict]],
                        *, errors: Errors = "raise",
                        keys_of: Callable[[G], Iterable[Hashable]] | None = None) -> dict:
        """Run `fn(shard, group)` for every shard in parallel and merge the dicts they return.

        errors="raise": the first shard failure raises. errors="return": the keys of a failed
        shard (`keys_of(group)`) map to the exception instance instead."""
        shards = list(groups)
        results: list[Any]
        if len(shards) == 1:  # most calls: no task to wrap one coroutine in (a loop turn and its CPU)
            try:
                results = [await fn(shards[0], groups[shards[0]])]
            except Exception as exc:
                results = [exc]
        else:
            results = await asyncio.gather(*(fn(s, groups[s]) for s in shards), return_exceptions=True)
        out: dict = {}
        for shard, res in zip(shards, results):
            if isinstance(res, BaseException):
                if errors == "raise" or not isinstance(res, TaoError) or keys_of is None:
                    raise res
                for k in keys_of(groups[shard]):
                    out[k] = res
            else:
                out.update(res)
        return out

    async def ping_all(self) -> dict[int, str | None]:
        """{shard: None if healthy else the error}."""
        async def one(s: int) -> str | None:
            try:
                await self.backend.ping(s)
                return None
            except ShardUnavailableError as exc:
                self.note_unavailable(s)
                return str(exc)
        results = await asyncio.gather(*(one(s) for s in range(self.n_shards)))
        return dict(enumerate(results))
