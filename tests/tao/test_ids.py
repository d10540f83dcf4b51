"""Ids that no two processes make alike: each process leases an id slot from the store
(tao/id_leases.py) and puts it in its ids (tao/ids.py). Real stores, both backends; a "process"
is an open `Tao` (each leases its own slot), and the pause test stops a real child process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import contextmanager

import pytest

from config import Settings
from tao import IdLeaseLostError, IdSlotsExhaustedError, open_tao
from tao.ids import N_SLOTS, IdGenerator, time_of
from tao.startup import explain_startup_error
from tao.testing import TaoTestHooks as hooks
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
    from tao.ids import slot_of

    a = await open_tao(store_settings, migrate=True, start_worker=False)
    b = await open_tao(store_settings, migrate=False, start_worker=False)
    try:
        assert (a.ids.slot, b.ids.slot) == (0, 1)
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
            assert c.ids.slot == 0
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

        async def others(conn):  # 255 live processes elsewhere
            await conn.executemany("INSERT INTO {id_slots} (slot, owner, expires) VALUES (%s, %s, %s)",
                                   [(s, f"elsewhere:{s}", now + 60_000) for s in range(1, N_SLOTS)])
        await hooks(a).write(0, others)
        with pytest.raises(IdSlotsExhaustedError) as caught:
            await open_tao(store_settings, migrate=False, start_worker=False)
        assert f"all {N_SLOTS} id slots are leased" in str(caught.value)
        sentence = explain_startup_error(caught.value, store_settings)
        assert sentence is not None and sentence.startswith("no id slot is free: ")
        assert "store.id_lease_seconds" in sentence

        async def crash(conn):  # one of them died: its lease ended
            await conn.execute("UPDATE {id_slots} SET expires = %s WHERE slot = 17", (now - 1,))
        await hooks(a).write(0, crash)
        b = await open_tao(store_settings, migrate=False, start_worker=False)
        try:
            assert b.ids.slot == 17
        finally:
            await b.close()
    finally:
        await a.close()


async def test_a_paused_process_loses_its_slot_and_leases_another_before_its_next_id(store_settings: Settings,
                                                                                      tmp_path):
    """A real child process holds slot 0 with a 1 s lease; it is stopped (SIGSTOP) for 2.5 s,
    and a store opened meanwhile takes slot 0 over. Resumed, the child makes no id with slot 0:
    at most a refused one (IdLeaseLostError) while its lease task takes slot 1."""
    from tao.ids import slot_of

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
            assert taker.ids.slot == 0  # the lowest free slot: the stopped child's lease ended
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
    gen.on_renew = lambda: asked.append(gen.fence)
    gen.renew_within = 2
    gen.lease(7, floor_ms=0, fence_ms=1_800_000_000_004)
    ids = [gen.next_id(0) for _ in range(8)]  # two milliseconds of 4: far from the fence
    assert len(set(ids)) == 8 and ids == sorted(ids) and asked == []
    ids += [gen.next_id(0) for _ in range(8)]  # within 2 ms of the fence: asks, once
    assert asked == [1_800_000_000_004] and len(set(ids)) == 16
    with pytest.raises(IdLeaseLostError, match="lease ended"):
        gen.next_id(0)
    gen.extend(7, 1_800_000_000_010)
    assert time_of(gen.next_id(1)) == 1_800_000_000_000  # each shard has its own sequence
    assert time_of(gen.next_id(0)) == gen.high_ms == 1_800_000_000_004
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
        assert len(set(made)) == 20_000
        assert time_of(made[-1]) - start == 4_999 and a.ids.fence > time_of(made[-1]) + 500
    finally:
        await a.close()
