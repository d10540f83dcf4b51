"""Contract: association verbs, counts, ranges and inverse edges, on both backends."""

from __future__ import annotations

import pytest

from tao import ConflictError, InvalidDataError, InvalidIdError, ObjectNotFoundError, UnknownTypeError
from tao.testing import TaoTestHooks as hooks


async def test_add_creates_edge_count_and_inverse(tao, make_user):
    a, b = await make_user(), await make_user()
    edge = await tao.assoc_add(a, "TEST_LINK", b, time=1000, data={"w": 1})
    assert (edge.id1, edge.atype, edge.id2, edge.time, edge.data) == (a, "TEST_LINK", b, 1000, {"w": 1})
    assert await tao.assoc_count(a, "TEST_LINK") == 1
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1
    inv = await tao.assoc_get(b, "TEST_LINK_OF", [a])
    assert inv[a].time == 1000 and inv[a].data == {"w": 1}


async def test_add_twice_updates_without_double_counting(tao, make_user):
    a, b = await make_user(), await make_user()
    await tao.assoc_add(a, "TEST_LINK", b, time=1000)
    await tao.assoc_add(a, "TEST_LINK", b, time=2000, data={"again": True})
    assert await tao.assoc_count(a, "TEST_LINK") == 1
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1
    got = await tao.assoc_get(a, "TEST_LINK", [b])
    assert got[b].time == 2000 and got[b].data == {"again": True}
    assert (await tao.assoc_get(b, "TEST_LINK_OF", [a]))[a].time == 2000


async def test_delete_removes_edge_count_and_inverse(tao, make_user):
    a, b, c = await make_user(), await make_user(), await make_user()
    await tao.assoc_add(a, "TEST_LINK", b)
    await tao.assoc_add(a, "TEST_LINK", c)
    await tao.assoc_range(a, "TEST_LINK", 0, 10)  # cache the list
    assert await tao.assoc_delete(a, "TEST_LINK", b) is True
    assert await tao.assoc_delete(a, "TEST_LINK", b) is False
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_LINK", 0, 10)] == [c]
    assert await tao.assoc_count(a, "TEST_LINK") == 1
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 0
    assert await tao.assoc_get(a, "TEST_LINK", [b]) == {}
    assert await tao.assoc_get(b, "TEST_LINK_OF", [a]) == {}


async def test_lists_are_newest_first_with_ties_by_id2_desc(tao, make_user):
    a = await make_user()
    others = [await make_user() for _ in range(6)]
    times = [5, 3, 5, 1, 3, 9]
    for o, t in zip(others, times):
        await tao.assoc_add(a, "TEST_PLAIN", o, time=t)
    expected = sorted(zip(times, others), key=lambda p: (-p[0], -p[1]))
    got = await tao.assoc_range(a, "TEST_PLAIN", 0, 10)
    assert [(e.time, e.id2) for e in got] == expected
    await hooks(tao).cache.flush()
    assert [(e.time, e.id2) for e in await tao.assoc_range(a, "TEST_PLAIN", 0, 10)] == expected
    assert [(e.time, e.id2) for e in await tao.assoc_range(a, "TEST_PLAIN", 2, 2)] == expected[2:4]


