"""The deployment's one clock: the store's time, not each process's wall clock.

Time windows that must agree across processes (a story is visible while `now < postedAt + 24 h`)
are decided by `tao.clock.now_ms()`. `StoreClock` reads the time of the database server that
holds logical shard 0 (`Backend.now_ms_sql`), once at open and again every `sync_seconds`, and
between reads extrapolates with the process's monotonic clock, so a read costs no round trip and
a process whose wall clock is wrong still agrees with every other process to within the round
trip of its last sample (a few ms) plus monotonic drift over `sync_seconds`.

Invariants: `now_ms()` never goes backwards within a process (a later sample that is behind is
absorbed by holding the clock until it catches up), and it never blocks. If shard 0's server is
unreachable the last sample keeps extrapolating; before any sample the wall clock stands in.

Tests inject `ManualClock` (`tao.clock = ManualClock(t)`), set it to an exact millisecond and
advance it, so "visible at +23:59:59.999, gone at +24:00:00.000" needs no sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

from tao.errors import TaoError

if TYPE_CHECKING:
    from tao.shards import Shards

log = logging.getLogger(__name__)

CLOCK_SHARD = 0  # the server holding this logical shard keeps the deployment's time


class Clock(Protocol):
    def now_ms(self) -> int: ...


class StoreClock:
    """The store's time: shard 0's database server, sampled every `sync_seconds`."""

    def __init__(self, shards: Shards, sync_seconds: float = 60.0) -> None:
        self._shards = shards
        self._sync_ns = int(sync_seconds * 1e9)
        self._base_ms: float | None = None  # the server's time at the sample
        self._base_mono = 0  # the monotonic clock (ns) at the sample
        self._last = 0  # the highest value handed out: the clock never goes back
        self._syncing: asyncio.Task | None = None

    async def sync(self) -> None:
        """Sample the server's time (half the round trip is the error bound)."""
        try:
            t0 = time.monotonic_ns()
            async with self._shards.read(CLOCK_SHARD) as conn:
                rows = await conn.fetchall(self._shards.backend.now_ms_sql)
            t1 = time.monotonic_ns()
        except TaoError as exc:
            log.warning("store clock: could not read the time of shard %d (%s); extrapolating", CLOCK_SHARD, exc)
            return
        self._base_ms, self._base_mono = float(rows[0][0]), (t0 + t1) // 2

    def now_ms(self) -> int:
        mono = time.monotonic_ns()
        if self._base_ms is None:
            now = int(time.time() * 1000)
        else:
            now = int(self._base_ms + (mono - self._base_mono) / 1e6)
            if mono - self._base_mono > self._sync_ns:
                self._resync()
        if now < self._last:
            return self._last
        self._last = now
        return now

    async def close(self) -> None:
        """Stop a resync in flight (the store is closing)."""
        if self._syncing is not None and not self._syncing.done():
            self._syncing.cancel()
            try:
                await self._syncing
            except (asyncio.CancelledError, Exception):
                pass

    def _resync(self) -> None:
        if self._syncing is not None and not self._syncing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._syncing = loop.create_task(self.sync())


class ManualClock:
    """A clock that moves only when told (tests): `set(ms)`, `advance(ms)`."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = int(time.time() * 1000) if start_ms is None else start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        self._now = ms

    def advance(self, ms: int) -> None:
        self._now += ms

    async def sync(self) -> None:
        return None
