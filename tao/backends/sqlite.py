"""SQLite backend for the embedded default: one file per logical shard under `store.sqlite_dir`.

Each shard has a writer connection, used by one transaction at a time (an asyncio lock; SQLite
has a single writer anyway, and `BEGIN IMMEDIATE` takes its lock up front so a transaction never
fails half-way on lock upgrade), and a reader connection in WAL mode, whose statements each see
a committed snapshot. aiosqlite runs each connection on its own thread, so the event loop never
blocks on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from config import StoreSettings, resolve_path
from tao.backends.base import Conn, any_of, qualify
from tao.errors import (
    DeadlockError,
    DuplicateKeyError,
    ShardTimeoutError,
    ShardUnavailableError,
    TaoError,
)
from tao.instrumentation import SQLTimer  # metrics and spans per statement
from tao.shardmap import ShardMap

_PLACEHOLDER = re.compile(r"%s")


def _adapt(sql: str) -> str:
    return _PLACEHOLDER.sub("?", qualify(sql, ""))


def translate(exc: BaseException, shard: int) -> TaoError:
    if isinstance(exc, TaoError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ShardTimeoutError(shard, "timed out")
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return DuplicateKeyError(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return DeadlockError(str(exc))
    if isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError, OSError, ValueError)):
        return ShardUnavailableError(shard, str(exc))
    raise exc


class _SQLiteConn:
    def __init__(self, raw: aiosqlite.Connection, shard: int, timeout: float) -> None:
        self._raw = raw
        self.shard = shard
        self._timeout = timeout

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with SQLTimer("sqlite", self.shard, sql):
            cur = await asyncio.wait_for(self._raw.execute(_adapt(sql), tuple(params)), self._timeout)
            n = cur.rowcount
            await cur.close()
            return n

    async def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.execute(sql, params)  # an embedded database has no round trips to save

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with SQLTimer("sqlite", self.shard, sql):
            cur = await asyncio.wait_for(self._raw.executemany(_adapt(sql), [tuple(r) for r in rows]), self._timeout)
            n = cur.rowcount
            await cur.close()
            return n

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with SQLTimer("sqlite", self.shard, sql):
            async with self._raw.execute(_adapt(sql), tuple(params)) as cur:
                rows = await asyncio.wait_for(cur.fetchall(), self._timeout)
                return [tuple(r) for r in rows]


def _opened(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
    if conn is None:  # _open() set both connections; a close since is a caller's bug
        raise sqlite3.OperationalError("the shard's connection is closed")
    return conn


async def _rollback_quietly(writer: aiosqlite.Connection) -> None:
    """ROLLBACK, if a transaction is open (a BEGIN that failed opened none)."""
    with contextlib.suppress(sqlite3.Error):
        await writer.execute("ROLLBACK")


class _Shard:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: aiosqlite.Connection | None = None
        self.reader: aiosqlite.Connection | None = None
        self.write_lock = asyncio.Lock()
        self.open_lock = asyncio.Lock()


class SQLiteBackend:
    name = "sqlite"
    for_update = ""
    skip_locked = ""
    autocommit_writes = False  # the reader connection must not write: writes take the writer
    batches_queued = False  # statements are calls into this process: nothing to save by carrying them
    transactional_ddl = True
    now_ms_sql = "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"

    def __init__(self, settings: StoreSettings, shard_map: ShardMap) -> None:
        self._s = settings
        self._dir = resolve_path(settings.sqlite_dir)
        self._shards = [_Shard(self._dir / f"s{i:04d}.db") for i in range(shard_map.n_shards)]

    def upsert(self, table: str, cols: Sequence[str], key: Sequence[str], update_sql: dict[str, str],
               rows: int = 1) -> str:
        sets = ", ".join(f"{c} = {re.sub(r'NEW\((\w+)\)', r'excluded.\1', e)}" for c, e in update_sql.items())
        return (f"INSERT INTO {{{table}}} ({', '.join(cols)}) "
                f"VALUES {', '.join(['(' + ', '.join(['%s'] * len(cols)) + ')'] * rows)} "
                f"ON CONFLICT({', '.join(key)}) DO UPDATE SET {sets}")

    def keep_existing(self, key: Sequence[str]) -> str:
        return f" ON CONFLICT({', '.join(key)}) DO NOTHING"

    def json_int(self, column: str, field: str) -> str:
        return f"CAST(json_extract({column}, '$.{field}') AS INTEGER)"

    def keys_in(self, cols: Sequence[str], n: int) -> str:
        # An OR of per-key conditions: SQLite scans the table for a row-value IN list.
        return any_of(["(" + " AND ".join(f"{c} = %s" for c in cols) + ")"] * n)

    def union_all(self, selects: Sequence[str]) -> str:
        # SQLite takes ORDER BY and LIMIT only at the end of a compound SELECT: each SELECT is a
        # subquery of its own (which SQLite flattens or runs as a coroutine, no temporary table).
        return " UNION ALL ".join(f"SELECT * FROM ({s}) t{i}" for i, s in enumerate(selects))

    async def fetch_edges(self, conn: Conn, page: str, params: Sequence[Any], limit: int) -> list[list]:
        # Rows as they come: sqlite3 builds them in C, so there is nothing to gain from a document.
        rows = await conn.fetchall(f"SELECT id2, time, version, data FROM {page}", params)
        return [[id2, time, version, orjson.loads(data)] for id2, time, version, data in rows]

    async def _open(self, shard: int) -> _Shard:
        sh = self._shards[shard]
        if sh.writer is not None:
            return sh
        async with sh.open_lock:
            if sh.writer is None:
                try:
                    await asyncio.to_thread(sh.path.parent.mkdir, parents=True, exist_ok=True)
                    writer = await aiosqlite.connect(sh.path, isolation_level=None)
                    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
                        await writer.execute(f"PRAGMA {pragma}")
                    reader = await aiosqlite.connect(sh.path, isolation_level=None)
                    await reader.execute("PRAGMA busy_timeout=10000")
                except (sqlite3.Error, OSError) as exc:
                    raise translate(exc, shard) from exc
                sh.reader, sh.writer = reader, writer
        return sh

    @asynccontextmanager
    async def connection(self, shard: int) -> AsyncIterator[_SQLiteConn]:
        sh = await self._open(shard)
        try:
            yield _SQLiteConn(_opened(sh.reader), shard, self._s.query_timeout)
        except (sqlite3.Error, OSError, TimeoutError) as exc:
            raise translate(exc, shard) from exc

    @asynccontextmanager
    async def transaction(self, shard: int, *, one_trip: bool = False) -> AsyncIterator[_SQLiteConn]:
        sh = await self._open(shard)
        try:
            await asyncio.wait_for(sh.write_lock.acquire(), self._s.acquire_timeout)
        except TimeoutError as exc:
            raise ShardTimeoutError(shard, "waiting for the shard's writer") from exc
        try:
            writer = _opened(sh.writer)
            try:
                await writer.execute("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                # aiosqlite runs the BEGIN in its thread all the same (it may be waiting out
                # another connection's lock): roll it back behind it, before the lock is let
                # go, or the shard's writer stays in a transaction and refuses every write.
                with contextlib.suppress(BaseException):  # a second cancel: the rollback runs on
                    await asyncio.shield(_rollback_quietly(writer))
                raise
            try:
                yield _SQLiteConn(writer, shard, self._s.query_timeout)
            except BaseException:
                await asyncio.shield(writer.execute("ROLLBACK"))
                raise
            await writer.execute("COMMIT")
        except (sqlite3.Error, OSError, TimeoutError) as exc:
            raise translate(exc, shard) from exc
        finally:
            sh.write_lock.release()

    async def create_shard(self, shard: int) -> None:
        await self._open(shard)

    async def has_table(self, shard: int, table: str) -> bool:
        async with self.connection(shard) as conn:
            rows = await conn.fetchall("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = %s",
                                       (table,))
        return bool(rows[0][0])

    async def drop_shard(self, shard: int) -> None:
        sh = self._shards[shard]
        await self._close_shard(sh)
        for suffix in ("", "-wal", "-shm"):
            Path(str(sh.path) + suffix).unlink(missing_ok=True)

    async def ping(self, shard: int) -> None:
        async with self.connection(shard) as conn:
            await conn.fetchall("SELECT 1")

    async def _close_shard(self, sh: _Shard) -> None:
        for conn in (sh.reader, sh.writer):
            if conn is not None:
                await conn.close()
        sh.reader = sh.writer = None

    async def close(self) -> None:
        for sh in self._shards:
            await self._close_shard(sh)
