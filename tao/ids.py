"""64-bit ids that carry their logical shard, so `shard_of(id)` needs no lookup.

Layout (Instagram's): 41 bits of milliseconds since `EPOCH_MS`, 13 bits of logical shard,
10 bits of sequence. Ids are roughly time-ordered. Uniqueness across processes and servers is
enforced where it matters, by the shard's primary key: a generator makes an id from the clock,
the shard and a per-process sequence that starts at a random offset, and `obj_add` retries with
a fresh id on the (rare) duplicate-key error, so no coordination service is needed.
"""

from __future__ import annotations

import random
import threading
import time

from tao.errors import InvalidIdError

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TIME_BITS = 41
SHARD_BITS = 13
SEQ_BITS = 10
MAX_SHARDS = 1 << SHARD_BITS
# Signed 64-bit, as both SQL backends store it; the time bits reach bit 63 only after 2059.
MAX_ID = (1 << 63) - 1


def make_id(ms: int, shard: int, seq: int) -> int:
    return ((ms - EPOCH_MS) << (SHARD_BITS + SEQ_BITS)) | (shard << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))


def shard_of(id_: int) -> int:
    return (id_ >> SEQ_BITS) & (MAX_SHARDS - 1)


def time_of(id_: int) -> int:
    """The id's creation time in ms since the Unix epoch."""
    return (id_ >> (SHARD_BITS + SEQ_BITS)) + EPOCH_MS


def check_id(id_: object, n_shards: int) -> int:
    """Return the id if it is a valid id on one of `n_shards` logical shards, else raise InvalidIdError."""
    if isinstance(id_, bool) or not isinstance(id_, int) or not 0 < id_ <= MAX_ID:
        raise InvalidIdError(f"{id_!r} is not a taogram id (a positive signed 64-bit integer)")
    if shard_of(id_) >= n_shards:
        raise InvalidIdError(f"id {id_} names logical shard {shard_of(id_)}, but there are only {n_shards}")
    return id_


class IdGenerator:
    """Thread-safe; one per process is enough."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = random.randrange(1 << SEQ_BITS)
        self._last_ms = 0

    def next_id(self, shard: int) -> int:
        if not 0 <= shard < MAX_SHARDS:
            raise InvalidIdError(f"logical shard {shard} is out of range")
        with self._lock:
            ms = max(int(time.time() * 1000), self._last_ms)  # never go back in time within a process
            self._seq = (self._seq + 1) & ((1 << SEQ_BITS) - 1)
            if self._seq == 0 and ms == self._last_ms:
                ms += 1  # wrapped within one millisecond: borrow the next one
            self._last_ms = ms
            return make_id(ms, shard, self._seq)
