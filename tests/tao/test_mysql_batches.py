"""The MySQL backend's queued statements (`Conn.queue`): a statement whose answer no one reads
waits and goes with the next one, or with the COMMIT, in one multi-statement round trip. What
must hold: nothing queued is ever lost, an error of a queued statement is raised (as the store's
error) and commits nothing, and a failure before COMMIT was sent is known to have committed
nothing (`unsent`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config.settings import MySQLDriver
from tao import Tao
from tao.errors import DuplicateKeyError, ShardUnavailableError
from tao.testing import TaoTestHooks as hooks
from tests.tao.conftest import open_store


@pytest.fixture(params=list(MySQLDriver))
async def store(request, mysql_settings) -> AsyncIterator[Tao]:
    """A MariaDB store on each driver (`store.mysql_driver`): the multi-statement round trips,
    their errors and a broken connection are where the two drivers' code differs."""
    mysql_settings.store.mysql_driver = request.param
    tao = await open_store(mysql_settings)
    try:
        yield tao
    finally:
        await tao.close()


async def _rows(tao: Tao, shard: int, k: str) -> list[tuple]:
    async with hooks(tao).read(shard) as conn:
        return await conn.fetchall("SELECT k, id FROM {unique_keys} WHERE ns = 'test' AND k = %s", (k,))


INSERT = "INSERT INTO {unique_keys} (ns, k, id, version) VALUES ('test', %s, %s, 1)"


async def test_queued_writes_go_with_the_next_statement_and_the_commit(store, round_trips):
    async def body(conn):
        await conn.queue(INSERT, ("a", 1))
        await conn.queue(INSERT, ("b", 2))
        rows = await conn.fetchall("SELECT COUNT(*) FROM {unique_keys} WHERE ns = 'test'")
        await conn.queue(INSERT, ("c", 3))
        return rows[0][0]
    assert await hooks(store).write(0, body) == 2  # the read saw the writes queued before it
    assert round_trips == [["BEGIN", "INSERT INTO", "INSERT INTO", "SELECT COUNT(*)"], ["INSERT INTO", "COMMIT"]]
    assert [len(await _rows(store, 0, k)) for k in "abc"] == [1, 1, 1]


async def test_a_transaction_of_queued_writes_only_commits_them(store, round_trips):
    async def body(conn):
        await conn.queue(INSERT, ("only", 7))
    await hooks(store).write(0, body)
    # BEGIN and the write, then COMMIT: a failure of the first is known to have committed nothing
    assert round_trips == [["BEGIN", "INSERT INTO"], ["COMMIT"]]
    assert await _rows(store, 0, "only") == [("only", 7)]
    round_trips.clear()
    await store._shards.write(0, lambda conn: conn.queue(INSERT, ("one", 8)), one_trip=True)
    assert round_trips == [["BEGIN", "INSERT INTO", "COMMIT"]]
    assert await _rows(store, 0, "one") == [("one", 8)]


async def test_a_transaction_that_wrote_nothing_sends_nothing(store, round_trips):
    async def body(conn):
        return "done"
    assert await hooks(store).write(0, body) == "done"
    assert round_trips == []


async def test_an_error_in_a_queued_write_is_raised_and_commits_nothing(store):
    await hooks(store).write(0, lambda conn: conn.queue(INSERT, ("dup", 1)))

    async def body(conn):
        await conn.queue(INSERT, ("fresh", 2))
        await conn.queue(INSERT, ("dup", 3))  # the unique key exists: MariaDB stops here
        await conn.queue(INSERT, ("after", 4))
    with pytest.raises(DuplicateKeyError):
        await hooks(store).write(0, body)
    assert await _rows(store, 0, "fresh") == [] and await _rows(store, 0, "after") == []
    assert await _rows(store, 0, "dup") == [("dup", 1)]

    async def read_after(conn):  # raised at the read the failing write went with
        await conn.queue(INSERT, ("dup", 5))
        await conn.fetchall("SELECT 1")
    with pytest.raises(DuplicateKeyError):
        await hooks(store).write(0, read_after)
    # the pool's connections are usable afterwards (none is left inside a transaction)
    for key in ("ok0", "ok1", "ok2"):
        async def write(conn, key: str = key) -> None:
            await conn.queue(INSERT, (key, 9))
        await hooks(store).write(0, write)
    assert await _rows(store, 0, "ok2") == [("ok2", 9)]


def _transport(raw):
    """The socket's asyncio transport: asyncmy's connection is a protocol holding it,
    aiomysql's reads and writes through streams."""
    return raw._transport if hasattr(raw, "_transport") else raw._writer.transport


