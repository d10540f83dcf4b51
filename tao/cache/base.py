"""The cache tier's interface: what the store asks of memcached or of the in-process tier.

Every cached value is a dict with an integer `"v"` (the version of the SQL rows it was built
from). The tier's one write primitive, `install_many`, only ever moves an entry to a higher
version, so a slow reader filling a miss can never overwrite a newer value a writer installed
(the effect of memcache leases, built from gets + add/cas). A "drop" is an install of a
tombstone at the new version (`{"v": n, "stale": True}`), never a delete, so the hole a delete
would leave cannot be refilled with an older value.

Values must be JSON-serialisable; the tier stores them encoded, so callers can never alias a
cached dict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

Value = dict[str, Any]


@dataclass(slots=True)
class Install:
    """Install a value for `key` at `version`, unless the cache already holds `version` or newer.

    `make(old)` builds the value to store from the cached one (`None` when absent, or when the
    cached entry is a tombstone); it lets a writer update a cached list in place when the cached
    entry is exactly one version behind, and otherwise return a tombstone. The returned dict's
    `"v"` is set to `version` by the tier.
    """

    key: str
    version: int
    make: Callable[[Value | None], Value]
    # `CacheTier.fence()` taken before the SQL read (or write transaction) the value comes
    # from. The tier refuses the install (reports it failed) when the key's server had a
    # fault or recovered from one since: the value may predate a write the server missed.
    # None: no fence (the install is refused only while its server is suspect).
    fence: int | None = None


class CacheTier(Protocol):
    async def get_many(self, keys: list[str]) -> dict[str, Value]:
        """Cached values by key. A miss, an expired entry, or a key whose server is down, slow or
        suspect is simply absent from the result (the caller then reads SQL). Tombstones are
        returned as they are (`{"v": n, "stale": True}`): the caller treats them as misses.
        One round trip per server, servers in parallel."""
        ...

    async def install_many(self, installs: list[Install], *, written: bool = False) -> set[str]:
        """Apply the installs (gets, then add/cas per key, retrying lost races). Returns the keys
        whose install could not be made because their server was down, slow or suspect: the
        caller must repair those later (the store enqueues an outbox job that re-reads SQL and
        installs again). Never raises for cache faults. `written`: the installs follow a commit
        that changed these keys (not a fill); a tier private to its process (LocalCache) then
        tells the other processes on the machine to drop them."""
        ...

    async def flush(self) -> None:
        """Drop everything (tests and repair tooling)."""
        ...

    async def close(self) -> None: ...

    async def forget_many(self, keys: list[str]) -> None:
        """Delete the keys outright (not a tombstone): only for the traces of erased data
        (`tao.erase`), whose SQL rows are gone, so a refill can only install an absence."""
        ...

    def scan_key_batches(self, size: int) -> AsyncIterator[list[tuple[str, str]]]:
        """Every key the tier holds now, as (server, key without the tier's wire prefix), at most
        `size` a batch, in memory that does not grow with the cache (operator tooling and erasure:
        O(cache size) in time). memcached: `lru_crawler metadump` of each server, spooled to a
        temporary file (`tao.cache.metadump`); the in-process tier: its own entries."""
        ...

    def fence(self) -> int:
        """A token to take *before* reading SQL for an install (a fill or a write's new value)
        and to pass as `Install.fence`; cheap, no I/O. It closes the last window of a
        memcached fault: an install computed from SQL read before a server missed a write,
        landing after that server was flushed and put back in use."""
        ...

    def stats(self) -> dict[str, int]:
        """Counters: hits, misses, round_trips, errors, bypassed (keys skipped on suspect servers),
        flushes, and per-tier extras (see docs/caching.md)."""
        ...
