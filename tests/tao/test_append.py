"""assoc_append_many: a list in commit order, the real-time streams' foundation (both backends)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tao import InvalidDataError, ListCheck, Tao
from tao.models import now_ms
from tao.testing import TaoTestHooks as hooks


async def test_positions_strictly_increase_in_commit_order_under_concurrency(tao: Tao) -> None:
    user = await tao.obj_add("TEST_NODE", {})
    ids = [tao.ids.next_id(tao.shard(user)) for _ in range(40)]

    async def one(i: int):
        (a,) = await tao.assoc_append_many([(user, "STREAM_EVENT", ids[i], {"n": i})])
        return a
    results = await asyncio.gather(*(one(i) for i in range(40)))
    times = sorted(r.assoc.time for r in results)
    assert len(set(times)) == 40, "positions are unique within a list"
    # Each append's prev is the position of the one that committed just before it.
    by_time = {r.assoc.time: r for r in results}
    for earlier, later in zip(times, times[1:]):
        assert by_time[later].prev == earlier
    assert by_time[times[0]].prev == 0
    assert await tao.assoc_count(user, "STREAM_EVENT") == 40
    edges = await tao.assoc_time_range(user, "STREAM_EVENT", limit=100)
    assert [e.time for e in edges] == sorted(times, reverse=True)


async def test_append_is_idempotent_and_the_clock_never_goes_back(tao: Tao) -> None:
    user = await tao.obj_add("TEST_NODE", {})
    eid = tao.ids.next_id(tao.shard(user))
    future = now_ms() + 60_000
    # An edge far in the future (a clock that ran ahead): the next append still goes after it.
    await tao.assoc_add(user, "STREAM_EVENT", tao.ids.next_id(0), time=future)
    (first,) = await tao.assoc_append_many([(user, "STREAM_EVENT", eid, {"k": "x"})])
    assert first.new and first.prev == future and first.assoc.time == future + 1
    (again,) = await tao.assoc_append_many([(user, "STREAM_EVENT", eid, {"k": "x"})])
    assert not again.new and again.assoc.time == first.assoc.time
    assert await tao.assoc_count(user, "STREAM_EVENT") == 2
    # Same id, different content: another event drew the id; both are kept.
    (other,) = await tao.assoc_append_many([(user, "STREAM_EVENT", eid, {"k": "y"})])
    assert other.new and other.assoc.id2 != eid and other.assoc.time == future + 2
    assert await tao.assoc_count(user, "STREAM_EVENT") == 3


async def test_many_users_on_many_shards_in_one_call(tao: Tao) -> None:
    users = [await tao.obj_add("TEST_NODE", {}) for _ in range(6)]
    eid = tao.ids.next_id(0)
    out = await tao.assoc_append_many([(u, "STREAM_EVENT", eid, {"k": "m"}) for u in users])
    assert [a.assoc.id1 for a in out] == users and all(a.new for a in out)
    for u in users:
        assert await tao.assoc_count(u, "STREAM_EVENT") == 1


async def test_refuses_types_that_cannot_keep_commit_order(tao: Tao) -> None:
    with pytest.raises(InvalidDataError):
        await tao.assoc_append_many([(1 << 30, "FOLLOWS", 1 << 30, None)])


async def test_edges_and_appends_commit_together_one_transaction_per_shard(tao: Tao) -> None:
    """assoc_add_and_append: a delivery's folder edges and stream appends for the users of one
    shard are one transaction (two statements for the locks and reads of every list, one for
    the edges, one for the counts), and the appends keep append_many's rules."""
    users = [await tao.obj_add("TEST_NODE", {})]
    users.append(await tao.obj_add("TEST_NODE", {}, owner=users[0]))  # the same shard
    while tao.shard(users[-1]) == tao.shard(users[0]):
        users.append(await tao.obj_add("TEST_NODE", {}))
    users = [users[0], users[1], users[-1]]
    target = await tao.obj_add("TEST_NODE", {})
    earlier = [(u, "STREAM_EVENT", tao.ids.next_id(tao.shard(u)), {"k": "old"}) for u in users]
    await tao.assoc_append_many(earlier)
    eid = tao.ids.next_id(0)
    before = tao.stats().get("sql_queries", 0)
    n, out = await tao.assoc_add_and_append([(u, "TEST_PLAIN", target, 1000, {"w": 1}) for u in users],
                                            [(u, "STREAM_EVENT", eid, {"k": "new"}) for u in users])
    statements = tao.stats().get("sql_queries", 0) - before
    assert n == 3 and [a.assoc.id1 for a in out] == users and all(a.new for a in out)
    assert statements == 2 * 4, statements  # two shards: the lock, the read, the edges, the counts
    for u, old in zip(users, earlier):
        assert await tao.assoc_count(u, "TEST_PLAIN") == 1 and await tao.assoc_count(u, "STREAM_EVENT") == 2
        newest = await tao.assoc_time_range(u, "STREAM_EVENT", limit=2)
        assert newest[0].id2 == eid and newest[0].time > newest[1].time and newest[1].id2 == old[2]
    assert [a.prev for a in out] == [(await tao.assoc_time_range(u, "STREAM_EVENT", limit=2))[1].time
                                     for u in users]  # each append's prev: its stream's previous event
    # A retry appends nothing and counts nothing again.
    n, again = await tao.assoc_add_and_append([(u, "TEST_PLAIN", target, 1000, {"w": 1}) for u in users],
                                              [(u, "STREAM_EVENT", eid, {"k": "new"}) for u in users])
    assert n == 0 and not any(a.new for a in again)
    assert [a.assoc.time for a in again] == [a.assoc.time for a in out]
    assert [await tao.assoc_count(u, "STREAM_EVENT") for u in users] == [2, 2, 2]


