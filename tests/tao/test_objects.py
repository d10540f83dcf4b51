"""Contract: object verbs, on both backends."""

from __future__ import annotations

import enum

import pytest

from tao import (
    InvalidDataError,
    InvalidIdError,
    ObjectNotFoundError,
    UnknownTypeError,
    VersionConflictError,
    shard_of,
)
from tao.testing import TaoTestHooks as hooks


async def test_add_then_get_returns_the_data(tao):
    id_ = await tao.obj_add("TEST_NODE", {"name": "ada", "n": 1})
    got = (await tao.obj_get([id_]))[id_]
    assert (got.otype, got.version, got.data) == ("TEST_NODE", 1, {"name": "ada", "n": 1})
    assert got.created == got.updated > 0


async def test_owner_places_the_object_on_the_owners_shard(tao):
    owner = await tao.obj_add("TEST_NODE", {})
    for _ in range(5):
        assert shard_of(await tao.obj_add("TEST_NODE", {}, owner=owner)) == shard_of(owner)


async def test_many_keys_get_spans_shards_and_omits_missing(tao):
    ids = [await tao.obj_add("TEST_NODE", {"i": i}) for i in range(20)]
    assert len({shard_of(i) for i in ids}) > 1
    missing = ids[0] + 1  # same shard, never allocated in this test
    got = await tao.obj_get(ids + [missing])
    assert set(got) == set(ids)
    assert [got[i].data["i"] for i in ids] == list(range(20))


async def test_update_merges_and_bumps_version(tao):
    id_ = await tao.obj_add("TEST_NODE", {"a": 1, "b": 2})
    updated = await tao.obj_update(id_, {"b": None, "c": 3})
    assert updated.version == 2 and updated.data == {"a": 1, "c": 3}
    assert (await tao.obj_get([id_]))[id_].data == {"a": 1, "c": 3}


async def test_a_versioned_update_or_delete_is_a_compare_and_set(tao):
    """`version=`: the write happens only at that version; a conflict writes nothing and carries
    the object as it stands (or None when it is gone), so the caller recomputes from it."""
    id_ = await tao.obj_add("TEST_NODE", {"n": 1})
    assert (await tao.obj_update(id_, {"n": 2}, version=1)).version == 2
    with pytest.raises(VersionConflictError) as lost:
        await tao.obj_update(id_, {"n": 99}, version=1, jobs=[("test.never", {})])
    assert (lost.value.current.version, lost.value.current.data) == (2, {"n": 2})
    assert (await tao.obj_get([id_]))[id_].data == {"n": 2}
    with pytest.raises(VersionConflictError):
        await tao.obj_delete(id_, version=1)
    assert id_ in await tao.obj_get([id_])
    assert await tao.obj_delete(id_, version=2)
    for write in (tao.obj_update(id_, {"n": 3}, version=3), tao.obj_delete(id_, version=3)):
        with pytest.raises(VersionConflictError) as gone:
            await write
        assert gone.value.current is None


async def test_delete_makes_the_object_absent_even_when_cached(tao):
    id_ = await tao.obj_add("TEST_NODE", {})
    await tao.obj_get([id_])  # cached
    assert await tao.obj_delete(id_) is True
    assert await tao.obj_get([id_]) == {}
    assert await tao.obj_delete(id_) is False
    with pytest.raises(ObjectNotFoundError):
        await tao.obj_update(id_, {"x": 1})


async def test_reads_after_cache_flush_come_back_from_sql(tao):
    id_ = await tao.obj_add("TEST_NODE", {"k": "v"})
    await hooks(tao).cache.flush()
    assert (await tao.obj_get([id_]))[id_].data == {"k": "v"}


async def test_bad_input_is_refused_and_changes_nothing(tao):
    id_ = await tao.obj_add("TEST_NODE", {"k": 1})
    with pytest.raises(UnknownTypeError):
        await tao.obj_add("NO_SUCH_TYPE", {})
    with pytest.raises(InvalidDataError):
        await tao.obj_add("TEST_NODE", ["not", "a", "dict"])
    with pytest.raises(InvalidDataError):
        await tao.obj_update(id_, {"blob": "x" * 100_000})
    with pytest.raises(InvalidDataError):
        await tao.obj_update(id_, {"bad": float("nan")})
    with pytest.raises(InvalidDataError, match="not valid Unicode"):  # an unpaired surrogate cannot be UTF-8
        await tao.obj_update(id_, {"bad": "x\ud800y"})
    with pytest.raises(InvalidIdError):
        await tao.obj_get([-1])
    with pytest.raises(InvalidIdError):
        await tao.obj_get([(1 << 63)])
    with pytest.raises(InvalidIdError):
        await tao.obj_get(["12"])
    assert (await tao.obj_get([id_]))[id_].data == {"k": 1}
    assert (await tao.obj_get([id_]))[id_].version == 1


