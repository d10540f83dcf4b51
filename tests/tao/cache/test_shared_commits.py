"""The embedded default's cross-process coherence, tier side: the shared commit counters, and
what `LocalCache` does with them (each `SharedCommits` handle stands for a process: handles take
distinct slots even within one process, since a slot is an flock on its own open file)."""

from __future__ import annotations

import pytest

from tao.cache import Install, LocalCache
from tao.cache.keys import obj_key, unique_key
from tao.cache.shared_commits import SLOTS, SharedCommits, SlotsExhaustedError
from tao.ids import make_id

N = 4


def _id(shard: int, seq: int = 1) -> int:
    return make_id(1_800_000_000_000, shard, seq)


@pytest.fixture
def handles(tmp_path):
    made = []

    def make(n_shards: int = N) -> SharedCommits:
        h = SharedCommits.open(tmp_path / "commits", n_shards)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_another_processs_commits_show_and_ones_own_do_not(handles):
    a, b = handles(), handles()
    assert a.slot != b.slot
    assert a.changed() == [] and b.changed() == []
    a.bump(2)
    a.bump(2)
    b.bump(0)
    assert a.changed() == [0]
    assert b.changed() == [2]
    assert a.changed() == [] and b.changed() == []


def test_a_closed_handles_slot_is_reused_and_slots_are_bounded(handles):
    a = handles()
    slot = a.slot
    a.bump(1)
    a.close()
    c = handles()
    assert c.slot == slot
    c.bump(1)  # continues the dead slot's counter: others still see a change
    others = [handles() for _ in range(SLOTS - 1)]
    assert len({h.slot for h in [c, *others]}) == SLOTS
    with pytest.raises(SlotsExhaustedError):
        handles()


async def _value(tier: LocalCache, key: str):
    return (await tier.get_many([key])).get(key)


async def test_local_cache_drops_only_the_shards_another_process_wrote(handles):
    mine, theirs = handles(), handles()
    tier = LocalCache(ttl_seconds=60, commits=mine)
    k0, k1, ku = obj_key("", _id(0)), obj_key("", _id(1)), unique_key("", "username", "ab" * 10)
    await tier.install_many([Install(k, 1, lambda old: {"x": 1}) for k in (k0, k1, ku)])
    mine.bump(1)  # this process's own commit: its cache already holds what it wrote
    assert set(await tier.get_many([k0, k1, ku])) == {k0, k1, ku}
    theirs.bump(1)
    got = await tier.get_many([k0, k1, ku])
    assert set(got) == {k0}  # shard 1 and the shard-less unique key are gone; shard 0 is kept
    assert tier.stats()["invalidations"] == 1


async def test_a_fill_read_before_another_processs_commit_is_never_served(handles):
    mine, theirs = handles(), handles()
    tier = LocalCache(ttl_seconds=60, commits=mine)
    key = obj_key("", _id(3))
    fence = tier.fence()          # a reader takes its fence, reads version 1 from SQL...
    theirs.bump(3)                # ...another process commits version 2...
    assert await tier.get_many([key]) == {}  # ...and a read of this process notices
    await tier.install_many([Install(key, 1, lambda old: {"x": "old"}, fence=fence)])
    assert (await _value(tier, key)) == {"v": 1, "stale": True}  # hidden, never shown
    await tier.install_many([Install(key, 2, lambda old: {"x": "new"}, fence=tier.fence())])
    assert (await _value(tier, key)) == {"v": 2, "x": "new"}


async def test_without_counters_nothing_is_fenced(handles):
    tier = LocalCache(ttl_seconds=60)
    key = obj_key("", _id(3))
    await tier.install_many([Install(key, 1, lambda old: {"x": 1}, fence=tier.fence())])
    assert (await _value(tier, key)) == {"v": 1, "x": 1}
