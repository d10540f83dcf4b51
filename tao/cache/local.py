"""The in-process cache tier of the embedded default: an LRU with TTL and versioned installs.

It keeps exactly the semantics of the memcached tier (`tao.cache.base`): entries only move
to a higher version, tombstones are present-but-never-served, values are stored encoded so
callers cannot alias them, and entries expire after `ttl_seconds`. It never fails an install.

There is no I/O; the methods are async only to share the `CacheTier` protocol. A lock makes
it safe to share between threads (batch jobs); it is uncontended on one event loop.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from tao.cache import codec
from tao.cache.base import Install, Value


class LocalCache:
    def __init__(self, max_entries: int = 200_000, ttl_seconds: float = 3600) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
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
                data = codec.plan_install(inst.version, inst.make, self._live(inst.key, now))
                if data is None:
                    self._install_skipped += 1
                    continue
                self._entries[inst.key] = (now + self.ttl_seconds, data)
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
            self._entries.clear()

    def fence(self) -> int:
        return 0  # an in-process cache never misses a write: no install is ever fenced out

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
        }

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]
