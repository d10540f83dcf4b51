"""64-bit ids that carry their logical shard, so `shard_of(id)` needs no lookup, and that no two
processes can make alike.

Layout: 41 bits of milliseconds since `EPOCH_MS`, 13 bits of logical shard, 8 bits of the
making process's *slot*, 2 bits of sequence. Ids are roughly time-ordered. The low 10 bits were
one per-process sequence until the thirteenth session; `shard_of` reads the same bits as it
always did, so every id made before stays valid.

Invariant: an id is made by the one process holding its slot, and that process's ids are
distinct (a sequence per logical shard and millisecond). Slots are leased from the store
(`tao/id_leases.py`): each lease ends at a time E (ms, the store's clock) written in its row, a
holder never makes an id whose millisecond is E or later (its `fence`), and the next holder of
the slot never makes one before E (its `floor`). So two processes never make the same id,
whatever their clocks say, and a process paused past its lease cannot collide with the one that
took its slot over: its ids stop at the fence until it has a lease again.

A sequence that wraps (4 ids in one millisecond on one shard) borrows the next millisecond, so
a burst on one shard runs ahead of the clock by a quarter of a ms an id (`obj_add_many`'s 5 000
on one owner's shard: 1.25 s). An id made within half a lease of the fence asks the lease to
renew at once, and a renewal puts the fence a lease beyond the highest id made, so a batch job
can run ahead as far as it needs. `next_id` is synchronous and never waits: with no lease, or
at the fence, it raises `IdLeaseLostError` (and asks for the renewal).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tao.errors import IdLeaseLostError, InvalidIdError

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TIME_BITS = 41
SHARD_BITS = 13
SLOT_BITS = 8
SEQ_BITS = 2
LOW_BITS = SLOT_BITS + SEQ_BITS  # below the shard: 10, as in the first layout, so shard_of is unchanged
MAX_SHARDS = 1 << SHARD_BITS
N_SLOTS = 1 << SLOT_BITS  # 256: processes holding a slot at once (why 8 + 2: docs/sharding.md, "Ids")
SEQ_PER_MS = 1 << SEQ_BITS  # 4: ids per millisecond, per shard, per process before it borrows the next ms
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
        self._high = -1  # the highest ms of an id made with this lease
        # Called (with no lock held, never awaiting) when an id is refused, or made within
        # `renew_within` ms of the fence (a burst running ahead of the clock): renew now.
        self.on_renew: Callable[[], None] | None = None
        self.renew_within = 0
        self._asked = -1  # the fence for which on_renew was last called

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
            made = slot is not None and ms < fence
            if made:
                self._last[shard] = (ms, seq)
                self._high = max(self._high, ms)
            ask = (not made or ms >= fence - self.renew_within) and self._asked != fence
            if ask:
                self._asked = fence  # once per fence: a burst does not ask at every id
        if ask and self.on_renew is not None:
            self.on_renew()
        if made:
            assert slot is not None
            return make_id(ms, shard, seq, slot)
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
            self._high = self._floor - 1
            self._slot, self._fence = slot, fence_ms

    def extend(self, slot: int, fence_ms: int) -> None:
        """The lease of `slot` was renewed up to `fence_ms` (a fence never moves back)."""
        with self._lock:
            if slot == self._slot:
                self._fence = max(self._fence, fence_ms)

    @property
    def high_ms(self) -> int:
        """The highest ms of an id made with the current lease (its floor - 1 before any): a
        renewal keeps the fence a lease beyond it, so a burst that ran ahead can go on."""
        return self._high

    def revoke(self) -> int:
        """Stop making ids (the lease is being released); returns the ms above every id made:
        the floor for the slot's next holder."""
        with self._lock:
            self._slot, self._fence = None, 0
            return max(self._floor, self._high + 1)
