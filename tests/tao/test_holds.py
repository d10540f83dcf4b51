"""`tao.holds`: counted holds with a ceiling on their number and weight, in process memory and
in the real Redis, shared by two instances (two processes' worth) there, leased (a holder that
stops renewing frees its holds; a live one keeps them, and puts back one that lapsed), and the
fall-back to process memory while Redis is unreachable."""

from __future__ import annotations

import asyncio

import pytest

from config import BrokerSettings
from tao.holds import LocalHolds, RedisHolds, make_holds
from tests.harness.processes import free_port


def redis_holds(services, test_id: str, lease: float = 30.0) -> RedisHolds:
    return RedisHolds(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id,
                                     hold_lease_seconds=lease))


@pytest.fixture(params=["local", "redis"])
async def holds(request, test_id):
    if request.param == "local":
        yield LocalHolds()
        return
    made = redis_holds(request.getfixturevalue("services"), test_id)
    yield made
    await made.close()


async def test_count_and_weight_ceilings_and_release(holds) -> None:
    got = [await holds.acquire("u", 10, 3, 100) for _ in range(3)]
    assert all(g.hold is not None for g in got)
    refused = await holds.acquire("u", 10, 3, 100)
    assert refused.hold is None and (refused.count, refused.weight) == (3, 30)
    assert (await holds.acquire("v", 10, 3, 100)).hold is not None  # other keys are untouched
    holds.release(got[0].hold)
    await asyncio.sleep(0.05)  # a shared release reaches Redis in the background
    heavy = await holds.acquire("u", 81, 3, 100)
    assert heavy.hold is None and heavy.weight == 20  # 20 + 81 > 100
    assert (await holds.acquire("u", 80, 3, 100)).hold is not None


async def test_two_holders_share_one_ceiling_and_a_silent_one_lapses(services, test_id) -> None:
    alive, silent = redis_holds(services, test_id, lease=1.0), redis_holds(services, test_id, lease=1.0)
    try:
        assert (await silent.acquire("u", 1, 2, 100)).hold is not None
        assert (await alive.acquire("u", 1, 2, 100)).hold is not None
        assert (await alive.acquire("u", 1, 2, 100)).hold is None  # one ceiling over both
        assert silent._renewer is not None
        silent._renewer.cancel()  # as if its process died: no more renewals
        await asyncio.sleep(2.5)  # two leases: `alive` renewed its hold, `silent` did not
        got = await alive.acquire("u", 1, 2, 100)
        assert got.hold is not None and got.count == 1, got
        assert (await alive.acquire("u", 1, 2, 100)).hold is None
    finally:
        silent._held.clear()
        await silent.close()
        await alive.close()


async def test_a_renewal_puts_back_a_live_hold_that_lapsed(services, test_id) -> None:
    """A process stalled past its lease (or a Redis that lost its data) must not leave its live
    operations uncounted for longer than one renewal period."""
    holds = redis_holds(services, test_id)
    try:
        hold = (await holds.acquire("u", 5, 2, 100)).hold
        assert hold is not None
        await holds._client.delete(f"{test_id}:hold:u")
        await holds.renew()
        assert (await holds.acquire("u", 5, 2, 100)).count == 1
        holds.release(hold)
        await holds.renew()  # a released hold is not put back
        await asyncio.sleep(0.05)
        assert (await holds.acquire("u", 5, 2, 100)).count == 1
    finally:
        await holds.close()


async def test_redis_unreachable_counts_in_process_meanwhile() -> None:
    holds = make_holds(BrokerSettings(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", publish_timeout=0.05,
                                      connect_timeout=0.2))
    try:
        got = [await holds.acquire("u", 1, 2, 100) for _ in range(3)]
        assert [g.hold is not None for g in got] == [True, True, False]
        assert isinstance(holds, RedisHolds) and holds.fallbacks == 3
        holds.release(got[0].hold)
        assert not holds._releasing  # never written to Redis: nothing to remove there (no call to wait out)
        assert (await holds.acquire("u", 1, 2, 100)).hold is not None
    finally:
        await holds.close()


async def test_while_redis_is_down_each_process_holds_at_most_a_ceiling_and_redis_gets_them_back(
        services, test_id) -> None:
    """Redis stopped and restarted (empty). Before, the fall-back counted only the holds taken
    while Redis was down: a process that held 2 of 3 in Redis took 3 more (5 in one process),
    and once Redis was back it counted none of those, so every process took 3 more on top."""
    a, b = redis_holds(services, test_id), redis_holds(services, test_id)
    try:
        before = [await a.acquire("u", 1, 3, 100) for _ in range(2)]
        assert all(g.hold is not None for g in before)
        await asyncio.to_thread(services.kill_redis)
        # Down: each process counts its own holds, those it took in Redis included.
        during_a = [await a.acquire("u", 1, 3, 100) for _ in range(2)]
        assert [g.hold is not None for g in during_a] == [True, False]
        assert (during_a[1].count, during_a[1].weight) == (3, 3)
        during_b = [await b.acquire("u", 1, 3, 100) for _ in range(4)]
        assert [g.hold is not None for g in during_b] == [True, True, True, False]  # N processes: N ceilings
        assert a.fallbacks == 2 and b.fallbacks == 4
        await asyncio.to_thread(services.start_redis)
        # Back (and empty): a process writes what it holds before it takes more, so the ceiling
        # holds over both again: 6 held, nothing more until 4 are given back.
        refused = await a.acquire("u", 1, 3, 100)
        assert refused.hold is None and refused.count == 3, refused
        refused = await b.acquire("u", 1, 3, 100)
        assert refused.hold is None and refused.count == 6, refused
        for g in [*before, during_a[0]]:
            assert g.hold is not None
            a.release(g.hold)
        await asyncio.sleep(0.1)  # releases reach Redis in the background
        refused = await a.acquire("u", 1, 3, 100)
        assert refused.hold is None and refused.count == 3, refused  # b's 3, written by b
        assert during_b[0].hold is not None
        b.release(during_b[0].hold)
        await asyncio.sleep(0.1)
        got = await a.acquire("u", 1, 3, 100)
        assert got.hold is not None and got.count == 2, got
    finally:
        await asyncio.to_thread(services.ensure_running)
        await a.close()
        await b.close()


async def test_acquisitions_while_redis_hangs_do_not_queue_behind_one_another(services, test_id) -> None:
    """Each acquisition after a failure first writes the holds taken meanwhile, under the lock
    the renewals take: with a hung Redis, concurrent ones waited out the timeout in turn (ten
    took ten timeouts). One writes; the others count in the process at once."""
    import time

    from tests.harness.processes import set_stopped

    holds = RedisHolds(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id,
                                      publish_timeout=0.05))  # a Redis call gives up after 0.2 s
    redis = next(s for s in services.servers() if s.kind == "redis")
    try:
        assert (await holds.acquire("u", 1, 100, 1000)).hold is not None
        await asyncio.to_thread(set_stopped, redis, True)
        assert (await holds.acquire("u", 1, 100, 1000)).hold is not None  # counted here: 0.2 s
        start = time.monotonic()
        got = await asyncio.gather(*(holds.acquire("u", 1, 100, 1000) for _ in range(10)))
        elapsed = time.monotonic() - start
        assert all(g.hold is not None for g in got) and sorted(g.count for g in got) == list(range(2, 12))
        assert elapsed < 0.6, elapsed  # one write attempt's timeout, not ten
    finally:
        await asyncio.to_thread(set_stopped, redis, False)
        await holds.close()
