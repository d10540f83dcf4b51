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
- Connections belong to one event loop; a pool used from another loop forgets the old ones.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from typing import TypeVar

from pymemcache.exceptions import MemcacheUnexpectedCloseError, MemcacheUnknownError

T = TypeVar("T")

RECV_BYTES = 256 * 1024
_ADD_REPLIES: dict[bytes, bool | None] = {b"STORED": True, b"NOT_STORED": False}
_CAS_REPLIES: dict[bytes, bool | None] = {b"STORED": True, b"EXISTS": False, b"NOT_FOUND": None}


class Connection:
    __slots__ = ("reader", "writer", "generation")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int) -> None:
        self.reader, self.writer, self.generation = reader, writer, generation

    def abort(self) -> None:
        self.writer.transport.abort()


class ServerConnections:
    """One server's pooled connections: `acquire`, `exchange(get_many(conn, ...))` (within
    `timeout`) as often as needed, then `release(conn, reuse=every exchange completed)`.
    Errors propagate: the caller marks the server suspect."""

    def __init__(self, address: tuple[str, int] | str, *, connect_timeout: float, timeout: float,
                 max_connections: int) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_connections = max_connections
        self.generation = 0
        self._closed = False
        self._idle: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    def clear(self) -> None:
        """Any thread: connections opened before this are closed, never reused."""
        self.generation += 1

    async def acquire(self) -> Connection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:
            self._loop, self._idle, self._slots = loop, [], asyncio.Semaphore(self.max_connections)
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
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
            return Connection(reader, writer, generation)
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Connection, *, reuse: bool) -> None:
        if (reuse and not self._closed and conn.generation == self.generation
                and asyncio.get_running_loop() is self._loop):
            self._idle.append(conn)
        else:
            conn.abort()
        if self._slots is not None and asyncio.get_running_loop() is self._loop:
            self._slots.release()

    async def exchange(self, request: Awaitable[T]) -> T:
        """One request/response (a coroutine of this module's, on a connection of this pool),
        within `timeout`."""
        async with asyncio.timeout(self.timeout):
            return await request

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        self._closed = True
        for conn in self._idle:
            conn.abort()
        self._idle = []


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


async def _replies(conn: Connection, n: int, table: dict[bytes, bool | None]) -> list[bool | None]:
    buf = bytearray()
    pos = 0
    out: list[bool | None] = []
    while len(out) < n:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            await _fill(conn, buf, len(buf) + 1)
            continue
        line = bytes(buf[pos:eol])
        if line not in table:  # SERVER_ERROR (out of memory, too large), CLIENT_ERROR, ERROR
            raise MemcacheUnknownError(line[:64])
        out.append(table[line])
        pos = eol + 2
    if pos != len(buf):
        raise MemcacheUnknownError(b"bytes after the last reply")
    return out


async def add_many(conn: Connection, items: list[tuple[bytes, bytes]], expire: int) -> list[bool]:
    """Pipelined `add` of (wire key, data), one exchange: True stored, False present already."""
    exp = str(expire).encode()
    conn.writer.write(b"".join(b"add %s 0 %s %d\r\n%s\r\n" % (k, exp, len(d), d) for k, d in items))
    return await _replies(conn, len(items), _ADD_REPLIES)  # type: ignore[return-value]


async def cas_many(conn: Connection, items: list[tuple[bytes, bytes, bytes]], expire: int) -> list[bool | None]:
    """Pipelined `cas` of (wire key, data, cas token), one exchange. True: stored; False:
    changed since the `gets`; None: gone."""
    exp = str(expire).encode()
    conn.writer.write(b"".join(b"cas %s 0 %s %d %s\r\n%s\r\n" % (k, exp, len(d), c, d) for k, d, c in items))
    return await _replies(conn, len(items), _CAS_REPLIES)
