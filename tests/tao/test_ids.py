"""Ids that no two processes make alike: each process leases an id slot from each database
server of the store (tao/id_leases.py) and puts the slot of a shard's server in the shard's ids
(tao/ids.py). Real stores, both backends (SQLite is one server; MariaDB two, 8 shards
round-robin); a "process" is an open `Tao` (each leases its own slots), the pause test stops a
real child process, and the outage tests kill a real MariaDB server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import contextmanager

import pytest

from config import Settings
from tao import IdLeaseLostError, IdSlotsExhaustedError, InvalidIdError, ShardUnavailableError, Tao, open_tao
from tao.cache import make_cache_tier
from tao.ids import N_SLOTS, IdGenerator, make_id, shard_of, slot_of, time_of
from tao.shardmap import ShardMap
from tao.startup import explain_startup_error
from tao.store import make_backend
from tao.testing import TaoTestHooks as hooks
from tao.types import REGISTRY
from tests.tao.procs import RemoteTao, write_config

BURST = 2_000  # ids per store, all in one frozen millisecond


@contextmanager
def frozen_ms(ms: int, *stores):
    """Every id generator of `stores` sees the clock stopped at `ms` (synchronous code only)."""
    saved_time = time.time
    saved = [t.ids.__dict__.get("now_ms") for t in stores]
    time.time = lambda: ms / 1000  # what the generator read before it had the store's clock
    for t in stores:
        t.ids.now_ms = lambda: ms
    try:
        yield
    finally:
        time.time = saved_time
        for t, now_ms in zip(stores, saved):
            if now_ms is None:
                del t.ids.now_ms
            else:
                t.ids.now_ms = now_ms


async def test_two_processes_on_one_store_make_disjoint_ids_in_the_same_millisecond(store_settings: Settings):
    """The defect: two processes, one shard, one millisecond. Before slots, their 10-bit
    sequences (each from a random start) covered the same values, and a job row with a
    colliding id failed its whole transaction."""
    a = await open_tao(store_settings, migrate=True, start_worker=False)
    b = await open_tao(store_settings, migrate=False, start_worker=False)
    try:
        with frozen_ms(a.clock.now_ms(), a, b):
            made_a, made_b = [], []
            for _ in range(BURST):  # interleaved, as two processes' requests would be
                made_a.append(a.ids.next_id(3))
                made_b.append(b.ids.next_id(3))
        assert len(set(made_a)) == len(set(made_b)) == BURST
        assert not set(made_a) & set(made_b)
        assert {a.shard(i) for i in made_a + made_b} == {3}

        # As the outbox writes them: every id a row, in one transaction on the shard.
        async def insert(conn):
            await conn.executemany("INSERT INTO {outbox} (id, handler, payload, run_at, attempts, created) "
                                   "VALUES (%s, 'test.none', '{}', 0, 0, 0)", [(i,) for i in made_a + made_b])
        await hooks(a).write(3, insert)
    finally:
        await a.close()
        await b.close()


async def test_each_store_leases_its_own_slot_and_a_released_slot_restarts_above_its_ids(store_settings: Settings):
    a = await open_tao(store_settings, migrate=True, start_worker=False)
    b = await open_tao(store_settings, migrate=False, start_worker=False)
    try:
        assert (a.ids.slot_on(0), b.ids.slot_on(0)) == (0, 1)
        assert slot_of(a.ids.next_id(0)) == 0 and slot_of(b.ids.next_id(0)) == 1
        # A burst borrows milliseconds ahead of the clock (4 ids a ms on one shard)...
        with frozen_ms(a.clock.now_ms(), a):
            burst = [a.ids.next_id(5) for _ in range(400)]
        assert time_of(burst[-1]) - time_of(burst[0]) == 99
    finally:
        await a.close()
    try:
        # ...so the slot's next holder starts above them, whatever its clock says.
        c = await open_tao(store_settings, migrate=False, start_worker=False)
        try:
            assert c.ids.slot_on(c.ids.server_of(5)) == 0
            with frozen_ms(c.clock.now_ms(), c):
                first = c.ids.next_id(5)
            assert time_of(first) > time_of(burst[-1]) and first > max(burst)
        finally:
            await c.close()
    finally:
        await b.close()


async def test_when_every_slot_is_held_the_store_does_not_open_and_says_why(store_settings: Settings):
    a = await open_tao(store_settings, migrate=True, start_worker=False)
    try:
        now = a.clock.now_ms()

        async def others(conn):  # 255 live processes elsewhere, on server 0 (lease shard 0)
            await conn.executemany("INSERT INTO {id_slots} (slot, owner, expires) VALUES (%s, %s, %s)",
                                   [(s, f"elsewhere:{s}", now + 60_000) for s in range(1, N_SLOTS)])
        await hooks(a).write(0, others)
        with pytest.raises(IdSlotsExhaustedError) as caught:
            await open_tao(store_settings, migrate=False, start_worker=False)
        assert f"all {N_SLOTS} id slots are leased (server 0's, in shard 0's id_slots table" in str(caught.value)
        sentence = explain_startup_error(caught.value, store_settings)
        assert sentence is not None and sentence.startswith("no id slot is free: ")
        assert "store.id_lease_seconds" in sentence

        async def crash(conn):  # one of them died: its lease ended
            await conn.execute("UPDATE {id_slots} SET expires = %s WHERE slot = 17", (now - 1,))
        await hooks(a).write(0, crash)
        b = await open_tao(store_settings, migrate=False, start_worker=False)
        try:
            assert b.ids.slot_on(0) == 17
        finally:
            await b.close()
    finally:
        await a.close()


async def test_a_paused_process_loses_its_slot_and_leases_another_before_its_next_id(store_settings: Settings,
                                                                                      tmp_path):
    """A real child process holds slot 0 with a 1 s lease; it is stopped (SIGSTOP) for 2.5 s,
    and a store opened meanwhile takes slot 0 over. Resumed, the child makes no id with slot 0:
    at most a refused one (IdLeaseLostError) while its lease task takes slot 1."""
    store_settings.store.id_lease_seconds = 1.0
    pre = await open_tao(store_settings, migrate=True, start_worker=False)
    await pre.close()  # migrated; slot 0 released
    child = RemoteTao(await asyncio.to_thread(write_config, store_settings, tmp_path / "taogram.toml"))
    taker = None
    try:
        job = await child.call("enqueue", 1, "tao.cache_refill", {"items": []})  # 1: an id on shard 0
        assert slot_of(job) == 0
        os.kill(child.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(2.5)
            taker = await open_tao(store_settings, migrate=False, start_worker=False)
            assert taker.ids.slot_on(0) == 0  # the lowest free slot: the stopped child's lease ended
            taken = [taker.ids.next_id(0) for _ in range(100)]
        finally:
            os.kill(child.pid, signal.SIGCONT)
        refused, made = 0, None
        for _ in range(50):
            try:
                made = await child.call("enqueue", 1, "tao.cache_refill", {"items": []})
                break
            except RuntimeError as exc:
                assert "IdLeaseLostError" in str(exc), exc
                refused += 1
                await asyncio.sleep(0.1)
        # Usually none or one (the renewal runs before or after the first call); a slow box may see more.
        assert made is not None and refused <= 5, refused
        assert slot_of(made) == 1 and made not in taken
        # The taker's own lease is renewed past its first end (three renewals a lease).
        await asyncio.sleep(1.5)
        assert slot_of(taker.ids.next_id(0)) == 0
        assert taker.stats()["id_lease_queries"] > 3
    finally:
        await child.close()
        if taker is not None:
            await taker.close()


def test_a_generator_makes_no_id_without_a_slot_nor_at_its_fence_and_asks_for_renewal_near_it():
    gen = IdGenerator(lambda: 1_800_000_000_000)
    with pytest.raises(IdLeaseLostError, match="holds no id slot"):
        gen.next_id(0)
    asked = []
    gen.on_renew = lambda server: asked.append(gen.fence_on(server))
    gen.renew_within = 2
    gen.lease(7, floor_ms=0, fence_ms=1_800_000_000_004)
    ids = [gen.next_id(0) for _ in range(8)]  # two milliseconds of 4: far from the fence
    assert len(set(ids)) == 8 and ids == sorted(ids) and asked == []
    ids += [gen.next_id(0) for _ in range(8)]  # within 2 ms of the fence: asks, once
    assert asked == [1_800_000_000_004] and len(set(ids)) == 16
    with pytest.raises(IdLeaseLostError, match="lease on server 0 .* ended at"):
        gen.next_id(0)
    gen.extend(7, 1_800_000_000_010)
    assert time_of(gen.next_id(1)) == 1_800_000_000_000  # each shard has its own sequence
    assert time_of(gen.next_id(0)) == gen.high_ms() == 1_800_000_000_004
    assert gen.revoke() == 1_800_000_000_005  # the next holder starts above every id made


async def test_a_batch_running_ahead_of_the_clock_keeps_its_lease_ahead_of_its_ids(store_settings: Settings):
    """4 ids a ms on one shard: a batch job making them faster runs ahead of the clock. Each
    renewal puts the fence a lease beyond the highest id made, and an id within half a lease of
    the fence asks for one at once, so the batch never meets the fence."""
    store_settings.store.id_lease_seconds = 1.0
    a = await open_tao(store_settings, migrate=True, start_worker=False)
    try:
        start = a.clock.now_ms()
        a.ids.now_ms = lambda: start  # the clock stands still: every id runs ahead
        made = []
        for _ in range(40):
            made += [a.ids.next_id(2) for _ in range(500)]  # 125 ms more ahead a chunk
            await asyncio.sleep(0.01)  # what a batch's writes would wait for
        # From the first id: the lease's floor (the server's now at open) may be a ms or two past `start`.
        assert len(set(made)) == 20_000 and time_of(made[-1]) - time_of(made[0]) == 4_999
        await asyncio.sleep(0.2)  # the renewal the last chunk asked for (on SQLite, in a thread: it may take >10 ms)
        assert a.ids.fence_on(a.ids.server_of(2)) > time_of(made[-1]) + 500
    finally:
        await a.close()


def test_each_server_has_its_own_lease_in_the_generator():
    """Shards 0 and 2 on server 0, 1 and 3 on server 1: an id for a shard needs the slot of the
    shard's server, and one server's fence says nothing about the other's."""
    gen = IdGenerator(lambda: 1_800_000_000_000, server_of_shard=(0, 1, 0, 1))
    asked = []
    gen.on_renew = asked.append
    gen.lease(9, floor_ms=0, fence_ms=1_800_000_060_000, server=1)
    made = [gen.next_id(1), gen.next_id(3)]
    assert [slot_of(i) for i in made] == [9, 9] and [shard_of(i) for i in made] == [1, 3]
    with pytest.raises(IdLeaseLostError, match="no id slot on server 0 \\(logical shard 2's"):
        gen.next_id(2)
    assert asked == [0]  # the refusal woke server 0's lease, not server 1's
    with pytest.raises(InvalidIdError):
        gen.next_id(4)  # not a shard of this map
    gen.lease(3, floor_ms=0, fence_ms=1_800_000_000_001, server=0)
    assert slot_of(gen.next_id(0)) == 3
    with pytest.raises(IdLeaseLostError, match="id slot 3's lease on server 0"):
        [gen.next_id(0) for _ in range(4)]  # the fence of server 0 is at the next ms
    assert slot_of(gen.next_id(1)) == 9  # server 1's ids go on
    assert gen.revoke(0) == 1_800_000_000_001 and gen.slot_on(0) is None and gen.slot_on(1) == 9


