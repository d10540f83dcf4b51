"""64-bit ids that carry their logical shard, so `shard_of(id)` needs no lookup, and that no two
processes can make alike.

Layout: 41 bits of milliseconds since `EPOCH_MS`, 13 bits of logical shard, 8 bits of the
making process's *slot*, 2 bits of sequence. Ids are roughly time-ordered. The low 10 bits were
one per-process sequence until the thirteenth session; `shard_of` reads the same bits as it
always did, so every id made before stays valid.

Invariant: an id for logical shard s is made by the one process holding its slot on s's
database server, and that process's ids are distinct (a sequence per logical shard and
millisecond). Slots are leased per server (`tao/id_leases.py`), so a server that is down only
stops ids for its own shards: each lease ends at a time E (ms, that server's clock) written in
its row, a holder never makes an id whose millisecond is E or later (its `fence`), and the next
holder of the slot on that server never makes one before E (its `floor`). Two processes with
the same slot number on different servers make ids for different shards, so their ids differ
in the shard bits. So two processes never make the same id, whatever their clocks say, and a
process paused past its lease cannot collide with the one that took its slot over: its ids
stop at the fence until it has a lease again.

A sequence that wraps (4 ids in one millisecond on one shard) borrows the next millisecond, so
a burst on one shard runs ahead of the clock by a quarter of a ms an id (`obj_add_many`'s 5 000
on one owner's shard: 1.25 s). An id made within half a lease of its server's fence asks that
lease to renew at once, and a renewal puts the fence a lease beyond the highest id made with
it, so a batch job can run ahead as far as it needs. `next_id` is synchronous and never waits:
with no lease on the shard's server, or at its fence, it raises `IdLeaseLostError` (and asks
for the renewal).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

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


class _Lease:
    """One server's slot, as the generator sees it."""

    __slots__ = ("slot", "floor", "fence", "high", "asked")

    def __init__(self, slot: int | None = None, fence: int = 0) -> None:
        self.slot = slot
        self.floor = 0  # no id below this ms: the previous holder's fence
        self.fence = fence  # no id at or above this ms: the lease's end
        self.high = -1  # the highest ms of an id made with this lease
        self.asked = -1  # the fence for which on_renew was last called


class IdGenerator:
    """Thread-safe; one per process (per open store). Makes an id for a shard only while it
    holds a slot on that shard's server: `lease(slot, floor, fence, server=)` from
    `tao/id_leases.py`, or `IdGenerator(slot=...)` for a process that owns a slot on every
    server by other means (a test, a tool on a store no one else writes).

    `server_of_shard` is the shard map's logical shard -> server index (`ShardMap`); without it
    every shard of `MAX_SHARDS` is on one server, 0 (SQLite, tests)."""

    def __init__(self, now_ms: Callable[[], int] = _wall_ms, *, slot: int | None = None,
                 server_of_shard: Sequence[int] = ()) -> None:
        self._lock = threading.Lock()
        self.now_ms = now_ms  # the store's clock once the store is open (`Tao` sets it)
        self._server_of = tuple(server_of_shard) or (0,) * MAX_SHARDS
        fence = 1 << 62 if slot is not None else 0
        self._leases = [_Lease(slot, fence) for _ in range(max(self._server_of) + 1)]  # by server index
        self._last: dict[int, tuple[int, int]] = {}  # shard -> (ms, seq) of the last id made on it
        # Called with the server (with no lock held, never awaiting) when an id is refused, or
        # made within `renew_within` ms of the fence (a burst running ahead of the clock): renew now.
        self.on_renew: Callable[[int], None] | None = None
        self.renew_within = 0

    def server_of(self, shard: int) -> int:
        return self._server_of[shard]

    def slot_on(self, server: int = 0) -> int | None:
        """The slot this process holds on `server` (None: none now)."""
        return self._leases[server].slot

    def fence_on(self, server: int = 0) -> int:
        return self._leases[server].fence

    def next_id(self, shard: int) -> int:
        if not 0 <= shard < len(self._server_of):
            raise InvalidIdError(f"logical shard {shard} is out of range")
        server = self._server_of[shard]
        with self._lock:
            lease = self._leases[server]
            slot, fence = lease.slot, lease.fence
            last_ms, last_seq = self._last.get(shard, (-1, 0))
            ms = max(self.now_ms(), lease.floor, last_ms)  # never back in time on a shard
            seq = 0
            if ms == last_ms:
                seq = last_seq + 1
                if seq == SEQ_PER_MS:  # wrapped within one millisecond: borrow the next one
                    ms, seq = ms + 1, 0
            made = slot is not None and ms < fence
            if made:
                self._last[shard] = (ms, seq)
                if ms > lease.high:
                    lease.high = ms
            ask = (not made or ms >= fence - self.renew_within) and lease.asked != fence
            if ask:
                lease.asked = fence  # once per fence: a burst does not ask at every id
        if ask and self.on_renew is not None:
            self.on_renew(server)
        if made:
            assert slot is not None
            return make_id(ms, shard, seq, slot)
        if slot is None:
            raise IdLeaseLostError(f"this process holds no id slot on server {server} (logical shard {shard}'s: "
                                   "it was unreachable, or the store is closed, or the lease was lost and is "
                                   "being taken again): retry shortly")
        raise IdLeaseLostError(f"id slot {slot}'s lease on server {server} (logical shard {shard}'s) ended at "
                               f"{fence} ms (the process was paused, or that server was unreachable, for longer "
                               "than store.id_lease_seconds); it is being renewed: retry shortly")

    def lease(self, slot: int, floor_ms: int, fence_ms: int, *, server: int = 0) -> None:
        """Make ids for `server`'s shards with `slot` (just taken: its row's old end is
        `floor_ms`), at `floor_ms` or later and before `fence_ms`. Their sequences start afresh
        above every id this process made on them before, so its ids stay ordered, even when it
        takes back the slot it lost."""
        with self._lock:
            lease = self._leases[server]
            mine = [shard for shard in self._last if self._server_of[shard] == server]
            made = max((self._last.pop(shard)[0] for shard in mine), default=-1)
            lease.floor = max(floor_ms, made + 1, lease.floor)
            lease.high = lease.floor - 1
            lease.slot, lease.fence = slot, fence_ms

    def extend(self, slot: int, fence_ms: int, *, server: int = 0) -> None:
        """The lease of `slot` on `server` was renewed up to `fence_ms` (a fence never moves back)."""
        with self._lock:
            lease = self._leases[server]
            if slot == lease.slot:
                lease.fence = max(lease.fence, fence_ms)

    def high_ms(self, server: int = 0) -> int:
        """The highest ms of an id made with `server`'s current lease (its floor - 1 before
        any): a renewal keeps the fence a lease beyond it, so a burst that ran ahead can go on."""
        return self._leases[server].high

    def revoke(self, server: int = 0) -> int:
        """Stop making ids for `server`'s shards (its lease is being released); returns the ms
        above every id made with it: the floor for the slot's next holder."""
        with self._lock:
            lease = self._leases[server]
            lease.slot, lease.fence = None, 0
            return max(lease.floor, lease.high + 1)
