"""Uncounted association types (FEED): one upsert per write, no count, and the bulk
`assoc_add_to_objects` that filters its targets in the database."""

from __future__ import annotations

import warnings

import pytest

from tao import InvalidDataError
from tao.bulk_lists import ObjectFilter
from tao.models import now_ms
from tao.registry import Registry
from tao.repair import verify_shard

DAY = 24 * 3600 * 1000


async def test_uncounted_edges_are_written_read_and_deleted_without_counts(tao, make_user):
    a, b, c = await make_user(), await make_user(), await make_user()
    tao.reset_stats()
    await tao.assoc_add_many([(a, "TEST_UNCOUNTED", b, 10, {"x": 1}), (a, "TEST_UNCOUNTED", c, 20)])
    stats = tao.stats()
    # one upsert on a's shard (plus BEGIN/COMMIT bookkeeping the counter does not see); no cache work
    assert stats["sql_queries"] == 1 and stats["cache_round_trips"] == 0
    assert [(e.id2, e.time) for e in await tao.assoc_range(a, "TEST_UNCOUNTED", 0, 10)] == [(c, 20), (b, 10)]
    assert (await tao.assoc_get(a, "TEST_UNCOUNTED", [b]))[b].data == {"x": 1}
    await tao.assoc_add(a, "TEST_UNCOUNTED", b, time=30, data={"x": 2})  # an upsert: time and data move
    page = await tao.assoc_time_range(a, "TEST_UNCOUNTED", low=15, limit=10)
    assert [(e.id2, e.time, e.data) for e in page] == [(b, 30, {"x": 2}), (c, 20, {})]
    assert await tao.assoc_delete(a, "TEST_UNCOUNTED", b) is True
    assert await tao.assoc_delete(a, "TEST_UNCOUNTED", b) is False
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_UNCOUNTED", 0, 10)] == [c]
    with pytest.raises(InvalidDataError, match="keeps no count"):
        await tao.assoc_count(a, "TEST_UNCOUNTED")
    with pytest.raises(InvalidDataError):
        await tao.assoc_change_type(a, "TEST_UNCOUNTED", c, "TEST_PLAIN")
    # repair does not mistake count-less lists for broken ones
    for shard in range(tao.n_shards):
        assert (await verify_shard(tao, shard)).ok


