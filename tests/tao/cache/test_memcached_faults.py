"""memcached faults against real servers: a paused (SIGSTOP) server and a killed-and-restarted
one. The tier must bypass the bad server (misses, failed installs) while the other keeps
serving, and must never serve a value older than the last acknowledged write afterwards, even
when that write came from another process."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
from pymemcache.client.base import Client

from tao.cache import Install, MemcachedCache
from tao.cache.keys import obj_key
from tests.tao.cache.remote import RemoteTier
from tests.waiting import until

pytestmark = pytest.mark.slow

# Timeouts short enough for the faults to play out in a couple of seconds, long enough that a
# loaded 2-core box does not stall a heartbeat into a spurious fault. A fault that lasts at
# least TIMEOUT makes a writer's call time out; a running heartbeat calls it a fault before it ends.
TIMEOUT = 1.0
FAULT_KW = dict(timeout=TIMEOUT, connect_timeout=TIMEOUT, heartbeat_interval=0.05)
HANG_GUARD = 10 * TIMEOUT  # a call that takes longer than this is a hang, not a slow answer


def key_on(tier: MemcachedCache, prefix: str, server: str, start: int = 0) -> str:
    i = start
    while tier.server_of(obj_key(prefix, i)) != server:
        i += 1
    return obj_key(prefix, i)


def put(data):
    return lambda old: dict(data)


async def eventually(probe, what: str, attempts: int = 100, delay: float = 0.05):
    return await until(probe, what, timeout=attempts * delay, every=delay)


async def test_paused_server_is_bypassed_and_the_other_keeps_serving(make_memcached, services, prefix):
    tier = make_memcached(**FAULT_KW)
    down, up = services.memcached
    ka, kb = key_on(tier, prefix, down), key_on(tier, prefix, up)
    assert await tier.install_many([Install(ka, 1, put({"x": 1})), Install(kb, 1, put({"x": 1}))]) == set()

    services.pause_memcached(0)
    try:
        got = await asyncio.wait_for(tier.get_many([ka, kb]), HANG_GUARD)
        assert got == {kb: {"x": 1, "v": 1}}
        failed = await asyncio.wait_for(
            tier.install_many([Install(ka, 2, put({"x": 2})), Install(kb, 2, put({"x": 2}))]), HANG_GUARD
        )
        assert failed == {ka}
        assert (await tier.get_many([kb]))[kb] == {"x": 2, "v": 2}
        stats = tier.stats()
        assert stats["bypassed"] >= 1 and stats["servers_suspect"] == 1
    finally:
        services.resume_memcached(0)

    # Back in use once it answers again, after this process flushed it.
    async def usable_again():
        return await tier.install_many([Install(ka, 3, put({"x": 3}))]) == set()

    await eventually(usable_again, "the resumed server takes installs again")
    # Reads follow after the recovery grace (TIMEOUT / 2), when every process has flushed it.
    assert await tier.get_many([ka]) == {}

    async def reads_again():
        return await tier.get_many([ka]) == {ka: {"x": 3, "v": 3}}

    await eventually(reads_again, "the resumed server serves reads after the recovery grace")
    assert tier.stats()["flushes"] >= 1


async def test_no_stale_read_after_a_pause_when_another_process_wrote(make_memcached, services, prefix):
    reader = make_memcached(**FAULT_KW)
    writer = RemoteTier(list(services.memcached), key_prefix=prefix, **FAULT_KW)
    try:
        down = services.memcached[0]
        keys = [key_on(reader, prefix, down, start=i * 1000) for i in range(3)]
        assert await writer.install([(k, 1, {"x": "old"}) for k in keys]) == set()
        assert set(await reader.get_many(keys)) == set(keys)  # the reader sees v1

        services.pause_memcached(0)
        try:
            # The other process's write commits "in SQL" but its cache install times out...
            write = asyncio.create_task(writer.install([(k, 2, {"x": "new"}) for k in keys]))
            # ...while a read of ours, sent before our heartbeat can have noticed the pause,
            # waits on the stopped server; the resume below lets it answer (with v1).
            await asyncio.sleep(TIMEOUT * 0.3)
            in_flight = asyncio.create_task(reader.get_many(keys))
            assert await write == set(keys)
        finally:
            services.resume_memcached(0)
        got = await asyncio.wait_for(in_flight, HANG_GUARD)
        assert all(v["x"] != "old" for v in got.values()), got

        # From now on the reader never sees v1: misses until it has flushed the server, then
        # misses until the writer's repair (the store's outbox job) installs v2.
        for _ in range(20):
            got = await reader.get_many(keys)
            assert all(v["x"] != "old" for v in got.values()), got
            await asyncio.sleep(0.05)

        async def repaired():
            return await writer.install([(k, 2, {"x": "new"}) for k in keys]) == set()

        await eventually(repaired, "the writer's repair installs v2")
        async def reads_new():
            got = await reader.get_many(keys)
            assert all(v["x"] != "old" for v in got.values()), got
            return got == {k: {"x": "new", "v": 2} for k in keys}

        await eventually(reads_new, "the reader reads v2")
        assert reader.stats()["flushes"] >= 1
    finally:
        await writer.close()


async def test_killed_and_restarted_server(make_memcached, services, prefix):
    reader = make_memcached(**FAULT_KW)
    writer = RemoteTier(list(services.memcached), key_prefix=prefix, **FAULT_KW)
    try:
        down, up = services.memcached
        ka, kb = key_on(reader, prefix, down), key_on(reader, prefix, up)
        assert await writer.install([(ka, 1, {"x": "old"}), (kb, 1, {"x": "old"})]) == set()
        assert set(await reader.get_many([ka, kb])) == {ka, kb}

        services.kill_memcached(0)
        try:
            assert await writer.install([(ka, 2, {"x": "new"}), (kb, 2, {"x": "new"})]) == {ka}
            got = await asyncio.wait_for(reader.get_many([ka, kb]), HANG_GUARD)
            assert got == {kb: {"x": "new", "v": 2}}
        finally:
            services.start_memcached(0)

        async def recovered():
            got = await reader.get_many([ka])
            assert all(v["x"] != "old" for v in got.values()), got
            return await reader.install_many([Install(ka, 2, put({"x": "new"}))]) == set()

        await eventually(recovered, "the restarted server takes installs again")

        async def reads_new():
            got = await reader.get_many([ka])
            assert all(v["x"] != "old" for v in got.values()), got
            if got:
                return got == {ka: {"x": "new", "v": 2}}
            # the writer's recovery flush may have wiped our install: install again
            await reader.install_many([Install(ka, 2, put({"x": "new"}))])
            return False

        await eventually(reads_new, "the restarted server serves reads after the recovery grace")
        assert reader.stats()["faults"] >= 1

        # The writer saw the fault too, so it flushes the server once (a miss, never v1); its
        # repair then installs v2 (a no-op if the value is still there) and it reads v2.
        async def writer_reads_new():
            got = await writer.get([ka])
            assert all(v["x"] != "old" for v in got.values()), got
            if got:
                return got == {ka: {"x": "new", "v": 2}}
            await writer.install([(ka, 2, {"x": "new"})])
            return False

        await eventually(writer_reads_new, "the writer reads v2")
    finally:
        await writer.close()


async def test_a_process_frozen_through_the_fault_does_not_read_stale(make_memcached, services, prefix):
    """A reader process is SIGSTOPped while the server misses a write, and woken as the server
    resumes. It cannot tell its own freeze from a stall, so it saw a blind spot, not a fault:
    it must not flush the server (that would empty it for every process) and must not read it
    at once (its heartbeat is stale); the writer, which saw the fault, flushes it, and the
    reader reads only after its grace, by which time the writer has: never the old value."""
    reader = RemoteTier(list(services.memcached), key_prefix=prefix, **FAULT_KW)
    writer = make_memcached(**FAULT_KW)
    try:
        k = key_on(writer, prefix, services.memcached[0])
        assert await writer.install_many([Install(k, 1, put({"x": "old"}))]) == set()
        assert await reader.get([k]) == {k: {"x": "old", "v": 1}}

        os.kill(reader.pid, signal.SIGSTOP)
        try:
            services.pause_memcached(0)
            try:
                assert await writer.install_many([Install(k, 2, put({"x": "new"}))]) == {k}
            finally:
                services.resume_memcached(0)
            reader.send_get([k])  # waits in the pipe until the reader runs again
        finally:
            os.kill(reader.pid, signal.SIGCONT)
        got = await reader.receive()
        assert got == {}, got

        async def back_in_use():
            got = await reader.get([k])
            assert all(v["x"] != "old" for v in got.values()), got
            if got:
                return got == {k: {"x": "new", "v": 2}}
            await reader.install([(k, 2, {"x": "new"})])  # the writer's flush may wipe it: again
            return False

        await eventually(back_in_use, "the woken reader reads the new value")
        stats = await reader.stats()
        assert stats["flushes"] == 0 and stats["faults"] == 0 and stats["blind_spots"] >= 1, stats
        assert writer.stats()["flushes"] >= 1
    finally:
        await reader.close()


async def test_a_fill_read_before_the_fault_is_fenced_out_after_recovery(make_memcached, services, prefix):
    """The slow-reader race across a fault: a reader takes its fence and reads v1 from SQL; a
    writer in another process commits v2, but its install fails on the paused server; the
    server comes back and is flushed; the reader's late fill of v1 must be refused, or it
    would sit in the flushed server as the only (stale) value."""
    reader = make_memcached(**FAULT_KW)
    writer = RemoteTier(list(services.memcached), key_prefix=prefix, **FAULT_KW)
    try:
        k = key_on(reader, prefix, services.memcached[0])
        await reader.get_many([k])  # first contact: both servers healthy
        fence = reader.fence()  # ...then "SELECT" returns v1

        services.pause_memcached(0)
        try:
            assert await writer.install([(k, 2, {"x": "new"})]) == {k}
        finally:
            services.resume_memcached(0)

        async def back_in_use():  # the reader saw the fault and has flushed the server
            return reader.stats()["flushes"] >= 1 and reader.stats()["servers_suspect"] == 0

        await eventually(back_in_use, "the reader flushes the resumed server")
        assert await reader.install_many([Install(k, 1, put({"x": "old"}), fence)]) == {k}
        # Not the value: a tombstone at its version, which the store reads as a miss — unless
        # the writer's own recovery flush has already wiped it. Read raw (the reader itself
        # serves reads only after its recovery grace).
        raw = Client(services.memcached[0], timeout=5, connect_timeout=5)
        try:
            stored = await asyncio.to_thread(raw.get, f"{prefix}:{k}")
        finally:
            raw.close()
        assert stored is None or json.loads(stored) == {"v": 1, "stale": True}, stored
        for _ in range(10):  # and through the grace and after it, the reader never serves v1
            assert await reader.get_many([k]) in ({}, {k: {"v": 1, "stale": True}})
            await asyncio.sleep(0.1)

        # A fill fenced after the recovery reads SQL after the writer's commit: it is accepted.
        async def fresh_fill_lands():
            if await reader.install_many([Install(k, 2, put({"x": "new"}), reader.fence())]):
                return False  # only if the box stalled the heartbeat again: retry
            return await reader.get_many([k]) == {k: {"x": "new", "v": 2}}

        await eventually(fresh_fill_lands, "a fill fenced after the recovery is installed")
    finally:
        await writer.close()


async def test_the_heartbeat_reads_the_servers_identity_once_a_connection_and_sees_a_restart(services):
    """The heartbeat's probe is `version` over the connection that read the server's identity
    (`stats`: pid, uptime) and `stats` again only on a new connection; a restart breaks the
    connection, so it is still seen: a fault, then a recovery with a flush."""
    from tao.cache.health import ChangeClock, ServerHealth

    host, port = services.memcached[0].rsplit(":", 1)
    health = ServerHealth("mc0", (host, int(port)), clock=ChangeClock(), interval=0.02, probe_timeout=TIMEOUT,
                          read_grace=0.05, blind_limit=10.0)
    reads = {"stats": 0, "version": 0}
    for name in reads:
        real = getattr(health._client, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            reads[_name] += 1
            return _real(*args, **kwargs)
        setattr(health._client, name, counted)
    health.start()
    try:
        async def ten_probes():
            return reads["version"] >= 10
        await eventually(ten_probes, "ten probes")
        assert reads["stats"] == 1 and health.healthy and health.faults == 0

        services.kill_memcached(0)
        services.start_memcached(0)

        async def recovered():
            return health.faults >= 1 and health.healthy and health.flushes >= 1
        await eventually(recovered, "the restart seen as a fault, then a recovery with a flush", attempts=200)
        assert reads["stats"] >= 2  # the new connection read the restarted server's identity
    finally:
        await asyncio.to_thread(health.stop)