async def test_a_warm_read_makes_no_sql_query(tao):
    ids = [await tao.obj_add("TEST_NODE", {}) for _ in range(10)]
    await tao.obj_get(ids)
    tao.reset_stats()
    await tao.obj_get(ids)
    assert tao.stats().get("sql_queries", 0) == 0


async def test_data_with_sql_metacharacters_round_trips(tao, make_user):
    text = "it's 100% \\ \"quoted\" ; DROP TABLE objects; -- %s %(x)s \u00e9\U0001f600"
    id_ = await tao.obj_add("TEST_NODE", {"s": text})
    other = await make_user()
    await tao.assoc_add(id_, "TEST_PLAIN", other, data={"s": text})
    await hooks(tao).cache.flush()
    assert (await tao.obj_get([id_]))[id_].data == {"s": text}
    assert (await tao.assoc_get(id_, "TEST_PLAIN", [other]))[other].data == {"s": text}
    assert await tao.key_claim("username", text[:40], id_)
    assert await tao.key_get_many("username", [text[:40]]) == {text[:40]: id_}


async def test_obj_add_commits_jobs_that_name_the_new_object_and_may_wait(tao):
    seen: list[dict] = []

    async def handler(store, payload: dict) -> None:
        seen.append(payload)
    tao.outbox.register("tests.named", handler)
    oid = await tao.obj_add("TEST_NODE", {}, jobs=lambda new_id: [("tests.named", {"id": new_id}, 3_600_000)])
    assert await tao.run_jobs_until_idle(include_delayed=False) == 0 and seen == []  # delayed an hour
    assert await tao.outbox.pending() == 1
    await tao.run_jobs_until_idle(include_delayed=True)
    assert seen == [{"id": oid}]


async def test_only_a_job_due_now_wakes_the_worker(tao):
    """A write that commits a job due now wakes this process's worker at once. One that commits
    only jobs due later (a writer's own repair job, an inverse's grace period) or none does not:
    each such wake-up cost a claim transaction that found nothing (three statements a write, on
    the messages bench); the worker's idle polls find those jobs when they come due."""
    async def handler(store, payload: dict) -> None:
        pass
    tao.outbox.register("tests.wake", handler)
    wake = tao.outbox._wake  # the worker's wake-up event (no worker runs in this test)
    a = await tao.obj_add("TEST_NODE", {})
    b = await tao.obj_add("TEST_NODE", {})
    wake.clear()
    await tao.obj_add("TEST_NODE", {}, owner=a, jobs=[("tests.wake", {}, 60_000)])
    await tao.assoc_add(a, "TEST_LINK", b)  # its inverse job waits out a grace period
    await tao.obj_update(a, {"x": 1})
    assert not wake.is_set()
    await tao.obj_add("TEST_NODE", {}, owner=a, jobs=[("tests.wake", {})])
    assert wake.is_set()
    wake.clear()
    await tao.enqueue(b, "tests.wake", {})
    assert wake.is_set()


async def test_obj_scan_pages_one_shard_by_id_and_type(tao):
    owner = await tao.obj_add("TEST_NODE", {"i": -1})
    ids = [owner] + [await tao.obj_add("TEST_NODE", {"i": i}, owner=owner) for i in range(5)]
    await tao.obj_add("USER", {"username": "x"}, owner=owner)  # another type: not listed
    await tao.obj_delete(ids[2])
    shard = shard_of(owner)
    first = await tao.obj_scan(shard, "TEST_NODE", limit=3)
    rest = await tao.obj_scan(shard, "TEST_NODE", after=first[-1].id, limit=100)
    got = [o.id for o in first + rest]
    assert got == sorted(got) and set(ids) - {ids[2]} <= set(got) and ids[2] not in got
    assert all(o.otype == "TEST_NODE" for o in first + rest)


