"""The CacheTier contract, run against both tiers (in-process LRU and real memcached)."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from tao.cache import Install
from tao.cache.keys import list_key, obj_key

# No blocking call may run on the event loop (pymemcache belongs on the tier's threads).


def put(data):
    """A `make` that ignores the cached value."""
    return lambda old: dict(data)


async def test_miss_install_hit(tier, prefix):
    k = obj_key(prefix, 1)
    assert await tier.get_many([k]) == {}
    assert await tier.install_many([Install(k, 1, put({"name": "ada"}))]) == set()
    assert await tier.get_many([k]) == {k: {"name": "ada", "v": 1}}
    stats = tier.stats()
    assert stats["hits"] == 1 and stats["misses"] == 1


async def test_newer_install_wins_in_both_orders(tier, prefix):
    a, b = obj_key(prefix, 1), obj_key(prefix, 2)
    # A writer installs v2, then a slow reader tries to fill with the v1 it read earlier.
    await tier.install_many([Install(a, 2, put({"x": "new"}))])
    await tier.install_many([Install(a, 1, put({"x": "old"}))])
    # The other order: the slow reader's v1 lands first, the writer's v2 replaces it.
    await tier.install_many([Install(b, 1, put({"x": "old"}))])
    await tier.install_many([Install(b, 2, put({"x": "new"}))])
    got = await tier.get_many([a, b])
    assert got == {a: {"x": "new", "v": 2}, b: {"x": "new", "v": 2}}


async def test_same_version_is_not_reinstalled(tier, prefix):
    k = obj_key(prefix, 1)
    calls = []
    await tier.install_many([Install(k, 3, put({"x": 1}))])
    await tier.install_many([Install(k, 3, lambda old: calls.append(old) or {"x": 2})])
    assert calls == []  # skipped before `make` runs
    assert (await tier.get_many([k]))[k] == {"x": 1, "v": 3}


async def test_tombstone_is_present_but_never_served_and_blocks_older(tier, prefix):
    k = list_key(prefix, 7, "FOLLOWS")
    await tier.install_many([Install(k, 4, put({"ids": [1]}))])
    await tier.install_many([Install(k, 5, lambda old: {"stale": True})])
    assert await tier.get_many([k]) == {k: {"v": 5, "stale": True}}
    # An older fill cannot resurrect a value under the tombstone...
    await tier.install_many([Install(k, 4, put({"ids": [1]}))])
    assert (await tier.get_many([k]))[k] == {"v": 5, "stale": True}
    # ...but a fill read at the tombstone's own version (the same SQL state) replaces it,
    # its `make` seeing no old value...
    seen = []
    await tier.install_many([Install(k, 5, lambda old: seen.append(old) or {"ids": [2, 1]})])
    assert seen == [None]
    assert (await tier.get_many([k]))[k] == {"ids": [2, 1], "v": 5}
    # ...and a newer tombstone drops it again.
    await tier.install_many([Install(k, 6, lambda old: {"stale": True})])
    assert (await tier.get_many([k]))[k] == {"v": 6, "stale": True}
    assert tier.stats()["misses"] >= 2  # tombstones count as misses


async def test_in_place_list_update_sees_the_cached_list(tier, prefix):
    k = list_key(prefix, 9, "FOLLOWS")
    await tier.install_many([Install(k, 1, put({"ids": [10], "count": 1, "complete": True}))])

    def prepend(new_id, version):
        def make(old):
            if old is None or old["v"] != version - 1:
                return {"stale": True}  # not exactly one behind: drop the list
            return {"ids": [new_id, *old["ids"]], "count": old["count"] + 1, "complete": old["complete"]}
        return make

    await tier.install_many([Install(k, 2, prepend(11, 2))])
    assert (await tier.get_many([k]))[k] == {"ids": [11, 10], "count": 2, "complete": True, "v": 2}
    await tier.install_many([Install(k, 4, prepend(13, 4))])  # v3 was never cached: drop
    assert (await tier.get_many([k]))[k] == {"v": 4, "stale": True}


async def test_values_are_not_aliased(tier, prefix):
    k = obj_key(prefix, 1)
    data = {"tags": ["a"]}
    await tier.install_many([Install(k, 1, lambda old: data)])
    data["tags"].append("mutated after install")
    got = (await tier.get_many([k]))[k]
    got["tags"].append("mutated after get")
    assert (await tier.get_many([k]))[k] == {"tags": ["a"], "v": 1}


async def test_duplicate_keys_in_one_batch_apply_in_order(tier, prefix):
    k = list_key(prefix, 3, "LIKES")
    await tier.install_many([
        Install(k, 1, put({"ids": [1]})),
        Install(k, 2, lambda old: {"ids": [2, *old["ids"]]}),
    ])
    assert (await tier.get_many([k, k]))[k] == {"ids": [2, 1], "v": 2}


async def test_entries_expire_after_ttl(make_tier, prefix):
    tier = make_tier(ttl_seconds=1)
    k = obj_key(prefix, 1)
    await tier.install_many([Install(k, 1, put({"x": 1}))])
    assert k in await tier.get_many([k])
    # memcached keeps time in whole seconds: a 1 s TTL ends within 2 s.
    await asyncio.sleep(2.2)
    assert await tier.get_many([k]) == {}
    # Once expired, an install (even of an older version) fills the key again.
    await tier.install_many([Install(k, 1, put({"x": 1}))])
    assert k in await tier.get_many([k])
    await tier.close()


async def test_concurrent_tasks_converge_to_the_highest_version(tier, prefix):
    keys = [obj_key(prefix, i) for i in range(5)]
    versions = list(range(1, 41))
    random.Random(1).shuffle(versions)

    async def writer(version):
        await tier.install_many([Install(k, version, put({"by": version})) for k in keys])

    await asyncio.gather(*(writer(v) for v in versions))
    assert await tier.get_many(keys) == {k: {"by": 40, "v": 40} for k in keys}


async def test_concurrent_threads_with_in_place_updates_converge(tier, prefix):
    """Writers in several threads (each with its own event loop) append to one hot list, each
    installing version n with "append if the cache holds n-1, else drop": the cache ends at
    the highest version, and if it holds a list, that list is exactly right."""
    k = list_key(prefix, 1, "FEED")
    n_threads, per_thread = 4, 15
    errors = []

    def make_for(version):
        def make(old):
            if old is not None and old["v"] == version - 1:
                return {"ids": [version, *old["ids"]]}
            return {"stale": True}
        return make

    def run(t):
        async def body():
            for i in range(per_thread):
                v = 2 + t + i * n_threads
                await tier.install_many([Install(k, v, make_for(v))])
        try:
            asyncio.run(body())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    await tier.install_many([Install(k, 1, put({"ids": [1]}))])
    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    await asyncio.to_thread(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
    assert errors == []
    top = 1 + n_threads * per_thread
    final = (await tier.get_many([k]))[k]
    assert final["v"] == top
    if not final.get("stale"):
        assert final["ids"][0] == top and final["ids"] == sorted(final["ids"], reverse=True)
        assert final["ids"] == list(range(top, top - len(final["ids"]), -1))


async def test_reads_from_threads_with_their_own_loops_each_get_their_own_answer(tier, prefix):
    """A batch job's threads, each with its own event loop, reading through one tier at once:
    every read answers (reads coalesce per loop turn, and a loop's waiting reads are never
    answered from another loop's thread), with its own keys' values."""
    keys = [obj_key(prefix, i) for i in range(8)]
    await tier.install_many([Install(k, 1, put({"i": i})) for i, k in enumerate(keys)])
    errors: list[BaseException] = []

    def run(t: int) -> None:
        async def body() -> None:
            for _ in range(30):
                mine = keys[t::4]
                got = await asyncio.wait_for(asyncio.gather(*(tier.get_many([k]) for k in mine)), 10)
                assert [g[k]["i"] for g, k in zip(got, mine)] == [keys.index(k) for k in mine]
        try:
            asyncio.run(body())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    await asyncio.to_thread(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
    assert errors == []


async def test_a_fence_taken_while_healthy_does_not_refuse_installs(tier, prefix):
    k = obj_key(prefix, 1)
    fence = tier.fence()
    assert await tier.install_many([Install(k, 1, put({"x": 1}), fence)]) == set()
    assert (await tier.get_many([k]))[k] == {"x": 1, "v": 1}


async def test_a_bad_make_raises_to_the_caller_and_is_not_a_cache_fault(tier, prefix):
    k = obj_key(prefix, 1)
    with pytest.raises(TypeError):
        await tier.install_many([Install(k, 1, lambda old: {"when": object()})])
    with pytest.raises(ZeroDivisionError):
        await tier.install_many([Install(k, 1, lambda old: {"x": 1 / 0})])
    assert tier.stats()["errors"] == 0 and tier.stats()["servers_suspect"] == 0
    assert await tier.install_many([Install(k, 1, put({"x": 1}))]) == set()
    assert (await tier.get_many([k]))[k] == {"x": 1, "v": 1}


async def test_scan_lists_every_key_in_bounded_batches(tier, prefix):
    keys = {obj_key(prefix, i) for i in range(1234)}
    assert await tier.install_many([Install(k, 1, put({"x": 1})) for k in sorted(keys)]) == set()
    seen: list[str] = []
    async for batch in tier.scan_key_batches(100):
        assert 0 < len(batch) <= 100
        seen += [k for _, k in batch]
    assert len(seen) == len(set(seen)) and set(seen) == keys  # each once, only this tier's own