async def test_a_checked_write_sees_the_whole_list_under_its_lock_and_aborts_cleanly(tao: Tao) -> None:
    """assoc_add_and_append(check=ListCheck(...)): the check gets the list as it stands in the
    write's transaction (newest first), in the same lock and read statements (no statement of
    its own); raising from it commits nothing, and the exception comes through."""
    owner = await tao.obj_add("TEST_NODE", {})
    members = [await tao.obj_add("TEST_NODE", {}) for _ in range(3)]
    for i, m in enumerate(members):
        await tao.assoc_add(owner, "TEST_PLAIN", m, time=1000 + i, data={"i": i})
    target = await tao.obj_add("TEST_NODE", {})
    eid = tao.ids.next_id(tao.shard(owner))
    seen: list[list] = []

    def record(edges):
        seen.append([(e.id2, e.time, e.data) for e in edges])

    before = tao.stats().get("sql_queries", 0)
    n, _ = await tao.assoc_add_and_append([(owner, "TEST_PLAIN", target, 2000, {})],
                                          [(owner, "STREAM_EVENT", eid, {"k": "x"})],
                                          check=ListCheck(owner, "TEST_PLAIN", record))
    assert tao.stats().get("sql_queries", 0) - before == 4  # the lock, the read, the edges, the counts
    assert n == 1 and seen == [[(m, 1000 + i, {"i": i}) for i, m in reversed(list(enumerate(members)))]]

    class Moved(Exception):
        pass

    def refuse(edges):
        raise Moved(len(edges))

    with pytest.raises(Moved):
        await tao.assoc_add_and_append([(owner, "TEST_PLAIN", members[0], 3000, {"new": 1})],
                                       [(owner, "STREAM_EVENT", tao.ids.next_id(0), {"k": "y"})],
                                       check=ListCheck(owner, "TEST_PLAIN", refuse))
    edges = await tao.assoc_range(owner, "TEST_PLAIN", 0, 10)
    assert [(e.id2, e.time, e.data) for e in edges][-1] == (members[0], 1000, {"i": 0})  # not rewritten
    assert [e.id2 for e in edges] == [target, *reversed(members)]
    assert await tao.assoc_count(owner, "STREAM_EVENT") == 1
    other = await tao.obj_add("TEST_NODE", {})
    while tao.shard(other) == tao.shard(owner):
        other = await tao.obj_add("TEST_NODE", {})
    with pytest.raises(InvalidDataError):  # a checked write is one transaction
        await tao.assoc_add_and_append([(other, "TEST_PLAIN", target)], [],
                                       check=ListCheck(owner, "TEST_PLAIN", record))


async def test_a_check_can_leave_stale_edges_out_of_its_write(tao: Tao) -> None:
    """A check that returns edges of the write (id1, atype, id2) leaves them out: they are not
    written (the stored edge, its cached list and its count stay as they were), and the rest of
    the write commits."""
    owner = await tao.obj_add("TEST_NODE", {})
    kept, fresh = await tao.obj_add("TEST_NODE", {}), await tao.obj_add("TEST_NODE", {})
    await tao.assoc_add(owner, "TEST_PLAIN", kept, time=1000, data={"mark": 5})
    await tao.assoc_range(owner, "TEST_PLAIN", 0, 10)  # cached: a left-out edge must not be installed

    def stale(edges):
        return [(owner, "TEST_PLAIN", e.id2) for e in edges if e.data.get("mark", 0) >= 3]

    n, _ = await tao.assoc_add_and_append([(owner, "TEST_PLAIN", kept, 2000, {"mark": 3}),
                                           (owner, "TEST_PLAIN", fresh, 2001, {"mark": 1})], [],
                                          check=ListCheck(owner, "TEST_PLAIN", stale))
    assert n == 1
    edges = await tao.assoc_range(owner, "TEST_PLAIN", 0, 10)  # the cached list
    assert [(e.id2, e.time, e.data) for e in edges] == [(fresh, 2001, {"mark": 1}), (kept, 1000, {"mark": 5})]
    assert await tao.assoc_count(owner, "TEST_PLAIN") == 2
    h = hooks(tao)
    async with h.read(tao.shard(owner)) as conn:  # the stored row
        rows = await conn.fetchall("SELECT time, data FROM {assocs} WHERE id1 = %s AND atype = %s AND id2 = %s",
                                   (owner, h.atype("TEST_PLAIN").code, kept))
    assert [(t, json.loads(d)) for t, d in rows] == [(1000, {"mark": 5})]