async def test_time_range_pages_with_a_keyset_cursor(tao, make_user):
    a = await make_user()
    others = [await make_user() for _ in range(7)]
    for i, o in enumerate(others):
        await tao.assoc_add(a, "TEST_PLAIN", o, time=100 + (i // 2))  # pairs share a time
    full = [(e.time, e.id2) for e in await tao.assoc_range(a, "TEST_PLAIN", 0, 10)]
    pages, after = [], None
    while True:
        page = await tao.assoc_time_range(a, "TEST_PLAIN", limit=3, after=after)
        if not page:
            break
        pages += [(e.time, e.id2) for e in page]
        after = (page[-1].time, page[-1].id2)
    assert pages == full
    window = await tao.assoc_time_range(a, "TEST_PLAIN", high=102, low=101, limit=10)
    assert [e.time for e in window] == [102, 102, 101, 101]


@pytest.mark.parametrize("list_limit", [3])
async def test_reads_past_the_cached_window_go_to_sql(tao, make_user, list_limit):
    hooks(tao).list_limit = list_limit
    a = await make_user()
    others = [await make_user() for _ in range(8)]
    for i, o in enumerate(others):
        await tao.assoc_add(a, "TEST_PLAIN", o, time=i)
    expected = [o for o in reversed(others)]
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_PLAIN", 0, 8)] == expected
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_PLAIN", 5, 3)] == expected[5:]
    page = await tao.assoc_time_range(a, "TEST_PLAIN", limit=3, after=(4, others[4]))
    assert [e.id2 for e in page] == expected[4:7]
    assert await tao.assoc_count(a, "TEST_PLAIN") == 8



@pytest.mark.parametrize("list_limit", [3])
async def test_a_type_with_its_own_window_is_cached_whole_past_list_limit(tao, make_user, list_limit):
    """FOLLOWS declares a window of the follow cap: a whole following (here 8 edges, past the
    3-edge default window) is read from its one cached value, and writes keep that value whole."""
    hooks(tao).list_limit = list_limit
    a = await make_user()
    others = [await make_user() for _ in range(9)]
    for i, o in enumerate(others[:8]):
        await tao.assoc_add(a, "FOLLOWS", o, time=i)
    expected = [o for o in reversed(others[:8])]
    assert [e.id2 for e in await tao.assoc_range(a, "FOLLOWS", 0, 100)] == expected  # fills the cache
    tao.reset_stats()
    assert [e.id2 for e in await tao.assoc_range(a, "FOLLOWS", 0, 100)] == expected
    assert tao.stats().get("sql_queries", 0) == 0
    await tao.assoc_add(a, "FOLLOWS", others[8], time=100)
    await tao.assoc_delete(a, "FOLLOWS", others[0])
    tao.reset_stats()
    assert [e.id2 for e in await tao.assoc_range(a, "FOLLOWS", 0, 100)] == [others[8]] + expected[:-1]
    assert tao.stats().get("sql_queries", 0) == 0
    # the default window still holds for other types: the same 8 edges as TEST_PLAIN go to SQL
    for i, o in enumerate(others[:8]):
        await tao.assoc_add(a, "TEST_PLAIN", o, time=i)
    await tao.assoc_range(a, "TEST_PLAIN", 0, 100)
    tao.reset_stats()
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_PLAIN", 0, 100)] == expected
    assert tao.stats().get("sql_queries", 0) == 1

async def test_change_type_moves_the_edge_and_both_counts(tao, make_user):
    a, b = await make_user(), await make_user()
    await tao.assoc_add(a, "FOLLOW_REQUESTED", b, time=77, data={"note": "hi"})
    moved = await tao.assoc_change_type(a, "FOLLOW_REQUESTED", b, "FOLLOWS")
    assert (moved.atype, moved.time, moved.data) == ("FOLLOWS", 77, {"note": "hi"})
    assert await tao.assoc_count(a, "FOLLOW_REQUESTED") == 0
    assert await tao.assoc_count(a, "FOLLOWS") == 1
    assert await tao.assoc_count(b, "FOLLOW_REQUESTED_BY") == 0
    assert await tao.assoc_count(b, "FOLLOWED_BY") == 1
    with pytest.raises(ObjectNotFoundError):
        await tao.assoc_change_type(a, "FOLLOW_REQUESTED", b, "FOLLOWS")


async def test_many_keys_reads_answer_every_key(tao, make_user):
    users = [await make_user() for _ in range(6)]
    for i, u in enumerate(users):
        for v in users[:i]:
            await tao.assoc_add(u, "TEST_LINK", v)
    keys = [(u, "TEST_LINK") for u in users]
    counts = await tao.assoc_count_many(keys)
    assert [counts[k] for k in keys] == list(range(6))
    ranges = await tao.assoc_range_many(keys, 0, 2)
    assert [len(ranges[k]) for k in keys] == [0, 1, 2, 2, 2, 2]
    edges = await tao.assoc_get_many([(users[3], "TEST_LINK", users[0]), (users[0], "TEST_LINK", users[3])])
    assert edges[(users[3], "TEST_LINK", users[0])] is not None
    assert edges[(users[0], "TEST_LINK", users[3])] is None


async def test_many_keys_read_costs_one_sql_query_per_shard(tao, make_user):
    users = [await make_user() for _ in range(16)]
    for u in users:
        await tao.assoc_add(u, "TEST_PLAIN", users[0])
    await hooks(tao).cache.flush()
    tao.reset_stats()
    await tao.assoc_count_many([(u, "TEST_PLAIN") for u in users])
    shards = {tao.shard(u) for u in users}
    assert tao.stats()["sql_queries"] == len(shards)
    tao.reset_stats()
    await tao.assoc_count_many([(u, "TEST_PLAIN") for u in users])
    assert tao.stats()["sql_queries"] == 0
    # one batch per cache server at most (the in-process tier counts one)
    assert 1 <= tao.stats()["cache_round_trips"] <= max(1, len(tao.settings.cache.servers))


async def test_derived_types_cannot_be_written_and_bad_input_changes_nothing(tao, make_user):
    a, b = await make_user(), await make_user()
    with pytest.raises(UnknownTypeError, match="inverse of TEST_LINK"):
        await tao.assoc_add(b, "TEST_LINK_OF", a)
    with pytest.raises(UnknownTypeError):
        await tao.assoc_add(a, "NOPE", b)
    with pytest.raises(InvalidDataError):
        await tao.assoc_add(a, "TEST_LINK", b, data={"x": "y" * 70_000})
    with pytest.raises(InvalidDataError):
        await tao.assoc_range(a, "TEST_LINK", 0, -1)
    assert await tao.assoc_count(a, "TEST_LINK") == 0
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 0


async def test_unique_keys_claim_release(tao, make_user):
    a, b = await make_user(), await make_user()
    assert await tao.key_claim("username", "ada", a)
    assert await tao.key_claim("username", "ada", a)  # idempotent
    assert not await tao.key_claim("username", "ada", b)
    assert await tao.key_get_many("username", ["ada", "bob"]) == {"ada": a}
    assert not await tao.key_release("username", "ada", b)
    assert await tao.key_release("username", "ada", a)
    assert await tao.key_get_many("username", ["ada"]) == {}
    assert await tao.key_claim("username", "ada", b)
    await hooks(tao).cache.flush()
    assert await tao.key_get_many("username", ["ada"]) == {"ada": b}


async def test_a_lost_claim_leaves_the_cache_holding_the_winner(tao, make_user):
    """A winner that committed its claim but never installed it in the cache (killed right after
    its commit: here its row is written straight to SQL) must not hide from the loser, who reads
    the key next to join the winner (create-then-claim: `notifications.record.group_of`)."""
    winner, loser = await make_user(), await make_user()
    assert await tao.key_get_many("username", ["ada"]) == {}  # "unclaimed", now cached

    async def commit_without_install(conn):
        await conn.execute("INSERT INTO {unique_keys} (ns, k, id, version) VALUES (%s, %s, %s, 1)",
                           ("username", "ada", winner))
    for shard in range(tao.n_shards):  # the key's shard among them (the others never read this key)
        await hooks(tao).write(shard, commit_without_install)
    assert await tao.key_get_many("username", ["ada"]) == {}  # the cache still says "unclaimed"
    assert not await tao.key_claim("username", "ada", loser)
    assert await tao.key_get_many("username", ["ada"]) == {"ada": winner}


async def _on_another_shard(tao, make_user, other: int) -> int:
    while True:
        u = await make_user()
        if tao.shard(u) != tao.shard(other):
            return u


async def _failing_syncs(tao):
    async def fail(*args, **kwargs):
        raise ConnectionError("simulated: id2's shard is down")
    inverses = hooks(tao).inverses
    real = inverses.sync
    inverses.sync = fail  # type: ignore[method-assign]
    return lambda: setattr(inverses, "sync", real)


async def test_deferred_inverse_is_applied_by_the_outbox(tao, make_user):
    a = await make_user()
    b = await _on_another_shard(tao, make_user, a)
    restore = await _failing_syncs(tao)
    await tao.assoc_add(a, "TEST_LINK", b)
    restore()
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 0  # not yet mirrored
    assert await tao.run_jobs_until_idle() >= 1
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1


async def test_an_inverse_on_the_edges_own_shard_commits_with_it(tao, make_user):
    """Both ends on one shard: the inverse is written in the forward edge's transaction, so it
    needs no job and no sync after the commit (here every sync would fail), and it converges
    with the outbox path (a delete's tombstone, a repair's sync) like any other inverse."""
    a = await make_user()
    b = await tao.obj_add("TEST_NODE", {}, owner=a)
    restore = await _failing_syncs(tao)
    await tao.assoc_add(a, "TEST_LINK", b, time=1000, data={"x": 1})
    await tao.assoc_add_many([(a, "TEST_LINK", b, 2000, {"x": 2})])
    restore()
    inv = (await tao.assoc_get(b, "TEST_LINK_OF", [a]))[a]
    assert (inv.time, inv.data) == (2000, {"x": 2})
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1
    assert await tao.run_jobs_until_idle() == 0  # no job was written
    await hooks(tao).cache.flush()  # SQL says the same as the cache
    assert (await tao.assoc_get(b, "TEST_LINK_OF", [a]))[a].data == {"x": 2}
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1

    assert await tao.assoc_delete(a, "TEST_LINK", b)  # the outbox path: leaves a tombstone
    await tao.run_jobs_until_idle()
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 0
    await tao.assoc_add(a, "TEST_LINK", b, time=3000, data={"x": 3})  # past the tombstone
    await hooks(tao).sync_inverse(a, "TEST_LINK", b)  # a late sync of the same state: no change
    inv = (await tao.assoc_get(b, "TEST_LINK_OF", [a]))[a]
    assert (inv.time, inv.data) == (3000, {"x": 3})
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1
    async with hooks(tao).read(tao.shard(b)) as conn:
        tombs = await conn.fetchall("SELECT COUNT(*) FROM {inverse_tombstones} WHERE id1 = %s AND id2 = %s", (b, a))
    assert tombs[0][0] == 0  # the inverse exists again: its tombstone went with the write


async def test_inverse_sync_is_idempotent_and_order_independent(tao, make_user):
    a, b = await make_user(), await make_user()
    await tao.assoc_add(a, "TEST_LINK", b, time=5)
    await tao.assoc_delete(a, "TEST_LINK", b)
    # Replays of old syncs (at-least-once delivery) must not resurrect the edge.
    for _ in range(3):
        await hooks(tao).sync_inverse(a, "TEST_LINK", b)
    assert await tao.assoc_get(b, "TEST_LINK_OF", [a]) == {}
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 0
    await tao.assoc_add(a, "TEST_LINK", b, time=6)
    await hooks(tao).sync_inverse(a, "TEST_LINK", b)
    assert (await tao.assoc_get(b, "TEST_LINK_OF", [a]))[a].time == 6
    assert await tao.assoc_count(b, "TEST_LINK_OF") == 1


async def test_unique_atype_allows_one_edge_per_id1(tao, make_user):
    a, b = await make_user(), await make_user()
    await tao.assoc_add(a, "TEST_UNIQUE", b)
    await tao.assoc_add(a, "TEST_UNIQUE", b, time=5)  # the same edge again is an update
    with pytest.raises(ConflictError):
        await tao.assoc_add(a, "TEST_UNIQUE", await make_user())
    assert await tao.assoc_count(a, "TEST_UNIQUE") == 1


async def test_uncached_types_read_from_sql_and_cost_no_cache_work(tao, make_user):
    a, b, c = await make_user(), await make_user(), await make_user()
    assert await tao.assoc_get(a, "TEST_UNCACHED", [b]) == {}
    assert await tao.assoc_count(a, "TEST_UNCACHED") == 0
    tao.reset_stats()
    await tao.assoc_add_many([(a, "TEST_UNCACHED", b), (a, "TEST_UNCACHED", c)])
    assert tao.stats()["cache_round_trips"] == 0
    assert set(await tao.assoc_get(a, "TEST_UNCACHED", [b, c])) == {b, c}
    assert await tao.assoc_count(a, "TEST_UNCACHED") == 2
    await tao.assoc_delete(a, "TEST_UNCACHED", b)
    assert set(await tao.assoc_get(a, "TEST_UNCACHED", [b, c])) == {c}
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_UNCACHED", 0, 10)] == [c]
    assert await tao.assoc_count(a, "TEST_UNCACHED") == 1


async def test_bulk_add_writes_every_shard_and_mirrors(tao, make_user):
    users = [await make_user() for _ in range(12)]
    hub = users[0]
    edges = [(u, "TEST_LINK", hub, 1000 + i) for i, u in enumerate(users[1:])]
    edges += [(users[1], "TEST_PLAIN", u, 5) for u in users[2:6]]
    assert await tao.assoc_add_many(edges) == len(edges)
    assert await tao.assoc_add_many(edges[:3]) == 0  # upserts, no new edges
    assert await tao.assoc_count(hub, "TEST_LINK_OF") == 11
    assert [e.id2 for e in await tao.assoc_range(hub, "TEST_LINK_OF", 0, 3)] == [users[11], users[10], users[9]]
    assert await tao.assoc_count(users[1], "TEST_PLAIN") == 4
    await hooks(tao).cache.flush()
    assert await tao.assoc_count(hub, "TEST_LINK_OF") == 11


async def test_long_range_reads_return_data_exactly(tao, make_user):
    """Pages read from SQL (MySQL: one JSON document per list) keep every value as
    written: unicode, quotes and backslashes, floats, 64-bit ints, nesting, empty data."""
    a = await make_user()
    odd = {"s": 'é🙂 "q" \\ \n', "f": 0.1, "big": 2**63 - 1, "neg": -7, "n": [1, {"x": None}], "t": True}
    targets = [await make_user() for _ in range(3)]
    await tao.assoc_add_many([(a, "TEST_UNCACHED", targets[0], 30, odd), (a, "TEST_UNCACHED", targets[1], 20),
                              (a, "TEST_UNCACHED", targets[2], 20, {"k": "v"})])
    page = await tao.assoc_range(a, "TEST_UNCACHED", 0, 500)
    assert [(e.id2, e.time, e.data) for e in page] == [
        (targets[0], 30, odd), *sorted([(targets[1], 20, {}), (targets[2], 20, {"k": "v"})], reverse=True)]
    assert all(e.version > 0 for e in page)
    assert await tao.assoc_range(a, "TEST_UNCACHED", 5, 10) == []
    older = await tao.assoc_time_range(a, "TEST_UNCACHED", high=25, limit=500)
    assert [e.id2 for e in older] == sorted(targets[1:], reverse=True)


async def test_counts_are_cached_apart_from_their_lists(tao, make_user):
    """A count read reads and fills the list's count key only, never the list's window of
    edges (a popular list's count must not cost its newest edges); writes keep it exact."""
    a = await make_user()
    targets = [await make_user() for _ in range(6)]
    for t in targets[:5]:
        await tao.assoc_add(a, "TEST_PLAIN", t)
    code = hooks(tao).atype("TEST_PLAIN").code
    await hooks(tao).cache.flush()
    tao.reset_stats()
    assert await tao.assoc_count(a, "TEST_PLAIN") == 5
    assert tao.stats()["sql_queries"] == 1
    cached = await hooks(tao).cache.get_many([hooks(tao).list_key(a, code), hooks(tao).count_key(a, code)])
    assert hooks(tao).list_key(a, code) not in cached
    assert cached[hooks(tao).count_key(a, code)]["n"] == 5
    await tao.assoc_add(a, "TEST_PLAIN", targets[5])
    await tao.assoc_delete(a, "TEST_PLAIN", targets[0])
    tao.reset_stats()
    assert await tao.assoc_count(a, "TEST_PLAIN") == 5  # 5 + 1 - 1, from the key the writes installed
    assert tao.stats()["sql_queries"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])  # MariaDB's row-constructor IN has no such limit
async def test_a_batch_of_thousands_of_lists_is_one_statement_the_embedded_store_accepts(tao):
    """SQLite refuses an expression over 1 000 deep, and a flat chain of n ORs is n deep: a bulk
    write touching 1 500 lists on the embedded store failed ("Expression tree is too large")
    until the key matches became balanced trees (`tao.backends.base.any_of`)."""
    first = await tao.obj_add("TEST_NODE", {})
    sources = [first, *await tao.obj_add_many([("TEST_NODE", {}, first)] * 1499)]  # one shard: one statement
    target, other = await tao.obj_add_many([("TEST_NODE", {}, None)] * 2)
    assert await tao.assoc_add_many([(s, "TEST_PLAIN", t) for s in sources for t in (target, other)]) == 3000
    found = await tao.assoc_get_many([(s, "TEST_PLAIN", target) for s in sources])
    assert all(e is not None and e.id2 == target for e in found.values()) and len(found) == 1500
    assert await tao.assoc_add_many([(s, "TEST_PLAIN", t) for s in sources for t in (target, other)]) == 0
    counts = await tao.assoc_count_many([(s, "TEST_PLAIN") for s in sources])
    assert set(counts.values()) == {2}


BAD_CALLS = {
    # verb call -> (error, what the message must name). Each was a bare IndexError, ValueError,
    # OverflowError, UnicodeEncodeError or a driver's SQL error, named the wrong argument, or (a
    # negative scan limit on SQLite) read the whole shard (probe3).
    "obj_scan shard": (lambda t, a, b: t.obj_scan(t.n_shards, "TEST_NODE"), InvalidIdError, "logical shard"),
    "obj_scan limit": (lambda t, a, b: t.obj_scan(0, "TEST_NODE", limit=-1), InvalidDataError, "limit"),
    "obj_scan after": (lambda t, a, b: t.obj_scan(0, "TEST_NODE", after="x"), InvalidDataError, "after"),
    "assoc_add time str": (lambda t, a, b: t.assoc_add(a, "TEST_LINK", b, time="now"), InvalidDataError, "time"),
    "assoc_add time huge": (lambda t, a, b: t.assoc_add(a, "TEST_LINK", b, time=1 << 70), InvalidDataError, "time"),
    "assoc_add_many short": (lambda t, a, b: t.assoc_add_many([(a, "TEST_LINK")]), InvalidDataError, "an edge is"),
    "assoc_add_many time": (lambda t, a, b: t.assoc_add_many([(a, "TEST_LINK", b, "x")]), InvalidDataError, "time"),
    "assoc_range pos": (lambda t, a, b: t.assoc_range(a, "TEST_LINK", -1, 5), InvalidDataError, "pos"),
    "assoc_time_range after": (lambda t, a, b: t.assoc_time_range(a, "TEST_LINK", after=("x", "y")),
                               InvalidDataError, "after"),
    "assoc_time_range low": (lambda t, a, b: t.assoc_time_range(a, "TEST_LINK", low="yesterday"),
                             InvalidDataError, "low"),
    "assoc_count id": (lambda t, a, b: t.assoc_count(-1, "TEST_LINK"), InvalidIdError, "-1"),
    "key_claim surrogate": (lambda t, a, b: t.key_claim("username", "a\ud800", a), InvalidDataError, "Unicode"),
    "key_get_many str": (lambda t, a, b: t.key_get_many("username", "ada"), InvalidDataError, "list"),
}


@pytest.mark.parametrize("call", list(BAD_CALLS))
async def test_bad_input_to_a_verb_is_a_clear_error_naming_it_and_changes_nothing(tao, make_user, call):
    a, b = await make_user(), await make_user()
    fn, error, names = BAD_CALLS[call]
    with pytest.raises(error, match=names):
        await fn(tao, a, b)
    assert await tao.assoc_count(a, "TEST_LINK") == 0 and await tao.assoc_range(a, "TEST_LINK", 0, 10) == []
    assert await tao.key_get_many("username", ["a", "ada"]) == {}
