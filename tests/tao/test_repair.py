"""`tao.repair.verify_shard` on both backends: shards corrupted behind the store's back with SQL
(a wrong count, a deleted inverse row, an orphan inverse row, an inverse with other data than
its primary) are reported, `fix=True` repairs them, and the store then reads right through the
cache and after a flush."""

from __future__ import annotations

from tao.repair import verify_shard
from tao.testing import TaoTestHooks as hooks


async def sql(tao, id_: int, statement: str, params: tuple) -> None:
    """Run one statement on id_'s shard, bypassing the store's verbs and its cache."""
    async def body(conn):
        await conn.execute(statement, params)
    await hooks(tao).write(tao.shard(id_), body)


async def verify_all(tao, *, fix: bool = False) -> dict:
    return {s: await verify_shard(tao, s, fix=fix) for s in range(tao.n_shards)}


def found(reports: dict, attr: str) -> dict:
    """{item: shard that reported it} for one kind of finding."""
    return {item: s for s, r in reports.items() for item in getattr(r, attr)}


async def test_verify_reports_each_corruption_and_fix_repairs_it(tao, make_user):
    a, b, c, d, e = [await make_user() for _ in range(5)]
    await tao.assoc_add(a, "TEST_LINK", b, time=10, data={"x": 1})
    await tao.assoc_add(a, "TEST_LINK", c, time=20, data={"x": 2})
    await tao.assoc_add(d, "TEST_LINK", b, time=30, data={"x": 3})
    assert await tao.assoc_count(a, "TEST_LINK") == 2  # cached now, like a live system's lists
    assert all(r.ok for r in (await verify_all(tao)).values())
    link, link_of = hooks(tao).atype("TEST_LINK").code, hooks(tao).atype("TEST_LINK_OF").code

    # A wrong count; an inverse row deleted; an orphan inverse (no primary e -> b).
    await sql(tao, a, "UPDATE {assoc_counts} SET count = count + 3 WHERE id1 = %s AND atype = %s", (a, link))
    await sql(tao, c, "DELETE FROM {assocs} WHERE id1 = %s AND atype = %s AND id2 = %s", (c, link_of, a))
    await sql(tao, b, "INSERT INTO {assocs} (id1, atype, id2, time, version, data, src_version) "
                      "VALUES (%s, %s, %s, 40, 1, '{}', NULL)", (b, link_of, e))

    reports = await verify_all(tao)
    assert found(reports, "bad_counts") == {
        (a, "TEST_LINK", 5, 2): tao.shard(a),
        (c, "TEST_LINK_OF", 1, 0): tao.shard(c),       # the deleted row left its count behind
        (b, "TEST_LINK_OF", 2, 3): tao.shard(b),       # the orphan row was not counted
    }
    assert found(reports, "missing_inverses") == {(a, "TEST_LINK", c): tao.shard(a)}
    assert found(reports, "orphan_inverses") == {(b, "TEST_LINK_OF", e): tao.shard(b)}

    fixed = await verify_all(tao, fix=True)
    assert sum(r.fixed for r in fixed.values()) == 5
    assert all(r.ok for r in (await verify_all(tao)).values())

    for _ in ("through the cache", "after a flush"):
        assert await tao.assoc_count(a, "TEST_LINK") == 2
        assert [x.id2 for x in await tao.assoc_range(a, "TEST_LINK", 0, 10)] == [c, b]
        inv = (await tao.assoc_get(c, "TEST_LINK_OF", [a]))[a]
        assert (inv.time, inv.data) == (20, {"x": 2})
        assert await tao.assoc_count(c, "TEST_LINK_OF") == 1
        assert sorted(x.id2 for x in await tao.assoc_range(b, "TEST_LINK_OF", 0, 10)) == sorted([a, d])
        assert await tao.assoc_count(b, "TEST_LINK_OF") == 2
        assert await tao.assoc_get(b, "TEST_LINK_OF", [e]) == {}
        await hooks(tao).cache.flush()


async def test_an_inverse_with_other_data_than_its_primary_is_reported_and_fixed(tao, make_user):
    a, b = await make_user(), await make_user()
    await tao.assoc_add(a, "TEST_LINK", b, time=10, data={"x": 1})
    link_of = hooks(tao).atype("TEST_LINK_OF").code
    await sql(tao, b, "UPDATE {assocs} SET time = 99, data = '{\"x\":9}' WHERE id1 = %s AND atype = %s AND id2 = %s",
              (b, link_of, a))

    reports = await verify_all(tao)
    assert found(reports, "missing_inverses") == {(a, "TEST_LINK", b): tao.shard(a)}
    await verify_all(tao, fix=True)
    assert all(r.ok for r in (await verify_all(tao)).values())
    await hooks(tao).cache.flush()
    inv = (await tao.assoc_get(b, "TEST_LINK_OF", [a]))[a]
    assert (inv.time, inv.data) == (10, {"x": 1})
