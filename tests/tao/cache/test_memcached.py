"""MemcachedCache behaviour beyond the shared contract: batching per server, validation, and
convergence of writers in several processes."""

from __future__ import annotations

import asyncio

import pytest

from tao.cache import Install, MemcachedCache
from tao.cache.keys import list_key, obj_key
from tests.tao.cache.remote import RemoteTier

# No blocking call may run on the event loop (pymemcache belongs on the tier's threads).


def keys_by_server(tier: MemcachedCache, prefix: str, n: int = 6) -> dict[str, list[str]]:
    """At least `n` keys placed on each server."""
    found: dict[str, list[str]] = {}
    i = 0
    while len(found) < 2 or min(len(v) for v in found.values()) < n:
        key = obj_key(prefix, i)
        found.setdefault(tier.server_of(key), []).append(key)
        i += 1
    return {server: keys[:n] for server, keys in found.items()}


async def test_one_round_trip_per_server_touched(make_memcached, prefix, services):
    tier = make_memcached()
    groups = keys_by_server(tier, prefix)
    assert set(groups) == set(services.memcached)  # the ring spans both servers
    one, other = groups.values()

    before = tier.stats()["round_trips"]
    await tier.get_many(one)
    assert tier.stats()["round_trips"] - before == 1

    before = tier.stats()["round_trips"]
    await tier.get_many(one + other)
    assert tier.stats()["round_trips"] - before == 2

    # Installs: one batch per server; on the wire, a gets, then one pipelined add for the
    # absent keys and one pipelined cas for the present ones.
    before = tier.stats()
    failed = await tier.install_many([Install(k, 1, lambda old: {}) for k in one + other])
    assert failed == set()
    after = tier.stats()
    assert after["round_trips"] - before["round_trips"] == 2
    assert after["wire_round_trips"] - before["wire_round_trips"] == 4
    before = after
    assert await tier.install_many([Install(k, 2, lambda old: {}) for k in one[:3]]) == set()
    after = tier.stats()
    assert after["round_trips"] - before["round_trips"] == 1
    assert after["wire_round_trips"] - before["wire_round_trips"] == 2  # gets + pipelined cas
    assert await tier.get_many(one[:3]) == {k: {"v": 2} for k in one[:3]}
    assert set(await tier.get_many(one + other)) == set(one + other)


async def test_placement_is_the_same_in_every_client(make_memcached, prefix):
    a, b = make_memcached(), make_memcached()
    keys = [obj_key(prefix, i) for i in range(50)]
    assert [a.server_of(k) for k in keys] == [b.server_of(k) for k in keys]
    await a.install_many([Install(k, 1, lambda old: {"a": 1}) for k in keys])
    assert set(await b.get_many(keys)) == set(keys)


async def test_bad_keys_raise_and_do_not_mark_servers_suspect(make_memcached):
    tier = make_memcached()
    await tier.get_many([obj_key("ok", 1)])  # the first call waits for the first probes
    for bad in ("has space", "x" * 300, "ctl\x01", "zoë"):
        with pytest.raises(ValueError):
            await tier.get_many([bad])
    assert tier.stats()["faults"] == 0 and tier.stats()["servers_suspect"] == 0


def test_heartbeat_must_be_able_to_see_every_timeout(services):
    with pytest.raises(ValueError, match="heartbeat_interval"):
        MemcachedCache(list(services.memcached), timeout=0.25, heartbeat_interval=0.1)


async def test_writers_in_two_processes_converge(make_memcached, services, prefix):
    """Odd versions from another OS process, even ones from here, concurrently, on hot keys
    spread over both servers: every key ends at the highest version."""
    here = make_memcached()
    remote = RemoteTier(list(services.memcached), key_prefix=prefix, timeout=1.0, connect_timeout=1.0)
    try:
        keys = [obj_key(prefix, i) for i in range(8)]
        top = 60

        async def remote_writes():
            for v in range(1, top, 2):
                assert await remote.install([(k, v, {"by": "remote"}) for k in keys]) == set()

        async def local_writes():
            for v in range(2, top + 1, 2):
                assert await here.install_many([Install(k, v, lambda old: {"by": "here"}) for k in keys]) == set()

        await asyncio.gather(remote_writes(), local_writes(), local_writes())
        assert await here.get_many(keys) == {k: {"by": "here", "v": top} for k in keys}
        assert await remote.get(keys) == {k: {"by": "here", "v": top} for k in keys}
    finally:
        await remote.close()


async def test_large_batches_are_pipelined_in_chunks(make_memcached, prefix):
    """600 keys (about 300 per server, over the 256-command pipeline chunk): adds, then two
    rounds of in-place updates through cas, all applied."""
    tier = make_memcached()
    keys = [list_key(prefix, i, "FEED") for i in range(600)]
    assert await tier.install_many([Install(k, 1, lambda old: {"ids": [1]}) for k in keys]) == set()

    def prepend(v):
        return lambda old: {"ids": [v, *old["ids"]]} if old and old["v"] == v - 1 else {"stale": True}

    for v in (2, 3):
        before = tier.stats()["wire_round_trips"]
        assert await tier.install_many([Install(k, v, prepend(v)) for k in keys]) == set()
        per_server = [len([k for k in keys if tier.server_of(k) == s]) for s in {tier.server_of(k) for k in keys}]
        # per server: one gets, then ceil(n / 256) pipelined cas exchanges
        assert tier.stats()["wire_round_trips"] - before == sum(1 + -(-n // 256) for n in per_server)
    assert await tier.get_many(keys) == {k: {"ids": [3, 2, 1], "v": 3} for k in keys}


async def test_scanning_a_large_cache_holds_one_batch_not_the_dump(make_memcached, prefix):
    """20 000 keys (about 2 MB of dump lines): the scan's Python allocations peak far below
    the dump's size, on the tier's threads too (tracemalloc sees every thread), and a tier under
    another prefix sees none of them."""
    import tracemalloc
    tier = make_memcached()
    keys = [list_key(prefix, i, "FEED") for i in range(20_000)]
    for i in range(0, len(keys), 2000):
        assert await tier.install_many([Install(k, 1, lambda old: {"ids": []}) for k in keys[i:i + 2000]]) == set()
    tracemalloc.start()
    try:
        n = 0
        async for batch in tier.scan_key_batches(200):
            n += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == len(keys)
    assert peak < 1_000_000, peak  # reading the whole dump at once peaked at ~4 MB
    other = make_memcached(key_prefix=prefix + "x")
    assert [b async for b in other.scan_key_batches(200)] == []


async def test_an_install_whose_caller_is_cancelled_still_finishes(make_memcached, prefix):
    """A committed write's installs must not stop half-way when its request is cancelled (a
    client gone): they run on the event loop now, shielded, as they ran to the end on a worker
    thread before."""
    tier = make_memcached()
    keys = [list_key(prefix, i, "FEED") for i in range(600)]  # several exchanges per server
    task = asyncio.create_task(tier.install_many([Install(k, 1, lambda old: {"ids": [1]}) for k in keys]))
    await asyncio.sleep(0)  # begun
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got: dict = {}
    for _ in range(200):
        got = await tier.get_many(keys)
        if len(got) == len(keys):
            break
        await asyncio.sleep(0.01)
    assert got == {k: {"ids": [1], "v": 1} for k in keys}
