"""`aio`'s exchanges against a real memcached: a `get` whose reply is read in large chunks and
parsed in one pass (every value byte for byte, whatever it holds and however the reply is cut
into reads), pipelined `add`/`cas` (`store_many`), and a connection that is closed, never reused, after an
exchange that did not complete."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import pytest
from pymemcache.exceptions import MemcacheUnknownError

from tao.cache import aio


@pytest.fixture
async def pool(services):
    host, port = services.memcached[0].rsplit(":", 1)
    p = aio.ServerConnections((host, int(port)), connect_timeout=1.0, timeout=1.0, max_connections=2)
    yield p
    p.close()


async def _call(pool: aio.ServerConnections, fn, *args):
    conn = await pool.acquire()
    ok = False
    try:
        out = await pool.exchange(fn(conn, *args))
        ok = True
        return out
    finally:
        pool.release(conn, reuse=ok)


async def test_every_value_comes_back_byte_for_byte(pool, test_id):
    p = f"{test_id}:".encode()
    values = {
        b"plain": b'{"v":1}',
        b"empty": b"",
        b"looks_like_the_end": b"x\r\nEND\r\nVALUE k 0 3\r\nabc\r\n",  # protocol text inside a value
        b"big": os.urandom(3 * aio.RECV_BYTES + 17),  # spans several reads
        b"after_big": b"tail",
    }
    adds = [(p + k, v) for k, v in values.items()]
    assert await _call(pool, aio.store_many, adds, [], 60) == ([True] * len(values), [])
    assert await _call(pool, aio.store_many, [(p + b"plain", b"other")], [], 60) == ([False], [])  # present already
    keys = [p + k for k in values] + [p + b"missing", p + b"plain"]  # a miss, and a key asked twice
    assert await _call(pool, aio.get_many, keys) == {p + k: v for k, v in values.items()}
    assert await _call(pool, aio.get_many, [p + b"missing"]) == {}
    assert await _call(pool, aio.get_many, []) == {}
    (value, token), = (await _call(pool, aio.gets_many, [p + b"plain"])).values()
    assert value == values[b"plain"]
    cases = [(p + b"plain", b"new", token), (p + b"plain", b"newer", token), (p + b"missing", b"x", token)]
    assert await _call(pool, aio.store_many, [], cases, 60) == ([], [True, False, None])
    assert await _call(pool, aio.get_many, [p + b"plain"]) == {p + b"plain": b"new"}


async def test_adds_and_cases_go_in_one_exchange_and_answer_in_order(pool, test_id):
    """An install wave's writes: new keys' `add`s and changed keys' `cas`es pipelined together,
    each answered as it would be alone."""
    p = f"{test_id}:".encode()
    await _call(pool, aio.store_many, [(p + b"present", b"0"), (p + b"cased", b"1"), (p + b"raced", b"2")], [], 60)
    tokens = {k: t for k, (_, t) in (await _call(pool, aio.gets_many, [p + b"cased", p + b"raced"])).items()}
    await _call(pool, aio.store_many, [], [(p + b"raced", b"2'", tokens[p + b"raced"])], 60)  # another writer first
    conn = await pool.acquire()
    added, cased = await pool.exchange(aio.store_many(
        conn, [(p + b"new", b"n"), (p + b"present", b"x")],
        [(p + b"cased", b"1'", tokens[p + b"cased"]), (p + b"raced", b"x", tokens[p + b"raced"]),
         (p + b"gone", b"x", tokens[p + b"cased"])], 60))
    pool.release(conn, reuse=True)
    assert (added, cased) == ([True, False], [True, False, None])
    assert await _call(pool, aio.get_many, [p + k for k in (b"new", b"present", b"cased", b"raced", b"gone")]) == {
        p + b"new": b"n", p + b"present": b"0", p + b"cased": b"1'", p + b"raced": b"2'"}


async def test_a_server_error_raises_and_closes_the_connection(pool, test_id):
    p = f"{test_id}:".encode()
    await _call(pool, aio.store_many, [(p + b"k", b"v")], [], 60)
    conn = await pool.acquire()
    with pytest.raises(MemcacheUnknownError):
        await pool.exchange(aio.get_many(conn, [b"x" * 300]))  # over memcached's key length: CLIENT_ERROR
    pool.release(conn, reuse=False)
    assert conn.writer.is_closing()  # closed: the next call opens another
    assert await _call(pool, aio.get_many, [p + b"k"]) == {p + b"k": b"v"}


async def test_loops_in_several_threads_share_a_pool_without_sharing_a_connection(pool, test_id):
    """Batch jobs and tests drive one tier from threads with their own event loops: each loop's
    exchanges run on connections of that loop only (a stream used from another loop's thread
    fails, or hangs, at random)."""
    p = f"{test_id}:".encode()
    await _call(pool, aio.store_many, [(p + b"k", b"v")], [], 60)
    errors: list[BaseException] = []

    def run() -> None:
        async def one_task() -> None:
            for _ in range(40):
                assert await _call(pool, aio.get_many, [p + b"k"]) == {p + b"k": b"v"}
                await asyncio.sleep(0)

        async def body() -> None:
            await asyncio.gather(*(one_task() for _ in range(4)))
        try:
            for _ in range(3):  # loops end and new ones begin while the others run
                asyncio.run(body())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    await asyncio.to_thread(lambda: ([t.start() for t in threads], [t.join() for t in threads]))
    assert errors == []
    assert await _call(pool, aio.get_many, [p + b"k"]) == {p + b"k": b"v"}


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # the listing's own descriptor, closed since
            pass
    return count


def test_a_batch_jobs_successive_event_loops_do_not_pile_up_connections(services, test_id):
    """A job calling `asyncio.run` again and again with one pool: the connections an ended loop
    left idle are closed when the next loop comes, not kept one set per loop."""
    host, port = services.memcached[0].rsplit(":", 1)
    pool = aio.ServerConnections((host, int(port)), connect_timeout=1.0, timeout=1.0, max_connections=4)
    key = f"{test_id}:k".encode()

    async def burst() -> None:
        await asyncio.gather(*(_call(pool, aio.get_many, [key]) for _ in range(4)))
    try:
        asyncio.run(burst())
        gc.collect()
        before = _open_sockets()
        for _ in range(20):
            asyncio.run(burst())
        gc.collect()
        assert _open_sockets() <= before
    finally:
        pool.close()