async def _write_on(tao, owner: int, n: int = 1) -> list[int]:
    return [(await tao.obj_add("TEST_NODE", {"i": i}, owner=owner)) for i in range(n)]


async def test_a_dead_server_stops_ids_only_for_its_own_shards_and_its_lease_is_taken_again(mysql_settings,
                                                                                              services):
    """Server 0 (which holds shard 0, where the one lease of the first version lived) is killed
    for several leases. The process keeps making ids and writing on server 1's shards; server
    0's shards get the retryable IdLeaseLostError; restarted, server 0's lease is renewed. On
    the single-lease code every id stopped a lease after the kill."""
    s = mysql_settings
    s.store.id_lease_seconds = 1.0
    s.store.query_timeout = s.store.acquire_timeout = s.store.connect_timeout = 1.0
    tao = await open_tao(s, migrate=True, start_worker=False)
    dead = False
    try:
        on_0, on_1 = tao.ids.next_id(0), tao.ids.next_id(1)  # owners on shard 0 (server 0) and 1 (server 1)
        assert (tao.ids.slot_on(0), tao.ids.slot_on(1)) == (0, 0)
        await asyncio.to_thread(services.kill_mysql, 0)
        dead = True
        await asyncio.sleep(1.5)  # past server 0's fence (a lease, and the renewals fail)
        with pytest.raises(IdLeaseLostError, match="on server 0"):
            tao.ids.next_id(0)
        # Server 1's shards: ids and writes go on for three more leases, its lease renewed throughout.
        written = []
        for _ in range(15):
            written += await _write_on(tao, on_1)
            for shard in (1, 3, 5, 7):
                assert tao.ids.server_of(shard) == 1 and slot_of(tao.ids.next_id(shard)) == 0
            await asyncio.sleep(0.2)
        assert len(written) == 15 and all(tao.shard(i) == tao.shard(on_1) for i in written)
        # An object with no owner goes to a shard whose server can take it.
        placed = [await tao.obj_add("TEST_NODE", {}) for _ in range(5)]
        assert all(tao.ids.server_of(tao.shard(i)) == 1 for i in placed)
        with pytest.raises((IdLeaseLostError, ShardUnavailableError)):
            await tao.obj_add("TEST_NODE", {}, owner=on_0)
        await asyncio.to_thread(services.start_mysql, 0)
        dead = False
        for _ in range(100):  # the lease task retries every second
            try:
                made = tao.ids.next_id(0)
                break
            except IdLeaseLostError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("server 0's lease was not taken again within 10 s")
        assert slot_of(made) == 0 and tao.ids.slot_on(0) == 0  # renewed: no one took it meanwhile
        assert (await _write_on(tao, on_0)) and tao.ids.fence_on(0) > tao.clock.now_ms()
    finally:
        if dead:
            await asyncio.to_thread(services.start_mysql, 0)
        await tao.close()


