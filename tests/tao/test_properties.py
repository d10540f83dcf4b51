"""Property tests of the store's invariants, on both backends (hypothesis over operation sequences).

Each example runs a random sequence of association and object writes on a few fresh objects,
interleaved with reads, cache flushes and outbox drains, against the real store, and keeps a
plain-dict model alongside. Invariants checked:

- every read agrees with the model (read-after-write for the writer);
- for every list, `assoc_count` == the length of the full `assoc_range`, and lists are newest
  first with ties by id2 descending; pages, time ranges and `assoc_get` agree with the list;
- after `run_jobs_until_idle()`, every primary edge's inverse exists on id2's side with the same
  time and data, and every inverse edge has its primary;
- values read through the cache (versions included) equal values read after `cache.flush()`;
- `tao.repair.verify_shard` reports every shard ok.

The store is opened once per test (migrations are slow on MySQL); each example uses fresh ids,
so examples never see each other's edges. `list_limit` is small so lists outgrow the cached
window and the SQL paths for deep pages run too.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tao import ConflictError, ObjectNotFoundError
from tao.repair import verify_shard
from tao.testing import TaoTestHooks as hooks

NODES = 4
PRIMARY = ["TEST_LINK", "TEST_PLAIN", "TEST_UNIQUE", "FOLLOW_REQUESTED", "FOLLOWS"]
INVERSE = {"TEST_LINK": "TEST_LINK_OF", "FOLLOW_REQUESTED": "FOLLOW_REQUESTED_BY", "FOLLOWS": "FOLLOWED_BY"}
UNIQUE = {"TEST_UNIQUE"}
ALL_TYPES = PRIMARY + list(INVERSE.values())

node = st.integers(0, NODES - 1)
BY_KIND = {
    "add": st.tuples(st.just("add"), node, st.sampled_from(PRIMARY), node, st.integers(1, 4), st.integers(0, 2)),
    "delete": st.tuples(st.just("delete"), node, st.sampled_from(PRIMARY), node),
    "change": st.tuples(st.just("change"), node, node, st.booleans()),
    "obj_update": st.tuples(st.just("obj_update"), node, st.sampled_from("abc"), st.none() | st.integers(0, 9)),
    "obj_delete": st.tuples(st.just("obj_delete"), node),
    "read": st.tuples(st.just("read"), node, st.sampled_from(PRIMARY)),
    "flush": st.just(("flush",)),
    "drain": st.just(("drain",)),
}
# Weighted towards edge writes, so lists grow past the cached window and writes land on lists
# that are cached (the in-place update path) as well as on ones that are not.
KINDS = ["add"] * 8 + ["delete"] * 4 + ["change"] * 2 + ["obj_update", "obj_delete", "read", "flush", "drain"]
OPS = st.sampled_from(KINDS).flatmap(BY_KIND.__getitem__)
SEQUENCES = st.lists(OPS, min_size=8, max_size=30)


class Model:
    """What the store should hold: primary edges and objects. Inverse edges are derived."""

    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes
        self.edges: dict[tuple[int, str, int], tuple[int, dict]] = {}
        self.objs: dict[int, dict | None] = {n: {} for n in nodes}

    def all_edges(self) -> dict[tuple[int, str, int], tuple[int, dict]]:
        out = dict(self.edges)
        for (id1, atype, id2), value in self.edges.items():
            if atype in INVERSE:
                out[(id2, INVERSE[atype], id1)] = value
        return out

    def lists(self) -> dict[tuple[int, str], list[tuple[int, int, dict]]]:
        """(id1, atype) -> [(id2, time, data)] newest first, ties by id2 desc."""
        out: dict[tuple[int, str], list] = {(n, t): [] for n in self.nodes for t in ALL_TYPES}
        for (id1, atype, id2), (time, data) in self.all_edges().items():
            out[(id1, atype)].append((id2, time, data))
        for edges in out.values():
            edges.sort(key=lambda e: (-e[1], -e[0]))
        return out


async def check_list(tao, model: Model, id1: int, atype: str) -> None:
    """Read one list back (its count, the whole list, a page) and compare with the model. After
    a write this is read-after-write; it also leaves the list cached, so the next write to it
    takes the in-place update path rather than the tombstone one."""
    expected = model.lists()[(id1, atype)]
    got = await tao.assoc_range(id1, atype, 0, 100)
    assert [(e.id2, e.time, e.data) for e in got] == expected, (id1, atype)
    assert await tao.assoc_count(id1, atype) == len(expected), (id1, atype)
    # Short pages are answered from a cached prefix when it holds them: check those too.
    for pos, limit in ((0, len(expected)), (0, 1), (1, 1), (1, 2)):
        page = await tao.assoc_range(id1, atype, pos, limit)
        assert [(e.id2, e.time, e.data) for e in page] == expected[pos:pos + limit], (id1, atype, pos, limit)
    if tao.settings.cache.backend == "local":
        # The list was just read: reading it again is a cache hit (memcached is left out only
        # because a loaded box can make its heartbeat bypass a server for a moment).
        tao.reset_stats()
        assert await tao.assoc_count(id1, atype) == len(expected)
        assert tao.stats()["sql_queries"] == 0, "a list just read was not served from the cache"


async def apply(tao, model: Model, op: tuple) -> None:
    """Run one operation on the store and the model; compare what the store answers."""
    kind, args = op[0], op[1:]
    await _apply(tao, model, kind, args)
    n = model.nodes
    if kind in ("add", "delete"):
        await check_list(tao, model, n[args[0]], args[1])
    elif kind == "change":
        for atype in ("FOLLOW_REQUESTED", "FOLLOWS"):
            await check_list(tao, model, n[args[0]], atype)


async def _apply(tao, model: Model, kind: str, args: tuple) -> None:
    n = model.nodes
    if kind == "add":
        i, atype, j, time, d = args
        a, b = n[i], n[j]
        others = [k for k in model.edges if k[0] == a and k[1] == atype and k[2] != b]
        if atype in UNIQUE and others:
            with pytest.raises(ConflictError):
                await tao.assoc_add(a, atype, b, time=time, data={"d": d})
            return
        got = await tao.assoc_add(a, atype, b, time=time, data={"d": d})
        assert (got.id1, got.atype, got.id2, got.time, got.data) == (a, atype, b, time, {"d": d})
        model.edges[(a, atype, b)] = (time, {"d": d})
    elif kind == "delete":
        i, atype, j = args
        key = (n[i], atype, n[j])
        assert await tao.assoc_delete(*key) is (key in model.edges)
        model.edges.pop(key, None)
    elif kind == "change":
        i, j, forward = args
        old, new = ("FOLLOW_REQUESTED", "FOLLOWS") if forward else ("FOLLOWS", "FOLLOW_REQUESTED")
        a, b = n[i], n[j]
        if (a, old, b) not in model.edges:
            with pytest.raises(ObjectNotFoundError):
                await tao.assoc_change_type(a, old, b, new)
            return
        moved = await tao.assoc_change_type(a, old, b, new)
        value = model.edges.pop((a, old, b))
        model.edges[(a, new, b)] = value
        assert (moved.atype, moved.time, moved.data) == (new, *value)
    elif kind == "obj_update":
        i, k, v = args
        if model.objs[n[i]] is None:
            with pytest.raises(ObjectNotFoundError):
                await tao.obj_update(n[i], {k: v})
            return
        got = await tao.obj_update(n[i], {k: v})
        data = model.objs[n[i]]
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
        assert got.data == data
    elif kind == "obj_delete":
        (i,) = args
        assert await tao.obj_delete(n[i]) is (model.objs[n[i]] is not None)
        model.objs[n[i]] = None
    elif kind == "read":
        i, atype = args
        await check_list(tao, model, n[i], atype)
        objs = await tao.obj_get(n)
        assert {k: o.data for k, o in objs.items()} == {k: d for k, d in model.objs.items() if d is not None}
    elif kind == "flush":
        await hooks(tao).cache.flush()
    elif kind == "drain":
        await tao.run_jobs_until_idle()
    else:
        raise AssertionError(kind)


async def snapshot(tao, model: Model) -> dict:
    """Every read verb over every list of the example's objects, checked against the model;
    returns what was read (full Assoc/Obj values, versions included) for the cache comparison."""
    lists = model.lists()
    keys = list(lists)
    counts = await tao.assoc_count_many(keys)
    full = await tao.assoc_range_many(keys, 0, 100)
    page = await tao.assoc_range_many(keys, 1, 2)
    window = await tao.assoc_time_range_many(keys, high=3, low=2, limit=100)
    pairs = [(a, t, b) for a in model.nodes for t in ALL_TYPES for b in model.nodes]
    gets = await tao.assoc_get_many(pairs)
    objs = await tao.obj_get(model.nodes)
    for k, expected in lists.items():
        got = [(e.id2, e.time, e.data) for e in full[k]]
        assert got == expected, k
        assert counts[k] == len(got), k
        assert all(e.id1 == k[0] and e.atype == k[1] for e in full[k])
        assert [(e.id2, e.time, e.data) for e in page[k]] == expected[1:3], k
        assert [(e.id2, e.time, e.data) for e in window[k]] == [e for e in expected if 2 <= e[1] <= 3], k
    everything = model.all_edges()
    for k, e in gets.items():
        assert (None if e is None else (e.time, e.data)) == everything.get(k), k
    for id_, data in model.objs.items():
        assert (objs[id_].data if id_ in objs else None) == data, id_
    return {"counts": counts, "full": full, "page": page, "gets": gets, "objs": objs}


async def check_sequence(tao, ops: list[tuple]) -> None:
    hooks(tao).list_limit = 3
    model = Model([await tao.obj_add("TEST_NODE", {}) for _ in range(NODES)])
    for op in ops:
        await apply(tao, model, op)
    await tao.run_jobs_until_idle()
    cached = await snapshot(tao, model)
    cached_again = await snapshot(tao, model)  # the first pass filled the cache: this one reads it
    await hooks(tao).cache.flush()
    from_sql = await snapshot(tao, model)
    assert cached == from_sql
    assert cached_again == from_sql
    for shard in range(tao.n_shards):
        report = await verify_shard(tao, shard)
        assert report.ok, report


# The store fixture is shared by the examples on purpose (each example makes fresh objects).
SHARED_STORE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.mark.parametrize("backend", ["sqlite"])
@settings(max_examples=30, deadline=None, suppress_health_check=SHARED_STORE)
@given(ops=SEQUENCES)
async def test_operation_sequences_keep_the_invariants_sqlite(tao, ops):
    await check_sequence(tao, ops)


# Each MariaDB+memcached example costs a few hundred round trips: fewer examples, same properties.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mysql"])
@settings(max_examples=15, deadline=None, suppress_health_check=SHARED_STORE)
@given(ops=SEQUENCES)
async def test_operation_sequences_keep_the_invariants_mysql(tao, ops):
    await check_sequence(tao, ops)
