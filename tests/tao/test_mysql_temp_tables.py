"""The MySQL backend's list reads make no temporary table in MariaDB: a derived table (`SELECT *
FROM (...) t`) with a TEXT column (`data`) is materialised on disk (Aria) for every statement,
which cost MariaDB more CPU than the read saved the driver (docs/sharding.md, "Dialects").
Counted with the server's own `Created_tmp_disk_tables`."""

from __future__ import annotations

import pytest

from tao import Tao
from tao.testing import TaoTestHooks as hooks
from tests.tao.mariadb_status import global_status


@pytest.fixture
def store(mysql_store: Tao) -> Tao:
    return mysql_store


def temp_tables(services) -> int:
    """Temporary tables MariaDB made on every server so far (in memory and on disk), less the one
    this question makes on each (SHOW STATUS builds its answer in one)."""
    return global_status(services, ("Created_tmp_tables", "Created_tmp_disk_tables"))


async def test_list_reads_make_no_temporary_table(store, services):
    first = await store.obj_add("TEST_NODE", {})
    owners = [first] + [await store.obj_add("TEST_NODE", {}, owner=first) for _ in range(2)]  # one shard
    targets = [await store.obj_add("TEST_NODE", {}) for _ in range(60)]
    for a in owners:
        for i, b in enumerate(targets):
            await store.assoc_add(a, "TEST_LINK", b, time=1000 + i, data={"i": i, "text": "x" * 20})
    await store.assoc_add_many([(owners[2], "TEST_UNCACHED", b, 1000 + i, {"i": i}) for i, b in enumerate(targets)])
    keys = [(a, "TEST_LINK") for a in owners]
    await hooks(store).cache.flush()
    before = temp_tables(services)
    filled = await store.assoc_range_many(keys, 0, 10)             # the lists' cache fill (every miss)
    deep = await store.assoc_range_many(keys, 50, 5)               # past the cached window: a page of each
    one_small = await store.assoc_range(owners[0], "TEST_LINK", 55, 3)  # one list's small page
    store.reset_stats()
    one_large = await store.assoc_range(owners[2], "TEST_UNCACHED", 8, 50)  # one list's page of 50, from SQL
    assert store.stats()["sql_queries"] == 1
    # asyncmy (the default driver) reads even a large page as rows (aiomysql: as a document, which
    # makes two: `fetch_edges`)
    assert temp_tables(services) - before == len(services.mysql)  # the question's own tables
    assert [e.id2 for e in one_large] == targets[::-1][8:58]
    assert [e.id2 for e in filled[keys[0]]] == targets[::-1][:10]
    assert [e.id2 for e in deep[keys[1]]] == targets[::-1][50:55]
    assert [e.id2 for e in one_small] == targets[::-1][55:58]
