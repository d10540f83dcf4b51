"""The embedded default (SQLite shards, in-process caches) across real OS processes on one data
dir — a server and a batch job: a write in one is seen by the other's next read, never the
value its cache held from before (issue: the batch job's follow left the server's
`followerCount` stale for up to the cache TTL)."""

from __future__ import annotations

import asyncio

import pytest

from tests.tao.conftest import make_settings, open_store
from tests.tao.procs import RemoteTao, write_config


@pytest.fixture
async def two_processes(test_id, tmp_path):
    s = make_settings("sqlite", None, test_id, tmp_path)
    assert s.cache.backend == "local"
    here = await open_store(s)
    config = await asyncio.to_thread(write_config, s, tmp_path / "taogram.toml")
    there = await asyncio.to_thread(RemoteTao, config)
    try:
        yield here, there
    finally:
        await there.close()
        await here.close()


async def test_a_write_in_one_process_is_read_by_the_other_at_once(two_processes):
    here, there = two_processes
    ada = await here.obj_add("USER", {"username": "ada"})
    users = [await here.obj_add("USER", {"username": f"u{i}"}) for i in range(5)]
    for n, u in enumerate(users, start=1):
        # Both sides have the counts cached (this process reads them before every write).
        assert await here.assoc_count(ada, "FOLLOWED_BY") == n - 1
        assert await here.assoc_count(u, "FOLLOWS") == 0
        await there.call("assoc_add", u, "FOLLOWS", ada)       # the batch job's follow
        assert await here.assoc_count(ada, "FOLLOWED_BY") == n  # the other side of the edge
        assert await here.assoc_count(u, "FOLLOWS") == 1
        assert [e.id2 for e in await here.assoc_range(ada, "FOLLOWED_BY", 0, 10)][0] == u
    # And the other way round: an object and a unique key written here, read there.
    assert (await there.call("obj_get", [ada]))[ada].data == {"username": "ada"}
    assert await there.call("key_get_many", "username", ["ada"]) == {}
    await here.obj_update(ada, {"bio": "hi"})
    assert await here.key_claim("username", "ada", ada)
    assert (await there.call("obj_get", [ada]))[ada].data == {"username": "ada", "bio": "hi"}
    assert await there.call("key_get_many", "username", ["ada"]) == {"ada": ada}
    stats = here.stats()
    assert stats["cache_invalidated"] >= 10 and stats["cache_hits"] > 0 and stats["cache_invalidated_all"] == 0


async def test_ones_own_writes_do_not_empty_ones_cache(two_processes):
    here, _ = two_processes
    ada = await here.obj_add("USER", {"username": "ada"})
    await here.obj_get([ada])
    here.reset_stats()
    for i in range(5):
        await here.obj_update(ada, {"n": i})
        assert (await here.obj_get([ada]))[ada].data["n"] == i
    stats = here.stats()
    assert stats["cache_invalidated"] == 0 and stats["cache_misses"] == 0


async def test_no_stale_read_while_this_process_keeps_filling(two_processes):
    """Reads of this process run all the time (misses fill the cache from SQL, racing the other
    process's commits); after each write there returns, the next read here shows it."""
    here, there = two_processes
    obj = await here.obj_add("USER", {"username": "ada", "n": 0})
    stop = asyncio.Event()

    async def hammer() -> None:
        while not stop.is_set():
            await here.obj_get([obj])
            await here.assoc_count(obj, "FOLLOWED_BY")
            await asyncio.sleep(0)
    readers = [asyncio.create_task(hammer()) for _ in range(4)]
    try:
        fan = await here.obj_add("USER", {"username": "fan"})
        for n in range(1, 31):
            await there.call("obj_update", obj, {"n": n})
            assert (await here.obj_get([obj]))[obj].data["n"] == n
            if n % 10 == 0:
                await there.call("assoc_add" if n % 20 else "assoc_delete", fan, "FOLLOWS", obj)
                assert await here.assoc_count(obj, "FOLLOWED_BY") == (1 if n % 20 else 0)
    finally:
        stop.set()
        await asyncio.gather(*readers)