async def test_declared_job_is_written_here_but_never_claimed(tao):
    seen: list[dict] = []

    async def handler(store, payload: dict) -> None:
        seen.append(payload)
    tao.outbox.declare("tests.elsewhere")  # another process runs it
    a = await tao.obj_add("TEST_NODE", {})
    await tao.enqueue(a, "tests.elsewhere", {"n": 1})
    assert await tao.run_jobs_until_idle() == 0 and seen == [] and await tao.outbox.pending() == 1
    tao.outbox.register("tests.elsewhere", handler)  # this process takes it over
    await tao.run_jobs_until_idle()
    assert seen == [{"n": 1}]


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [10**30, -(2**63) - 1, 10**400, nested(300), nested(5000)],
                         ids=["1e30", "below-i64", "1e400", "nested-300", "nested-5000"])
async def test_data_the_readers_cannot_read_back_is_refused_before_any_write(tao, value):
    """Data is written as JSON and read with orjson, which reads an integer past 64 bits as a float
    or not at all, and no nesting past its depth limit: 10**30 came back as 1e30, 10**400
    committed a row (then raised) that failed every later read and scan of it, and deep nesting
    raised a bare RecursionError (probe3)."""
    id_ = await tao.obj_add("TEST_NODE", {"k": 1})
    other = await tao.obj_add("TEST_NODE", {"k": 2}, owner=id_)
    with pytest.raises(InvalidDataError, match="read back|nested"):
        await tao.obj_add("TEST_NODE", {"big": value}, owner=id_)
    with pytest.raises(InvalidDataError, match="read back|nested"):
        await tao.obj_update(id_, {"big": value})
    with pytest.raises(InvalidDataError, match="read back|nested"):
        await tao.assoc_add(id_, "TEST_PLAIN", other, data={"big": value})
    await hooks(tao).cache.flush()  # what SQL holds
    assert [(o.id, o.data) for o in await tao.obj_scan(tao.shard(id_), "TEST_NODE")] == [(id_, {"k": 1}),
                                                                                      (other, {"k": 2})]
    assert (await tao.obj_get([id_]))[id_].version == 1
    assert await tao.assoc_count(id_, "TEST_PLAIN") == 0
    edge = 2**64 - 1  # the largest integer both ways: stored and read back exactly
    assert (await tao.obj_get([await tao.obj_add("TEST_NODE", {"n": edge})])).popitem()[1].data == {"n": edge}


@pytest.mark.parametrize("data", [{1: "a"}, {"a": [{"b": {True: 1}}]}, {"s": {None: 1}}, {"f": {1.5: 2}}],
                         ids=["int", "nested-bool", "none", "float"])
async def test_data_with_keys_that_are_not_strings_is_refused_before_any_write(tao, data):
    """JSON writes a key 1 as "1" (True as "true", None as "null"), so a batch job that wrote
    {1: "a"} read back {"1": "a"}: another dict, silently. Refused at write time, nothing
    written, the message naming where the key is; a StrEnum key (a str) is stored as its text."""
    id_ = await tao.obj_add("TEST_NODE", {"k": 1})
    other = await tao.obj_add("TEST_NODE", {"k": 2}, owner=id_)
    with pytest.raises(InvalidDataError, match="keys must be strings: data"):
        await tao.obj_add("TEST_NODE", data, owner=id_)
    with pytest.raises(InvalidDataError, match="keys must be strings"):
        await tao.obj_update(id_, data)
    with pytest.raises(InvalidDataError, match="keys must be strings"):
        await tao.assoc_add(id_, "TEST_PLAIN", other, data=data)
    await hooks(tao).cache.flush()  # what SQL holds
    assert [(o.id, o.data) for o in await tao.obj_scan(tao.shard(id_), "TEST_NODE")] == [(id_, {"k": 1}),
                                                                                      (other, {"k": 2})]
    assert (await tao.obj_get([id_]))[id_].version == 1
    assert await tao.assoc_count(id_, "TEST_PLAIN") == 0
    kind = enum.StrEnum("Kind", {"LIKE": "like"})
    stored = await tao.obj_add("TEST_NODE", {kind.LIKE: 1})
    assert (await tao.obj_get([stored]))[stored].data == {"like": 1}
