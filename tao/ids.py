"""64-bit ids that carry their logical shard, so `shard_of(id)` needs no lookup, and that no two
processes can make alike.

Layout: 41 bits of milliseconds since `EPOCH_MS`, 13 bits of logical shard, 5 bits of the
making process's *slot*, 5 bits of sequence. Ids are roughly time-ordered. The low 10 bits were
one per-process sequence until the thirteenth session; `shard_of` reads the same bits as it
always did, so every id made before stays valid.

Invariant: an id is made by the one process holding its slot, and that process's ids are
distinct (a sequence per logical shard within a millisecond). Slots are leased from the store
(`tao/id_leases.py`): each lease ends at a time E (ms, the store's clock) written in its row, a
holder never makes an id whose millisecond is E or later (`fence`), and the next holder of the
slot never makes one before E (`floor`). So two processes never make the same id, whatever
their clocks say, and a process paused past its lease cannot collide with the one that took its
slot over: its ids stop at the fence until it has a lease again.

A sequence that wraps (32 ids in one millisecond on one shard) borrows the next millisecond,
so a burst runs ahead of the clock by (ids on the shard) / 32 ms; up to the fence, which a
renewed lease keeps at least two thirds of a lease ahead. `next_id` is synchronous and never
waits: with no lease, or at the fence, it raises `IdLeaseLostError` and asks the lease to renew.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tao.errors import IdLeaseLostError, InvalidIdError

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TIME_BITS = 41
SHARD_BITS = 13
SLOT_BITS = 5
SEQ_BITS = 5
LOW_BITS = SLOT_BITS + SEQ_BITS  # below the shard: 10, as in the first layout, so shard_of is unchanged
MAX_SHARDS = 1 << SHARD_BITS
N_SLOTS = 1 << SLOT_BITS  # processes holding a slot at once
SEQ_PER_MS = 1 << SEQ_BITS  # ids per millisecond, per shard, per process before it borrows the next ms
# Signed 64-bit, as both SQL backends store it; the time bits reach bit 63 only after 2059.
MAX_ID = (1 << 63) - 1


def make_id(ms: int, shard: int, seq: int, slot: int = 0) -> int:
    low = ((slot & (N_SLOTS - 1)) << SEQ_BITS) | (seq & (SEQ_PER_MS - 1))
    return ((ms - EPOCH_MS) << (SHARD_BITS + LOW_BITS)) | (shard << LOW_BITS) | low


def shard_of(id_: int) -> int:
    return (id_ >> LOW_BITS) & (MAX_SHARDS - 1)


def slot_of(id_: int) -> int:
    """The slot of the process that made the id (meaningless for ids made before slots)."""
    return (id_ >> SEQ_BITS) & (N_SLOTS - 1)


def time_of(id_: int) -> int:
    """The id's creation time in ms since the Unix epoch."""
    return (id_ >> (SHARD_BITS + LOW_BITS)) + EPOCH_MS


def check_id(id_: object, n_shards: int) -> int:
    """Return the id if it is a valid id on one of `n_shards` logical shards, else raise InvalidIdError."""
    if isinstance(id_, bool) or not isinstance(id_, int) or not 0 < id_ <= MAX_ID:
        raise InvalidIdError(f"{id_!r} is not a taogram id (a positive signed 64-bit integer)")
    if shard_of(id_) >= n_shards:
        raise InvalidIdError(f"id {id_} names logical shard {shard_of(id_)}, but there are only {n_shards}")
    return id_


def _wall_ms() -> int:
    return int(time.time() * 1000)


class IdGenerator:
    """Thread-safe; one per process (per open store). Makes ids only while it holds a slot:
    `lease(slot, floor, fence)` from `tao/id_leases.py`, or `IdGenerator(slot=...)` for a
    process that owns a slot by other means (a test, a tool on a store no one else writes)."""

    def __init__(self, now_ms: Callable[[], int] = _wall_ms, *, slot: int | None = None) -> None:
        self._lock = threading.Lock()
        self.now_ms = now_ms  # the store's clock once the store is open (`Tao` sets it)
        self._slot = slot
        self._floor = 0  # no id below this ms: the previous holder's fence
        self._fence = 1 << 62 if slot is not None else 0  # no id at or above this ms: the lease's end
        self._last: dict[int, tuple[int, int]] = {}  # shard -> (ms, seq) of the last id made on it
        # Called (with no lock held, never awaited) when an id is refused: the lease renews now.
        self.on_refused: Callable[[], None] | None = None

    @property
    def slot(self) -> int | None:
        return self._slot

    @property
    def fence(self) -> int:
        return self._fence

    def next_id(self, shard: int) -> int:
        if not 0 <= shard < MAX_SHARDS:
            raise InvalidIdError(f"logical shard {shard} is out of range")
        with self._lock:
            slot, fence = self._slot, self._fence
            last_ms, last_seq = self._last.get(shard, (-1, 0))
            ms = max(self.now_ms(), self._floor, last_ms)  # never back in time on a shard
            seq = 0
            if ms == last_ms:
                seq = last_seq + 1
                if seq == SEQ_PER_MS:  # wrapped within one millisecond: borrow the next one
                    ms, seq = ms + 1, 0
            if slot is not None and ms < fence:
                self._last[shard] = (ms, seq)
                return make_id(ms, shard, seq, slot)
        if self.on_refused is not None:
            self.on_refused()
        if slot is None:
            raise IdLeaseLostError("this process holds no id slot (the store is closed, or its lease was "
                                   "lost and is being taken again): retry shortly")
        raise IdLeaseLostError(f"id slot {slot}'s lease ended at {fence} ms (the process was paused, or "
                               "shard 0's server was unreachable, for longer than store.id_lease_seconds); "
                               "it is being renewed: retry shortly")

    def lease(self, slot: int, floor_ms: int, fence_ms: int) -> None:
        """Make ids with `slot` (just taken: its row's old end is `floor_ms`), at `floor_ms` or
        later and before `fence_ms`. The sequences start afresh above every id this process made
        before, so its ids stay ordered, even when it takes back the slot it lost."""
        with self._lock:
            made = max((ms for ms, _ in self._last.values()), default=-1)
            self._floor = max(floor_ms, made + 1, self._floor)
            self._last.clear()
            self._slot, self._fence = slot, fence_ms

    def extend(self, slot: int, fence_ms: int) -> None:
        """The lease of `slot` was renewed up to `fence_ms` (a fence never moves back)."""
        with self._lock:
            if slot == self._slot:
                self._fence = max(self._fence, fence_ms)

    def revoke(self) -> int:
        """Stop making ids (the lease is being released); returns the ms above every id made:
        the floor for the slot's next holder."""
        with self._lock:
            self._slot, self._fence = None, 0
            return max([self._floor] + [ms + 1 for ms, _ in self._last.values()])