async def test_a_server_down_at_open_leaves_only_its_shards_without_ids_until_it_is_back(mysql_settings,
                                                                                           services):
    """`lease_ids` takes a slot on every server at once; one it cannot reach does not fail it:
    its shards refuse ids (retryable) until the lease task takes a slot there."""
    s = mysql_settings
    s.store.id_lease_seconds = 1.0
    s.store.query_timeout = s.store.acquire_timeout = s.store.connect_timeout = 1.0
    first = await open_tao(s, migrate=True, start_worker=False)
    await first.close()
    shard_map = ShardMap.from_settings(s.store)
    tao = Tao(s, REGISTRY, shard_map, make_backend(s, shard_map), make_cache_tier(s.cache))
    await asyncio.to_thread(services.kill_mysql, 1)
    dead = True
    try:
        assert await tao.lease_ids() == {0: 0, 1: None}
        assert slot_of(tao.ids.next_id(2)) == 0
        with pytest.raises(IdLeaseLostError, match="no id slot on server 1"):
            tao.ids.next_id(3)
        await asyncio.to_thread(services.start_mysql, 1)
        dead = False
        for _ in range(100):
            if tao.ids.slot_on(1) is not None:
                break
            await asyncio.sleep(0.1)
        assert tao.ids.slot_on(1) == 0 and slot_of(tao.ids.next_id(3)) == 0
    finally:
        if dead:
            await asyncio.to_thread(services.start_mysql, 1)
        await tao.close()


