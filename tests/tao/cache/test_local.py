"""Behaviour of the in-process tier alone: LRU eviction."""

from __future__ import annotations

import pytest

from tao.cache import Install, LocalCache
from tao.cache.keys import obj_key


async def test_least_recently_used_entry_is_evicted():
    tier = LocalCache(max_entries=3, ttl_seconds=60)
    k = [obj_key("lru", i) for i in range(4)]
    for i in range(3):
        await tier.install_many([Install(k[i], 1, lambda old: {})])
    await tier.get_many([k[0]])  # k[0] is now the most recently used
    await tier.install_many([Install(k[3], 1, lambda old: {})])
    assert set(await tier.get_many(k)) == {k[0], k[2], k[3]}
    assert tier.stats()["evictions"] == 1


async def test_flush_drops_everything():
    tier = LocalCache(max_entries=10, ttl_seconds=60)
    await tier.install_many([Install(obj_key("f", 1), 1, lambda old: {})])
    await tier.flush()
    assert await tier.get_many([obj_key("f", 1)]) == {}


def test_rejects_nonsense_sizes():
    with pytest.raises(ValueError):
        LocalCache(max_entries=0)
