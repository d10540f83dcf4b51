"""The cache tier: key building (`keys`), value encoding (`codec`), and two implementations of
the `CacheTier` protocol (`base`): `LocalCache` (in-process, the embedded default) and
`MemcachedCache` (production and tests). `make_cache_tier` picks one from `CacheSettings`.
"""

from __future__ import annotations

from config.settings import CacheSettings
from tao.cache.base import CacheTier, Install, Value
from tao.cache.local import LocalCache
from tao.cache.memcached import MemcachedCache
from tao.cache.shared_log import SharedInvalidations

__all__ = ["CacheTier", "Install", "LocalCache", "MemcachedCache", "Value", "make_cache_tier"]


def make_cache_tier(settings: CacheSettings, *, key_prefix: str | None = None,
                    log: SharedInvalidations | None = None) -> CacheTier:
    """Build the tier `settings.backend` names. `key_prefix` overrides `settings.key_prefix`
    as the memcached wire namespace (tests pass a unique one). `log` (the embedded data dir's
    shared invalidation log) keeps a local tier coherent with the other processes on the
    machine that open the same store; the local tier owns and closes it."""
    if settings.backend == "local":
        return LocalCache(settings.local_max_entries, settings.ttl_seconds, log)
    if settings.backend == "memcached":
        return MemcachedCache(
            settings.servers,
            key_prefix=settings.key_prefix if key_prefix is None else key_prefix,
            timeout=settings.timeout,
            connect_timeout=settings.connect_timeout,
            ttl_seconds=settings.ttl_seconds,
            threads=settings.threads,
            heartbeat_interval=settings.heartbeat_interval,
        )
    raise ValueError(f"cache.backend must be 'local' or 'memcached', not {settings.backend!r}")