async def test_add_to_objects_writes_only_existing_active_objects(tao, make_user):
    now = now_ms()
    active = await make_user(last_active=now - DAY)
    fresh = await make_user()                        # never active: its creation time counts
    stale = await make_user(last_active=now - 40 * DAY)
    gone = await make_user()
    await tao.obj_delete(gone)
    post = await make_user()
    await tao.assoc_add_to_objects([active, fresh, stale, gone], "TEST_UNCOUNTED", post, 123, {"a": 7},
                                   where=ObjectFilter("last_active", now - 30 * DAY))
    got = await tao.assoc_get_many([(u, "TEST_UNCOUNTED", post) for u in (active, fresh, stale, gone)])
    assert {k[0] for k, e in got.items() if e is not None} == {active, fresh}
    assert got[(active, "TEST_UNCOUNTED", post)].time == 123 and got[(active, "TEST_UNCOUNTED", post)].data == {"a": 7}
    # again (a re-run): existing edges keep their time and data, missing ones are added
    await tao.assoc_add(fresh, "TEST_UNCOUNTED", post, time=123, data={"a": 7, "s": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skipping existing rows is silent (no server warnings)
        await tao.assoc_add_to_objects([active, fresh, stale], "TEST_UNCOUNTED", post, 456, {"a": 7})
    assert [(e.time, e.data) for e in await tao.assoc_range(fresh, "TEST_UNCOUNTED", 0, 10)] == [
        (123, {"a": 7, "s": 1})
    ]
    assert [e.time for e in await tao.assoc_range(stale, "TEST_UNCOUNTED", 0, 10)] == [456]


async def test_add_to_objects_spans_shards_in_one_statement_each(tao, make_user):
    users = [await make_user() for _ in range(24)]
    post = await make_user()
    tao.reset_stats()
    await tao.assoc_add_to_objects(users, "TEST_UNCOUNTED", post)
    shards = {tao.shard(u) for u in users}
    assert tao.stats()["sql_queries"] == len(shards)
    got = await tao.assoc_get_many([(u, "TEST_UNCOUNTED", post) for u in users])
    assert all(got.values())


async def test_add_to_objects_refuses_bad_input_and_writes_nothing(tao, make_user):
    a, b = await make_user(), await make_user()
    with pytest.raises(InvalidDataError, match="keeps counts"):
        await tao.assoc_add_to_objects([a], "TEST_PLAIN", b)
    with pytest.raises(InvalidDataError, match="plain field name"):
        await tao.assoc_add_to_objects([a], "TEST_UNCOUNTED", b, where=ObjectFilter("x') OR 1=1 --", 0))
    with pytest.raises(InvalidDataError, match="ObjectFilter"):
        await tao.assoc_add_to_objects([a], "TEST_UNCOUNTED", b, where=("last_active", 0))  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="limit"):
        await tao.assoc_add_to_objects([a] * 5001, "TEST_UNCOUNTED", b)
    assert await tao.assoc_range(a, "TEST_UNCOUNTED", 0, 10) == []


def test_an_uncounted_type_must_be_uncached_without_inverse():
    r = Registry()
    with pytest.raises(ValueError, match="uncounted"):
        r.assoc_type("X", 1, counted=False)  # cached by default
    with pytest.raises(ValueError, match="uncounted"):
        r.assoc_type("Y", 2, counted=False, cached=False, inverse="Y_OF", inverse_code=3)
    assert not r.assoc_type("Z", 4, counted=False, cached=False).counted


async def test_trim_keeps_the_newest_edges_and_drops_old_ones(tao, make_user, monkeypatch):
    import tao.bulk_lists as bulk_lists

    monkeypatch.setattr(bulk_lists, "TRIM_BATCH", 3)  # several batches for a short list
    a, other = await make_user(), await make_user()
    targets = [await make_user() for _ in range(10)]
    # times 10..100; two edges share time 50 so the cut falls between equal times
    times = [10, 20, 30, 40, 50, 50, 70, 80, 90, 100]
    await tao.assoc_add_many([(a, "TEST_UNCOUNTED", t, tm) for t, tm in zip(targets, times)]
                             + [(other, "TEST_UNCOUNTED", targets[0], 5)])
    newest_first = [(e.time, e.id2) for e in await tao.assoc_range(a, "TEST_UNCOUNTED", 0, 100)]
    assert await tao.assoc_trim(a, "TEST_UNCOUNTED", keep=5) == 5
    assert [(e.time, e.id2) for e in await tao.assoc_range(a, "TEST_UNCOUNTED", 0, 100)] == newest_first[:5]
    assert await tao.assoc_trim(a, "TEST_UNCOUNTED", keep=5) == 0            # idempotent
    assert await tao.assoc_trim(a, "TEST_UNCOUNTED", keep=100, before=80) == 2  # the age bound alone
    assert [e.time for e in await tao.assoc_range(a, "TEST_UNCOUNTED", 0, 100)] == [100, 90, 80]
    assert len(await tao.assoc_range(other, "TEST_UNCOUNTED", 0, 10)) == 1    # other lists untouched


async def test_trim_refuses_cached_types_and_bad_input(tao, make_user):
    a, b = await make_user(), await make_user()
    await tao.assoc_add(a, "TEST_PLAIN", b)
    with pytest.raises(InvalidDataError, match="cached"):
        await tao.assoc_trim(a, "TEST_PLAIN", keep=0)
    with pytest.raises(InvalidDataError):
        await tao.assoc_trim(a, "TEST_UNCOUNTED", keep=-1)
    assert await tao.assoc_count(a, "TEST_PLAIN") == 1


async def test_trim_of_a_counted_uncached_list_keeps_its_count_exact(tao, make_user, monkeypatch):
    import tao.bulk_lists as bulk_lists

    monkeypatch.setattr(bulk_lists, "TRIM_BATCH", 3)
    a = await make_user()
    targets = [await make_user() for _ in range(8)]
    for i, t in enumerate(targets):
        await tao.assoc_add(a, "TEST_UNCACHED", t, time=100 + i)
    assert await tao.assoc_trim(a, "TEST_UNCACHED", keep=5) == 3
    assert await tao.assoc_count(a, "TEST_UNCACHED") == 5
    assert await tao.assoc_trim(a, "TEST_UNCACHED", keep=10, before=105) == 2
    assert await tao.assoc_count(a, "TEST_UNCACHED") == 3
    assert [e.id2 for e in await tao.assoc_range(a, "TEST_UNCACHED", 0, 10)] == targets[:4:-1]
