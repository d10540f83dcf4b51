"""A pool of aiomysql connections to one MariaDB server, lighter than aiomysql's own.

aiomysql's `Pool` scans its whole free list on every acquire (each connection's reader state
and age, rotating the deque: 40 checks with the benchmarks' 40 connections) and starts a task
on every release to notify waiters under a condition lock: a loop turn and a task per
transaction. Here an acquire looks at the one connection it takes (the most recently used:
the warmest), a release hands the connection back and wakes one waiter directly, and there is
no lock: everything runs on the event loop between awaits.

Same rules as aiomysql's: at most `maxsize` connections open or opening; none kept open at
rest (`minsize` 0: the store comes up while a server is down); an idle connection that the
server closed, or older than `recycle` seconds, is closed instead of handed out; a connection
given back closed, or inside a transaction, is not reused.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import aiomysql


class ConnectionPool:
    def __init__(self, connect: Callable[[], Awaitable[aiomysql.Connection]], maxsize: int,
                 recycle: float = 3600.0) -> None:
        self._connect = connect
        self._maxsize = maxsize
        self._recycle = recycle
        self._idle: deque[aiomysql.Connection] = deque()
        self._size = 0  # connections open or being opened, idle or in use
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self) -> aiomysql.Connection:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise RuntimeError("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()  # the most recently used
                if self._usable(conn, loop.time()):
                    return conn
                self._discard(conn)
            if self._size < self._maxsize:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._wake_one()  # a waiter may open one now
                    raise
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                # Cancelled (a timeout) after a release had chosen this waiter: pass the turn on.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                else:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass
                raise

    def release(self, conn: aiomysql.Connection) -> None:
        """Give a connection back (synchronous: safe in `finally` of a cancelled task)."""
        if self._closed or conn.closed or conn.get_transaction_status():
            self._discard(conn)
        else:
            self._idle.append(conn)  # aiomysql stamps `last_usage` at each command
        self._wake_one()

    def _usable(self, conn: aiomysql.Connection, now: float) -> bool:
        reader = conn._reader
        if conn.closed or reader.at_eof() or reader.exception() is not None or getattr(reader, "eof_received", False):
            return False
        return now - conn.last_usage <= self._recycle

    def _discard(self, conn: aiomysql.Connection) -> None:
        if not conn.closed:
            conn.close()
        self._size -= 1

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close the idle connections now and each one in use when it comes back."""
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # it wakes to a closed pool and raises
        self._waiters.clear()

    async def wait_closed(self) -> None:
        """Closing is immediate (no connection is waited for); kept for aiomysql's interface."""
