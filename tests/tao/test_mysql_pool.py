"""The store's MariaDB connection pool (tao/backends/mysql_pool.py), against a real server:
its cap, its waiters (a timed-out one never strands a connection), and which connections it
refuses to hand out again."""

from __future__ import annotations

import asyncio

import aiomysql
import pymysql
import pytest

from tao.backends.mysql_pool import ConnectionPool


@pytest.fixture
def connect(services):
    m = services.mysql[0]
    return lambda: aiomysql.connect(unix_socket=m.unix_socket, user=m.user, password=m.password, autocommit=True)


async def _select(conn) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        return (await cur.fetchone())[0]


async def test_at_most_maxsize_connections_and_every_waiter_served(connect):
    pool = ConnectionPool(connect, maxsize=3)
    most = 0
    ids = set()

    async def one() -> None:
        nonlocal most
        conn = await pool.acquire()
        try:
            most = max(most, pool.size)
            ids.add(await _select(conn))
            await asyncio.sleep(0.005)
        finally:
            pool.release(conn)
    await asyncio.gather(*(one() for _ in range(40)))
    assert most == 3 and pool.size == 3 and len(ids) == 3 and pool.idle == 3
    pool.close()
    assert pool.size == 0


async def test_a_waiter_that_times_out_after_it_was_woken_passes_the_turn_on(connect):
    pool = ConnectionPool(connect, maxsize=1)
    held = await pool.acquire()
    late = asyncio.ensure_future(pool.acquire())  # woken by the release, but cancelled before it runs
    patient = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(held)
    late.cancel()
    conn = await asyncio.wait_for(patient, 2)  # not stranded behind the cancelled waiter
    assert late.cancelled() and await _select(conn) > 0
    pool.release(conn)
    pool.close()


async def test_a_connection_the_server_closed_is_not_handed_out(connect, services):
    pool = ConnectionPool(connect, maxsize=2)
    conn = await pool.acquire()
    dead = await _select(conn)
    pool.release(conn)
    admin = await connect()
    async with admin.cursor() as cur:
        await cur.execute(f"KILL {dead}")
    admin.close()
    await asyncio.sleep(0.1)  # the server's close reaches the idle connection
    fresh = await pool.acquire()
    assert await _select(fresh) != dead and pool.size == 1
    pool.release(fresh)
    pool.close()


async def test_a_connection_given_back_closed_or_inside_a_transaction_is_not_reused(connect):
    pool = ConnectionPool(connect, maxsize=2)
    conn = await pool.acquire()
    first = await _select(conn)
    async with conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute("SELECT 1")
    pool.release(conn)  # still in a transaction: closed, not pooled
    assert pool.size == 0 and conn.closed
    conn = await pool.acquire()
    second = await _select(conn)
    conn.close()
    pool.release(conn)
    assert pool.size == 0
    conn = await pool.acquire()
    assert len({first, second, await _select(conn)}) == 3
    pool.release(conn)
    pool.close()


async def test_an_idle_connection_past_recycle_is_replaced(connect):
    pool = ConnectionPool(connect, maxsize=1, recycle=0.05)
    conn = await pool.acquire()
    old = await _select(conn)
    pool.release(conn)
    await asyncio.sleep(0.1)
    conn = await pool.acquire()
    assert await _select(conn) != old and pool.size == 1
    pool.release(conn)
    pool.close()


async def test_a_failed_connect_frees_its_slot(services):
    m = services.mysql[0]
    pool = ConnectionPool(lambda: aiomysql.connect(unix_socket=m.unix_socket, user="nobody", password="x"), maxsize=1)
    for _ in range(2):
        with pytest.raises(pymysql.err.OperationalError):  # access denied
            await pool.acquire()
    assert pool.size == 0
