"""`Tao.installs_together`: the cache installs of the writes committed in a block are made in one
tier call at its end (a send's delivery commits on two shards: one exchange per memcached server
and step for both), however the block ends, and never lost by a write that comes after it."""

from __future__ import annotations

import asyncio

import pytest

from tao.testing import TaoTestHooks as hooks


@pytest.fixture
def written_installs(tao, monkeypatch) -> list[list[str]]:
    """The keys of each call of the tier's `install_many` for a write (not a read's fill)."""
    tier = hooks(tao).cache
    real = tier.install_many
    calls: list[list[str]] = []

    async def counting(installs, *, written=False):
        if written:
            calls.append([inst.key for inst in installs])
        return await real(installs, written=written)
    monkeypatch.setattr(tier, "install_many", counting)
    return calls


async def _cached_lists(tao, calls: list, *ids: int) -> None:
    for id1 in ids:
        await tao.assoc_range(id1, "TEST_PLAIN", 0, 10)  # cached, so a write updates it in place
    calls.clear()  # the set-up's own installs (the objects made)


async def _read_from_cache(tao, id1: int) -> list[int]:
    """The list's edges, asserting that reading them took no SQL (the cache held them)."""
    before = tao.stats().get("sql_queries", 0)
    edges = [e.id2 for e in await tao.assoc_range(id1, "TEST_PLAIN", 0, 10)]
    assert tao.stats().get("sql_queries", 0) == before, "read from SQL: the write's install is missing"
    return edges


async def test_the_writes_of_a_block_are_installed_in_one_call_at_its_end(tao, make_user, written_installs):
    a, b, x, y = [await make_user() for _ in range(4)]
    await _cached_lists(tao, written_installs, a, b)
    async with tao.installs_together():
        await tao.assoc_add(a, "TEST_PLAIN", x)
        await tao.assoc_add(b, "TEST_PLAIN", y)
        assert written_installs == []  # held until the block ends
    assert len(written_installs) == 1
    lists = {hooks(tao).list_key(a, 92), hooks(tao).list_key(b, 92)}
    assert {k for k in written_installs[0] if k.startswith("l:")} == lists
    assert await _read_from_cache(tao, a) == [x]
    assert await _read_from_cache(tao, b) == [y]


async def test_a_block_that_raises_still_installs_what_committed(tao, make_user, written_installs):
    a, x = await make_user(), await make_user()
    await _cached_lists(tao, written_installs, a)
    with pytest.raises(RuntimeError):
        async with tao.installs_together():
            await tao.assoc_add(a, "TEST_PLAIN", x)
            raise RuntimeError("after the commit")
    assert len(written_installs) == 1
    assert await _read_from_cache(tao, a) == [x]


async def test_a_write_after_the_block_by_a_task_it_started_installs_on_its_own(tao, make_user, written_installs):
    """The task inherits the block's context; its write comes after the block's one install
    call, so it must make its own (else the write's install is dropped, and the cached list
    stays without the edge)."""
    a, x = await make_user(), await make_user()
    await _cached_lists(tao, written_installs, a)
    go = asyncio.Event()

    async def later() -> None:
        await go.wait()
        await tao.assoc_add(a, "TEST_PLAIN", x)
    async with tao.installs_together():
        task = asyncio.create_task(later())
    go.set()
    await task
    assert len(written_installs) == 1
    assert await _read_from_cache(tao, a) == [x]


async def test_blocks_nest_into_the_outer_one(tao, make_user, written_installs):
    a, b, x, y = [await make_user() for _ in range(4)]
    await _cached_lists(tao, written_installs, a, b)
    async with tao.installs_together():
        await tao.assoc_add(a, "TEST_PLAIN", x)
        async with tao.installs_together():
            await tao.assoc_add(b, "TEST_PLAIN", y)
        assert written_installs == []
    assert len(written_installs) == 1
    assert await _read_from_cache(tao, a) == [x] and await _read_from_cache(tao, b) == [y]
