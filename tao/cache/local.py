"""The in-process cache tier of the embedded default: an LRU with TTL and versioned installs.

It keeps exactly the semantics of the memcached tier (`tao.cache.base`): entries only move
to a higher version, tombstones are present-but-never-served, values are stored encoded so
callers cannot alias them, and entries expire after `ttl_seconds`. It never fails an install.

There is no I/O; the methods are async only to share the `CacheTier` protocol. A lock makes
it safe to share between threads (batch jobs); it is uncontended on one event loop.

Coherence across processes (the embedded default: `log` given). Every process that opens the
same SQLite data dir publishes the keys its writes install (`install_many(..., written=True)`)
to a log in shared memory (`shared_log`), and before each read `get_many` drops the keys other
processes published since it last looked (a 512-byte comparison when nobody wrote). A fill or
write install whose fence (`fence()`, taken before its SQL read or transaction) predates the
drop of its key may carry a value read before the other process's commit: it is installed as a
tombstone at its version instead (never served; a fresh read replaces it), as the memcached
tier does after a fault. So a read begun after another process's write returned never sees
the value that write replaced. Without `log` (tests of the tier alone, or a MySQL store with
this tier) the cache is coherent within its process only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

from tao.cache import codec
from tao.cache.base import Install, Value
from tao.cache.shared_log import SharedInvalidations

# Keys dropped for other processes' writes whose drop epoch is remembered for fencing; past
# this, the oldest are forgotten and fence every install taken before their epoch (`_floor`).
DROPS_REMEMBERED = 100_000


class LocalCache:
    def __init__(self, max_entries: int = 200_000, ttl_seconds: float = 3600,
                 log: SharedInvalidations | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._log = log
        # Fencing: the epoch moves at each batch of drops; an install whose fence is older than
        # its key's drop (or than `_floor`) may predate the write that caused the drop.
        self._epoch = self._floor = 0
        self._dropped: OrderedDict[str, int] = OrderedDict()
        self._invalidated = self._invalidated_all = self._fenced = 0
        # key -> (monotonic expiry, encoded value); order is recency, oldest first.
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = self._round_trips = self._flushes = 0
        self._installed = self._install_skipped = self._evictions = 0

    async def get_many(self, keys: list[str]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        if not keys:
            return out
        now = time.monotonic()
        with self._lock:
            # Under the lock: a thread must not read keys another thread has taken off the log
            # but not dropped yet.
            if self._log is not None:
                changed, everything = self._log.changed()
                if changed or everything:
                    self._drop(changed, everything)
            # One "round trip", as if this were a one-server cluster, so the store's
            # round-trip assertions read the same on both tiers.
            self._round_trips += 1
            for key in dict.fromkeys(keys):
                raw = self._live(key, now)
                value = codec.decode(raw)
                if value is None:
                    self._misses += 1
                    continue
                self._entries.move_to_end(key)
                if codec.is_tombstone(value):
                    self._misses += 1
                else:
                    self._hits += 1
                out[key] = value
        return out

    async def install_many(self, installs: list[Install], *, written: bool = False) -> set[str]:
        if not installs:
            return set()
        now = time.monotonic()
        with self._lock:
            self._round_trips += 1
            for inst in installs:
                make = inst.make
                if inst.fence is not None and (inst.fence < self._floor or inst.fence < self._dropped.get(inst.key, 0)):
                    # Read (or written) before another process's write of this key was seen:
                    # it may be older than that write. Hide what is older; show nothing.
                    self._fenced += 1
                    make = _tombstone
                data = codec.plan_install(inst.version, make, self._live(inst.key, now))
                if data is None:
                    self._install_skipped += 1
                    continue
                self._entries[inst.key] = (now + self.ttl_seconds, data)
                self._entries.move_to_end(inst.key)
                self._installed += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1
        if written and self._log is not None:
            self._log.publish([inst.key for inst in installs])  # before the write returns
        return set()  # nothing can be down: no install ever needs a repair

    async def flush(self) -> None:
        with self._lock:
            self._entries.clear()
            self._flushes += 1

    async def forget_many(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)
        if self._log is not None:
            self._log.publish(list(keys))

    async def scan_key_batches(self, size: int) -> AsyncIterator[list[tuple[str, str]]]:
        # A snapshot of the names (the entries may change between batches): bounded by
        # max_entries, like the entries themselves, which this process already holds.
        now = time.monotonic()
        with self._lock:
            keys = [k for k, (expiry, _) in self._entries.items() if expiry > now]
        for i in range(0, len(keys), size):
            yield [("local", k) for k in keys[i:i + size]]

    async def close(self) -> None:
        with self._lock:
            self._entries.clear()
        if self._log is not None:
            self._log.close()

    def fence(self) -> int:
        """The drop epoch: an install fenced before its key was dropped for another process's
        write becomes a tombstone (always 0 without `log`: nothing is ever fenced out)."""
        return self._epoch

    def stats(self) -> dict[str, int]:
        return {
            "hits": self._hits,
            "misses": self._misses,
            "round_trips": self._round_trips,
            "wire_round_trips": 0,
            "errors": 0,
            "bypassed": 0,
            "flushes": self._flushes,
            "installed": self._installed,
            "install_skipped": self._install_skipped,
            "install_failed": 0,
            "install_retries": 0,
            "faults": 0,
            "servers_suspect": 0,
            "evictions": self._evictions,
            "entries": len(self._entries),
            "invalidated": self._invalidated,
            "invalidated_all": self._invalidated_all,
            "install_fenced": self._fenced,
        }

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def _drop(self, keys, everything: bool) -> None:
        """Other processes wrote `keys` (or more than the log remembers: `everything`)."""
        self._epoch += 1
        if everything:
            self._entries.clear()
            self._dropped.clear()
            self._floor = self._epoch
            self._invalidated_all += 1
            return
        for key in keys:
            if self._entries.pop(key, None) is not None:
                self._invalidated += 1
            self._dropped[key] = self._epoch
            self._dropped.move_to_end(key)
        while len(self._dropped) > DROPS_REMEMBERED:
            self._floor = max(self._floor, self._dropped.popitem(last=False)[1])


def _tombstone(old: Value | None) -> Value:
    return {"stale": True}
