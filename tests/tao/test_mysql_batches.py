"""The MySQL backend's queued statements (`Conn.queue`): a statement whose answer no one reads
waits and goes with the next one, or with the COMMIT, in one multi-statement round trip. What
must hold: nothing queued is ever lost, an error of a queued statement is raised (as the store's
error) and commits nothing, and a failure before COMMIT was sent is known to have committed
nothing (`unsent`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tao import Tao
from tao.errors import DuplicateKeyError, ShardUnavailableError
from tao.testing import TaoTestHooks as hooks
from tests.tao.conftest import open_store


@pytest.fixture
async def store(mysql_settings) -> AsyncIterator[Tao]:
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


async def test_a_failure_before_commit_was_sent_is_unsent(store):
    """The connection breaks under the first round trip (BEGIN and the queued write): nothing
    can have committed, so the error says `unsent` (objects.add then tries another shard); with
    `one_trip` (COMMIT in that same round trip) it cannot say so."""
    async def broken(conn):
        await conn.queue(INSERT, ("lost", 1))
        conn._conn._raw._writer.transport.abort()  # the server is gone, as far as this connection knows
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
