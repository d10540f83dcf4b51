"""The in-process cache tier of the embedded default: an LRU with TTL and versioned installs.

It keeps exactly the semantics of the memcached tier (`tao.cache.base`): entries only move
to a higher version, tombstones are present-but-never-served, values are stored encoded so
callers cannot alias them, and entries expire after `ttl_seconds`. It never fails an install.

There is no I/O; the methods are async only to share the `CacheTier` protocol. A lock makes
it safe to share between threads (batch jobs); it is uncontended on one event loop.

Coherence across processes (embedded default, `commits` given): every process that opens the
same SQLite data dir counts its commits per shard in shared memory (`shared_commits`). Before
each read, `get_many` asks which shards other processes committed to since it last looked
(one comparison of a few KB) and drops this process's entries for those shards: each entry
remembers its shard's generation, and a shard's generation moves on (O(1), the entries go
lazily). Unique-key claims (`u:`), whose shard the key does not tell, belong to every shard.
A fill or write install whose fence (`fence()`, taken before its SQL read or transaction)
predates an invalidation of its shard may carry a value read before the other process's
commit: it is installed as a tombstone at its version instead (never shown; a fresh read
replaces it), as the memcached tier does after a fault. So a read begun after another
process's write returned never sees the value that write replaced. Without `commits` (tests of
the tier alone, or a MySQL store with this tier) the cache is coherent within its process only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from tao.cache import codec, keys
from tao.cache.base import Install, Value
from tao.cache.shared_commits import SharedCommits
from tao.ids import shard_of

GLOBAL = -1  # the bucket of keys that belong to every shard (unique-key claims, foreign keys)


class LocalCache:
    def __init__(self, max_entries: int = 200_000, ttl_seconds: float = 3600,
                 commits: SharedCommits | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._commits = commits
        n = commits.n_shards if commits is not None else 0
        # Per shard bucket (index -1: GLOBAL): its generation, and the fence epoch of its last
        # invalidation. An entry is live only at its bucket's current generation.
        self._gens = [0] * (n + 1)
        self._invalidated_at = [0] * (n + 1)
        self._epoch = 0
        # key -> (monotonic expiry, encoded value, bucket, generation); order is recency, oldest first.
        self._entries: OrderedDict[str, tuple[float, bytes, int, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = self._round_trips = self._flushes = 0
        self._installed = self._install_skipped = self._evictions = 0
        self._invalidations = self._fenced = 0

    async def get_many(self, keys: list[str]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        if not keys:
            return out
        now = time.monotonic()
        moved = self._commits.changed() if self._commits is not None else ()
        with self._lock:
            if moved:
                self._invalidate(moved)
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

    async def install_many(self, installs: list[Install]) -> set[str]:
        if not installs:
            return set()
        now = time.monotonic()
        with self._lock:
            self._round_trips += 1
            for inst in installs:
                bucket = self._bucket(inst.key)
                make = inst.make
                if inst.fence is not None and inst.fence < self._invalidated_at[bucket]:
                    # Read (or written) before another process's commit to this shard was seen:
                    # it may be older than that commit. Hide what is older; show nothing.
                    self._fenced += 1
                    make = _tombstone
                data = codec.plan_install(inst.version, make, self._live(inst.key, now))
                if data is None:
                    self._install_skipped += 1
                    continue
                self._entries[inst.key] = (now + self.ttl_seconds, data, bucket, self._gens[bucket])
                self._entries.move_to_end(inst.key)
                self._installed += 1
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1
        return set()  # nothing can be down: no install ever needs a repair

    async def flush(self) -> None:
        with self._lock:
            self._entries.clear()
            self._flushes += 1

    async def close(self) -> None:
        with self._lock:
            self._entries.clear()  # `commits` belongs to the backend, which closes it

    def fence(self) -> int:
        """The invalidation epoch: an install fenced before an invalidation of its shard is
        turned into a tombstone (always 0 without `commits`: nothing is ever fenced out)."""
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
            "invalidations": self._invalidations,
            "install_fenced": self._fenced,
        }

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now or entry[3] != self._gens[entry[2]]:
            del self._entries[key]
            return None
        return entry[1]

    def _bucket(self, key: str) -> int:
        if self._commits is None:
            return GLOBAL
        owner = keys.owner_id(key)
        if owner is None:
            return GLOBAL
        shard = shard_of(owner)
        return shard if shard < self._commits.n_shards else GLOBAL

    def _invalidate(self, shards) -> None:
        """Another process committed to `shards`: their entries (and GLOBAL's) are gone."""
        self._epoch += 1
        for s in (*shards, GLOBAL):
            self._gens[s] += 1
            self._invalidated_at[s] = self._epoch
        self._invalidations += len(shards)


def _tombstone(old: Value | None) -> Value:
    return {"stale": True}