async def test_a_failure_before_commit_was_sent_is_unsent(store):
    """The connection breaks under the first round trip (BEGIN and the queued write): nothing
    can have committed, so the error says `unsent` (objects.add then tries another shard); with
    `one_trip` (COMMIT in that same round trip) it cannot say so."""
    async def broken(conn):
        await conn.queue(INSERT, ("lost", 1))
        _transport(conn._conn._raw).abort()  # the server is gone, as far as this connection knows
    with pytest.raises(ShardUnavailableError) as first:
        await hooks(store).write(0, broken)
    assert first.value.unsent is True
    with pytest.raises(ShardUnavailableError) as one_trip:
        await store._shards.write(0, broken, one_trip=True)
    assert one_trip.value.unsent is False
    assert await _rows(store, 0, "lost") == []


async def test_a_queued_write_on_an_autocommit_connection_runs_at_once(store):
    async with hooks(store).read(0) as conn:
        await conn.queue(INSERT, ("now", 1))
    assert await _rows(store, 0, "now") == [("now", 1)]


# ---- done outbox jobs ride with a later commit (`Outbox.delete_soon`, `Shards.rider`) ----------

async def _noop(_tao, _payload) -> None:
    return None


async def _job_ids(tao: Tao, shard: int) -> list[int]:
    async with hooks(tao).read(shard) as conn:
        return [r[0] for r in await conn.fetchall("SELECT id FROM {outbox} WHERE handler = 'test.later'")]


async def _done_job(tao: Tao, shard: int) -> int:
    tao.outbox.register("test.later", _noop)
    job = await tao.outbox.enqueue(shard, "test.later", {}, delay_ms=60_000)
    await tao.outbox.delete_soon(shard, job)
    return job


async def test_a_done_job_is_deleted_in_the_next_commit_on_its_shard(store, round_trips):
    """A writer that did its own repair job deletes it with no round trip of its own: the
    DELETE goes with the last writes (or the COMMIT) of the next transaction on that shard. It
    was a statement and a round trip of its own after every message sent."""
    job = await _done_job(store, 0)
    other = await _done_job(store, 1)
    round_trips.clear()
    await hooks(store).write(0, lambda conn: conn.queue(INSERT, ("carrier", 1)))
    assert round_trips == [["BEGIN", "INSERT INTO", "DELETE FROM"], ["COMMIT"]]
    assert await _job_ids(store, 0) == [] and await _rows(store, 0, "carrier") == [("carrier", 1)]
    assert await _job_ids(store, 1) == [other]  # another shard's job waits for a commit there
    round_trips.clear()
    await hooks(store).write(0, lambda conn: conn.queue(INSERT, ("next", 2)))
    assert round_trips == [["BEGIN", "INSERT INTO"], ["COMMIT"]]  # carried once
    assert job not in await _job_ids(store, 0)


async def test_a_rolled_back_transaction_leaves_the_done_job_to_the_next(store, round_trips):
    job = await _done_job(store, 0)
    await hooks(store).write(0, lambda conn: conn.queue(INSERT, ("taken", 1)))  # carries it
    assert await _job_ids(store, 0) == []
    job = await _done_job(store, 0)
    with pytest.raises(DuplicateKeyError):  # the round trip that carries it fails: nothing committed
        await hooks(store).write(0, lambda conn: conn.queue(INSERT, ("taken", 2)))
    assert await _job_ids(store, 0) == [job]
    await hooks(store).write(0, lambda conn: conn.queue(INSERT, ("later", 3)))
    assert await _job_ids(store, 0) == []


async def test_a_done_job_no_commit_carries_is_deleted_on_its_own(store):
    import asyncio

    from tao.outbox import RIDE_WAIT_S

    job = await _done_job(store, 2)
    assert await _job_ids(store, 2) == [job]
    await asyncio.sleep(RIDE_WAIT_S + 0.5)
    assert await _job_ids(store, 2) == []
    job = await _done_job(store, 3)
    await store.outbox.flush_done()  # the store closing deletes what waits
    assert await _job_ids(store, 3) == []


async def test_a_large_page_reads_back_exactly_on_each_driver(store):
    """One list's page from SQL: rows with asyncmy, one JSON document with aiomysql from
    `DOCUMENT_PAGES_FROM` edges (`fetch_edges`); either way every value as written."""
    owner = await store.obj_add("TEST_NODE", {})
    odd = {"s": 'é🙂 "q" \\ \n', "f": 0.1, "big": 2**63 - 1, "n": [1, {"x": None}], "t": True}
    ids = [store.ids.next_id(store.shard(owner)) for _ in range(60)]
    await store.assoc_add_many([(owner, "TEST_UNCACHED", i, 1000 + n, {**odd, "i": n}) for n, i in enumerate(ids)])
    store.reset_stats()
    page = await store.assoc_range(owner, "TEST_UNCACHED", 0, 60)
    assert store.stats()["sql_queries"] == 1
    assert [(e.id2, e.time, e.data) for e in page] == [(i, 1000 + n, {**odd, "i": n}) for n, i in enumerate(ids)][::-1]
