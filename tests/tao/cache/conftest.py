"""Fixtures for the cache-tier tests: both tiers behind one `tier` fixture, on real memcached
servers from the session `services` fixture, with a unique key namespace per test."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable

import pytest

from tao.cache import LocalCache, MemcachedCache

# Generous timeouts for the contract tests: a loaded CI box must not turn a slow probe into a
# flush (which would turn an expected hit into a miss). Fault tests build their own tiers.
CONTRACT_TIMEOUT = 1.0
HEARTBEAT = 0.05


@pytest.fixture
def prefix(test_id: str) -> str:
    """A short, key-safe namespace unique to this test."""
    return "t" + hashlib.sha1(test_id.encode()).hexdigest()[:12]


@pytest.fixture
async def make_memcached(services, prefix) -> AsyncIterator[Callable[..., MemcachedCache]]:
    """Build MemcachedCache objects on the test servers (each one stands for a process); all
    are closed at teardown."""
    made: list[MemcachedCache] = []

    def make(**kwargs) -> MemcachedCache:
        kwargs.setdefault("key_prefix", prefix)
        kwargs.setdefault("timeout", CONTRACT_TIMEOUT)
        kwargs.setdefault("connect_timeout", CONTRACT_TIMEOUT)
        kwargs.setdefault("heartbeat_interval", HEARTBEAT)
        tier = MemcachedCache(list(services.memcached), **kwargs)
        made.append(tier)
        return tier

    yield make
    for tier in made:
        await tier.close()


@pytest.fixture(params=["local", "memcached"])
async def make_tier(request, make_memcached) -> Callable[..., object]:
    """A factory for the parametrized tier; `ttl_seconds` and `max_entries` pass through."""

    def make(ttl_seconds: int = 3600, max_entries: int = 10_000):
        if request.param == "local":
            return LocalCache(max_entries=max_entries, ttl_seconds=ttl_seconds)
        return make_memcached(ttl_seconds=ttl_seconds)

    make.kind = request.param  # type: ignore[attr-defined]
    return make


@pytest.fixture
async def tier(make_tier):
    tier = make_tier()
    yield tier
    await tier.close()