async def test_an_unowned_object_goes_to_another_server_while_its_shards_have_no_id_slot(mysql_settings):
    """Server 1 is up, but every one of its slots is held elsewhere (this process's was taken):
    its shards refuse ids, and objects with no owner are placed on server 0's shards instead of
    failing; an owned one on server 1 gets the retryable IdLeaseLostError."""
    s = mysql_settings
    s.store.id_lease_seconds = 1.0
    tao = await open_tao(s, migrate=True, start_worker=False)
    try:
        now = tao.clock.now_ms()

        async def take_all(conn):  # lease shard 1: 256 live processes elsewhere, this one's row taken over
            await conn.execute("DELETE FROM {id_slots}")
            await conn.executemany("INSERT INTO {id_slots} (slot, owner, expires) VALUES (%s, %s, %s)",
                                   [(k, f"elsewhere:{k}", now + 60_000) for k in range(N_SLOTS)])
        await hooks(tao).write(1, take_all)
        for _ in range(50):  # until this process's fence on server 1 has passed
            try:
                tao.ids.next_id(1)
                await asyncio.sleep(0.1)
            except IdLeaseLostError:
                break
        else:
            raise AssertionError("server 1's ids were still made 5 s after its slot was taken")
        placed = [await tao.obj_add("TEST_NODE", {"i": i}) for i in range(20)]
        assert all(tao.ids.server_of(tao.shard(i)) == 0 for i in placed)
        with pytest.raises(IdLeaseLostError, match="on server 1"):
            await tao.obj_add("TEST_NODE", {}, owner=make_id(now, 3, 0))  # owned on shard 3, server 1
    finally:
        await tao.close()


async def test_the_lease_tables_name_each_servers_holders_and_latest_end(store_settings: Settings):
    """What a shard move checks (docs/sharding.md, "Moving a shard"): each server's lease shard,
    the slots held there, the latest `expires`, the server's now. A store opened with
    `make_ids=False` takes no slot and makes no id."""
    a = await open_tao(store_settings, migrate=True, start_worker=False)
    try:
        reader = await open_tao(store_settings, start_worker=False, make_ids=False)
        try:
            with pytest.raises(IdLeaseLostError, match="holds no id slot"):
                reader.ids.next_id(0)
            tables = await reader.id_lease_tables()
        finally:
            await reader.close()
        servers = sorted(set(hooks(a).shard_map.server_of_shard))
        assert [(t.server, t.lease_shard) for t in tables] == [(s, s) for s in servers]  # round-robin: shard s
        for t in tables:
            assert t.held == 1 and t.latest_expires <= a.ids.fence_on(t.server)  # a's, renewed since perhaps
            assert 0 < t.latest_expires - t.server_now <= 30_000 + 1_000
    finally:
        await a.close()
