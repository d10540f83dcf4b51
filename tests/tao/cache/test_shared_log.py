"""The embedded default's cross-process coherence, tier side: the shared invalidation log, and
what `LocalCache` does with it. Each `SharedInvalidations` handle stands for a process: handles
take distinct slots even within one process (a slot is an flock on its own open file)."""

from __future__ import annotations

import asyncio

import pytest

from tao.cache import Install, LocalCache, shared_log
from tao.cache.keys import obj_key, unique_key
from tao.cache.shared_log import SLOTS, SharedInvalidations, SlotsExhaustedError


@pytest.fixture
def handles(tmp_path):
    made = []

    def make() -> SharedInvalidations:
        h = SharedInvalidations.open(tmp_path / "cache-log")
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_another_processs_keys_show_and_ones_own_do_not(handles):
    a, b = handles(), handles()
    assert a.slot != b.slot
    assert a.changed() == ([], False)
    a.publish(["o:1", "l:1:FOLLOWS", "o:1"])
    b.publish(["o:2"])
    assert a.changed() == (["o:2"], False)
    assert b.changed() == (["o:1", "l:1:FOLLOWS"], False)
    assert a.changed() == ([], False) and b.changed() == ([], False)


def test_a_reader_further_behind_than_the_ring_drops_everything(handles, monkeypatch):
    a, b = handles(), handles()
    b.publish([f"o:{i}" for i in range(shared_log.RING)])
    assert len(a.changed()[0]) == shared_log.RING
    b.publish([f"o:{i}" for i in range(shared_log.RING + 1)])
    assert a.changed() == ([], True)


def test_a_dead_processs_slot_is_reused_and_slots_are_bounded(handles):
    a, b = handles(), handles()
    a.publish(["o:1"])
    slot = a.slot
    a.close()
    c = handles()
    assert c.slot == slot
    c.publish(["o:3"])  # continues the dead slot's ring: others read only what is new
    assert b.changed() == (["o:1", "o:3"], False)
    more = [handles() for _ in range(SLOTS - 2)]
    assert len({h.slot for h in [b, c, *more]}) == SLOTS
    with pytest.raises(SlotsExhaustedError):
        handles()


async def _value(tier: LocalCache, key: str):
    return (await tier.get_many([key])).get(key)


def _put(key: str, version: int, value: dict, fence: int | None = None) -> Install:
    return Install(key, version, lambda old: dict(value), fence)


async def test_local_cache_drops_the_keys_another_process_wrote(handles):
    mine, theirs = await asyncio.to_thread(handles), await asyncio.to_thread(handles)
    tier = LocalCache(ttl_seconds=60, log=mine)
    other = LocalCache(ttl_seconds=60, log=theirs)
    k1, k2, ku = obj_key("", 1), obj_key("", 2), unique_key("", "username", "ab" * 10)
    await tier.install_many([_put(k, 1, {"x": 1}) for k in (k1, k2, ku)])
    await tier.install_many([_put(k1, 2, {"x": 2})], written=True)  # its own write
    assert set(await tier.get_many([k1, k2, ku])) == {k1, k2, ku}
    await other.install_many([_put(k2, 2, {"x": 2}), _put(ku, 2, {"id": 5})], written=True)
    await other.install_many([_put(k1, 3, {"x": 3})])  # a fill: nothing to tell anyone
    assert set(await tier.get_many([k1, k2, ku])) == {k1}
    assert tier.stats()["invalidated"] == 2


async def test_a_fill_read_before_another_processs_write_is_never_served(handles):
    mine, theirs = await asyncio.to_thread(handles), await asyncio.to_thread(handles)
    tier = LocalCache(ttl_seconds=60, log=mine)
    key = obj_key("", 3)
    fence = tier.fence()          # a reader takes its fence, reads version 1 from SQL...
    theirs.publish([key])         # ...another process commits version 2 and says so...
    assert await tier.get_many([key]) == {}  # ...and a read of this process notices
    await tier.install_many([_put(key, 1, {"x": "old"}, fence)])
    assert await _value(tier, key) == {"v": 1, "stale": True}  # hidden, never shown
    await tier.install_many([_put(key, 2, {"x": "new"}, tier.fence())])
    assert await _value(tier, key) == {"v": 2, "x": "new"}
    assert tier.stats()["install_fenced"] == 1


async def test_without_a_log_nothing_is_fenced():
    tier = LocalCache(ttl_seconds=60)
    key = obj_key("", 3)
    await tier.install_many([_put(key, 1, {"x": 1}, tier.fence())], written=True)
    assert await _value(tier, key) == {"v": 1, "x": 1}
