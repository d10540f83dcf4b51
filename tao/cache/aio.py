"""memcached's text protocol on the event loop: a bounded connection pool per server and the four
exchanges the tier's data path makes (`get`, `gets`, pipelined `add`, pipelined `cas`).

Why not pymemcache on worker threads (as before): every call then cost a thread hand-off both
ways (a queue put and a futex wake-up, a self-pipe write back to the loop, the GIL passed
between threads): a 1-key `get_many` took 124 us of CPU that way and 87 us on the loop, an
install 192 and 94 us (docs/caching.md, "Connections, timeouts, errors"), paid over a dozen
times a message send.

Invariants:
- A connection is reused only after an exchange that completed: any error, timeout or
  cancellation in the middle of one closes it (a reply may still be on its way, and would be
  read as the next command's).
- At most `max_connections` connections per server are in use at once; a caller waits for one.
- `clear()` (from any thread: the heartbeat calls it before it flushes a recovered server)
  makes every connection opened before it be closed instead of reused: one left idle across a
  restart would fail on its first use, a second fault that only this process sees.
- Connections belong to one event loop: each loop using a pool (threads with their own loops,
  a batch job's successive `asyncio.run`s) has its own connections and slots, never another's.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable
from typing import TypeVar

from pymemcache.exceptions import MemcacheUnexpectedCloseError, MemcacheUnknownError

T = TypeVar("T")

RECV_BYTES = 256 * 1024
_ADD_REPLIES: dict[bytes, bool | None] = {b"STORED": True, b"NOT_STORED": False}
_CAS_REPLIES: dict[bytes, bool | None] = {b"STORED": True, b"EXISTS": False, b"NOT_FOUND": None}


class Connection:
    __slots__ = ("reader", "writer", "generation", "owner")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int,
                 owner: _LoopConnections) -> None:
        self.reader, self.writer, self.generation = reader, writer, generation
        self.owner = owner  # its loop's connections: where it goes back, and whose slot it holds

    def abort(self) -> None:
        self.writer.transport.abort()


class _LoopConnections:
    """The connections one event loop uses: asyncio's streams and semaphores belong to the loop
    that made them, so every loop gets its own idle list and its own slots."""

    __slots__ = ("loop", "idle", "slots")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_connections: int) -> None:
        self.loop = loop
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(max_connections)

    def abort_idle(self) -> None:
        """Close the idle connections, from any thread. A transport is only touched on its own
        loop's thread; a closed loop's transports cannot be (closing one schedules a callback
        there): they are marked closing and their sockets close when they are collected."""
        idle, self.idle = self.idle, []
        if not idle:
            return
        if self.loop.is_closed():
            for conn in idle:
                try:
                    conn.abort()
                except RuntimeError:  # "Event loop is closed", after the transport is marked
                    pass
        elif _running_loop() is self.loop:
            _abort_all(idle)
        else:
            try:
                self.loop.call_soon_threadsafe(_abort_all, idle)
            except RuntimeError:  # closed in the meantime
                pass


def _abort_all(conns: list[Connection]) -> None:
    for conn in conns:
        conn.abort()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class ServerConnections:
    """One server's pooled connections: `acquire`, `exchange(get_many(conn, ...))` (within
    `timeout`) as often as needed, then `release(conn, reuse=every exchange completed)`.
    Errors propagate: the caller marks the server suspect.

    Any number of event loops (each in its own thread, or one after another: a batch job's
    `asyncio.run`s) may share one: each loop has its own connections and its own
    `max_connections`; a connection never crosses loops."""

    def __init__(self, address: tuple[str, int] | str, *, connect_timeout: float, timeout: float,
                 max_connections: int) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_connections = max_connections
        self.generation = 0
        self._closed = False
        self._by_loop: dict[asyncio.AbstractEventLoop, _LoopConnections] = {}
        self._lock = threading.Lock()  # guards `_by_loop`'s membership, for loops in other threads

    def clear(self) -> None:
        """Any thread: connections opened before this are closed, never reused."""
        self.generation += 1

    def _connections(self, loop: asyncio.AbstractEventLoop) -> _LoopConnections:
        mine = self._by_loop.get(loop)
        if mine is None:
            with self._lock:
                # A loop that ended leaves its idle connections here: drop them now (a batch
                # job's many `asyncio.run`s would otherwise hold one set of sockets each).
                for old in [c for c in self._by_loop.values() if c.loop.is_closed()]:
                    del self._by_loop[old.loop]
                    old.abort_idle()
                mine = self._by_loop[loop] = _LoopConnections(loop, self.max_connections)
        return mine

    async def acquire(self) -> Connection:
        mine = self._connections(asyncio.get_running_loop())
        await mine.slots.acquire()
        try:
            while mine.idle:
                conn = mine.idle.pop()
                if conn.generation == self.generation and not conn.writer.is_closing():
                    return conn
                conn.abort()
            generation = self.generation
            async with asyncio.timeout(self.connect_timeout):
                if isinstance(self.address, str):
                    reader, writer = await asyncio.open_unix_connection(self.address, limit=RECV_BYTES)
                else:
                    reader, writer = await asyncio.open_connection(*self.address, limit=RECV_BYTES)
                    sock = writer.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Connection(reader, writer, generation, mine)
        except BaseException:
            mine.slots.release()
            raise

    def release(self, conn: Connection, *, reuse: bool) -> None:
        """On the loop that acquired `conn`."""
        mine = conn.owner
        if reuse and not self._closed and conn.generation == self.generation:
            mine.idle.append(conn)
        else:
            conn.abort()
        mine.slots.release()

    async def exchange(self, request: Awaitable[T]) -> T:
        """One request/response (a coroutine of this module's, on a connection of this pool),
        within `timeout`."""
        async with asyncio.timeout(self.timeout):
            return await request

    def close(self) -> None:
        """Close the idle connections (every loop's); those in use are closed when they come
        back."""
        self._closed = True
        with self._lock:
            every, self._by_loop = list(self._by_loop.values()), {}
        for mine in every:
            mine.abort_idle()


async def _fill(conn: Connection, buf: bytearray, need: int) -> None:
    """Read until `buf` holds at least `need` bytes."""
    while len(buf) < need:
        chunk = await conn.reader.read(max(RECV_BYTES, need - len(buf)))
        if not chunk:
            raise MemcacheUnexpectedCloseError()
        buf += chunk


def send_get(conn: Connection, wire_keys: list[bytes]) -> None:
    """Write a `get` of `wire_keys` (not empty); `read_values(conn, False)` reads its reply. A
    caller with several servers to ask writes every request first, then reads the replies."""
    conn.writer.write(b"get " + b" ".join(wire_keys) + b"\r\n")


async def read_values(conn: Connection, with_cas: bool) -> dict[bytes, tuple[bytes, bytes | None]]:
    """The reply to a `get`/`gets`, parsed in one pass over large reads."""
    buf = bytearray()
    pos = 0
    out: dict[bytes, tuple[bytes, bytes | None]] = {}
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            await _fill(conn, buf, len(buf) + 1)
            continue
        if eol == pos + 3 and buf[pos:eol] == b"END":
            if eol + 2 != len(buf):  # nothing was asked after it: a reply to no request
                raise MemcacheUnknownError(b"bytes after END")
            return out
        header = bytes(buf[pos:eol]).split()
        if len(header) < (5 if with_cas else 4) or header[0] != b"VALUE":  # SERVER_ERROR, CLIENT_ERROR, ERROR
            raise MemcacheUnknownError(bytes(buf[pos:eol])[:64])
        start = eol + 2
        end = start + int(header[3])
        await _fill(conn, buf, end + 2)
        out[header[1]] = (bytes(buf[start:end]), header[4] if with_cas else None)
        pos = end + 2


async def get_many(conn: Connection, wire_keys: list[bytes]) -> dict[bytes, bytes]:
    """One `get` of every key: {wire key: raw value} for the keys present."""
    if not wire_keys:
        return {}
    send_get(conn, wire_keys)
    return {k: v for k, (v, _) in (await read_values(conn, False)).items()}


async def gets_many(conn: Connection, wire_keys: list[bytes]) -> dict[bytes, tuple[bytes, bytes]]:
    """One `gets` of every key: {wire key: (raw value, cas token)} for the keys present."""
    if not wire_keys:
        return {}
    conn.writer.write(b"gets " + b" ".join(wire_keys) + b"\r\n")
    return await read_values(conn, True)  # type: ignore[return-value]


async def _replies(conn: Connection, tables: list[dict[bytes, bool | None]]) -> list[bool | None]:
    """One reply line for each of `tables` (the replies its command may give), in order."""
    buf = bytearray()
    pos = 0
    out: list[bool | None] = []
    n = len(tables)
    while len(out) < n:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            await _fill(conn, buf, len(buf) + 1)
            continue
        line = bytes(buf[pos:eol])
        table = tables[len(out)]
        if line not in table:  # SERVER_ERROR (out of memory, too large), CLIENT_ERROR, ERROR
            raise MemcacheUnknownError(line[:64])
        out.append(table[line])
        pos = eol + 2
    if pos != len(buf):
        raise MemcacheUnknownError(b"bytes after the last reply")
    return out


async def store_many(conn: Connection, adds: list[tuple[bytes, bytes]], cases: list[tuple[bytes, bytes, bytes]],
                     expire: int) -> tuple[list[bool], list[bool | None]]:
    """Pipelined `add`s of (wire key, data) and `cas`es of (wire key, data, cas token), in one
    exchange (an install wave's writes: new keys and changed ones together). An add: True
    stored, False present already; a cas: True stored, False changed since the `gets`, None gone."""
    exp = str(expire).encode()
    conn.writer.write(b"".join([*(b"add %s 0 %s %d\r\n%s\r\n" % (k, exp, len(d), d) for k, d in adds),
                                *(b"cas %s 0 %s %d %s\r\n%s\r\n" % (k, exp, len(d), c, d) for k, d, c in cases)]))
    replies = await _replies(conn, [_ADD_REPLIES] * len(adds) + [_CAS_REPLIES] * len(cases))
    return replies[:len(adds)], replies[len(adds):]  # type: ignore[return-value]
