"""MySQL/MariaDB backend: one connection pool per physical server; each logical shard is a database
on its server, named by the shard map, and SQL names tables fully (`taogram_s0003.objects`), so
one pool serves every shard on its server.

The driver is asyncmy (its protocol core compiled) or aiomysql (pure Python over PyMySQL), by
`store.mysql_driver`: the same API (asyncmy began as aiomysql's port), so this module is the
only place that names either, and `_CREATE_POOL` and the error tuples are all that differs
between them. asyncmy is the default: a delivery transaction's three round trips cost the client
170-224 us of CPU against aiomysql's 274-328 (docs/sharding.md, "The driver"), and the driver's
Python was the largest single part of a message's send.

Timeouts: pool acquire (`store.acquire_timeout`), connect (`store.connect_timeout`) and every
statement (`store.query_timeout`). A connection whose statement timed out or failed at the
network level is closed, never returned to the pool: its protocol state is unknown. Connections
are released in `finally` with the pool's synchronous `release`, so a cancelled task still gives
its connection back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import asyncmy
import asyncmy.errors
import orjson
import pymysql
from pymysql.constants import CLIENT, SERVER_STATUS

from config import MySQLServer, StoreSettings
from config.settings import MySQLDriver
from tao.backends.base import Conn, qualify
from tao.errors import (
    DeadlockError,
    DuplicateKeyError,
    ShardTimeoutError,
    ShardUnavailableError,
    TaoError,
)
from tao.instrumentation import SQLTimer  # metrics and spans per statement
from tao.shardmap import ShardMap

# MySQL error codes we translate specially.
_DUPLICATE = 1062
_DEADLOCK = 1213
_LOCK_WAIT_TIMEOUT = 1205
_DB_EXISTS_OK = 1007


# What differs between the drivers: the pool's maker. Their errors differ in class only (the
# same names and `(code, message)` args): the tuples below hold both. Constants (client flags,
# server status bits) are the protocol's own, the same for both.
_CREATE_POOL: dict[MySQLDriver, Callable[..., Any]] = {
    MySQLDriver.ASYNCMY: asyncmy.create_pool,
    MySQLDriver.AIOMYSQL: aiomysql.create_pool,
}
_ERRORS = (pymysql.err.Error, asyncmy.errors.Error)
_INTEGRITY = (pymysql.err.IntegrityError, asyncmy.errors.IntegrityError)
_OPERATIONAL = (pymysql.err.OperationalError, asyncmy.errors.OperationalError)
_INTERFACE = (pymysql.err.InterfaceError, asyncmy.errors.InterfaceError)


def translate(exc: BaseException, shard: int) -> TaoError:
    """Map a driver error to the store's errors (the one place that knows the drivers' errors)."""
    if isinstance(exc, TaoError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ShardTimeoutError(shard, "timed out")
    if isinstance(exc, _INTEGRITY) and exc.args and exc.args[0] == _DUPLICATE:
        return DuplicateKeyError(str(exc.args[1]) if len(exc.args) > 1 else "duplicate key")
    if isinstance(exc, _OPERATIONAL) and exc.args and exc.args[0] in (_DEADLOCK, _LOCK_WAIT_TIMEOUT):
        return DeadlockError(str(exc.args[1]) if len(exc.args) > 1 else "deadlock")
    if isinstance(exc, (*_OPERATIONAL, *_INTERFACE, ConnectionError, OSError)):
        return ShardUnavailableError(shard, type(exc).__name__)
    if isinstance(exc, _ERRORS):
        # Programming errors (bad SQL) are bugs: keep them loud but typed.
        return TaoError(f"shard {shard}: SQL error {exc.args[0] if exc.args else ''}")
    raise exc


def _unsent(err: TaoError) -> TaoError:
    """Mark a failure that happened before the transaction's first statement was sent (acquire,
    connect, BEGIN): nothing can have been written, so a caller may safely try another shard."""
    if isinstance(err, ShardUnavailableError):
        err.unsent = True
    return err


def escape_text(value: str) -> str:
    """`value` as a quoted MySQL string literal (backslash escapes on): what pymysql's
    `escape_string` does with `str.translate` over a table of two-character strings, which
    costs a dictionary lookup per character (0.4 ms for a 20 KB feed session). Seven C-level
    scans do the same; the backslash goes first so no escape is escaped twice."""
    for char, escaped in _ESCAPES:
        if char in value:
            value = value.replace(char, escaped)
    return "'" + value + "'"


_NEW = re.compile(r"NEW\((\w+)\)")


def _has_row_alias(version: str) -> bool:
    """MySQL (not MariaDB) 8.0.19 or later: `INSERT ... AS new` names the inserted row."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version or "")
    return m is not None and "mariadb" not in version.lower() and tuple(map(int, m.groups())) >= (8, 0, 19)


_ESCAPES = (("\\", "\\\\"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\032", "\\Z"),
            ('"', '\\"'), ("'", "\\'"))


class _MySQLConn:
    """One shard's statements on a pooled connection. Statements whose answer no caller reads
    (`queue`: a transaction's BEGIN, a lock's upsert, its last writes) wait and go with the next
    statement, or with the COMMIT, as one multi-statement query: one round trip where there
    were several (a message's delivery transaction: 2 instead of 6). MariaDB runs them in order
    and stops at the first error, which is raised as that statement's own would be."""

    def __init__(self, raw: Any, shard: int, prefix: str, timeout: float, server: int = 0,
                 *, begin: bool = False) -> None:
        self._raw = raw
        self.shard = shard
        self._prefix = prefix
        self._timeout = timeout
        self._server = str(server)  # the metrics' label: the shard map's server index
        # A transaction's BEGIN goes with its first statement; until a query carried it,
        # nothing reached the server (`begun`), and until one carried COMMIT, nothing committed.
        self._queued: list[str] = ["BEGIN"] if begin else []
        self._in_transaction = begin
        self.begun = not begin
        self.commit_sent = False

    def _render(self, sql: str, params: Sequence[Any]) -> str:
        """The statement with its parameters inlined, as aiomysql would do it, but with a fast
        path for the store's ints and None: bulk statements carry tens of thousands of ids, and
        aiomysql's generic per-value escaping was half the CPU of a feed fan-out."""
        sql = qualify(sql, self._prefix)
        if not params:
            return sql
        escape = self._raw.escape
        # Text (our JSON and names) takes the fast escape unless the server's sql_mode turned
        # backslash escapes off (then quotes are doubled instead: the driver knows how).
        text_fast = not self._raw.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        return sql % tuple(str(p) if type(p) is int else "NULL" if p is None
                           else escape_text(p) if text_fast and type(p) is str else escape(p) for p in params)

    async def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A statement whose answer (rows, row count) no one reads: in a transaction, sent with
        the next statement or the COMMIT; on an autocommit connection, at once."""
        if not self._in_transaction:
            await self.execute(sql, params)
        else:
            self._queued.append(self._render(sql, params))

    async def _run(self, cur: Any, statement: str | None) -> None:
        """Send the queued statements and `statement` (if any) in one round trip; the cursor
        then holds the last one's result."""
        batch = [*self._queued, statement] if statement is not None else self._queued
        self._queued = []
        self.begun = True  # from here the server may hold a transaction open: a failure rolls it back
        if len(batch) == 1:
            await asyncio.wait_for(cur.execute(batch[0]), self._timeout)
        else:
            await asyncio.wait_for(self._run_batch(cur, batch), self._timeout)

    @staticmethod
    async def _run_batch(cur: Any, batch: list[str]) -> None:
        await cur.execute(";\n".join(batch))
        for _ in batch[1:]:
            if not await cur.nextset():
                raise TaoError(f"a batch of {len(batch)} statements answered fewer results")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with SQLTimer(self._server, self.shard, sql):
            async with self._raw.cursor() as cur:
                await self._run(cur, self._render(sql, params))
                return cur.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        await self.flush()
        with SQLTimer(self._server, self.shard, sql):
            async with self._raw.cursor() as cur:
                return await asyncio.wait_for(cur.executemany(qualify(sql, self._prefix), rows), self._timeout)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with SQLTimer(self._server, self.shard, sql):
            async with self._raw.cursor() as cur:
                await self._run(cur, self._render(sql, params))
                return list(await cur.fetchall())

    async def flush(self) -> None:
        """Send what is queued, if anything."""
        if self._queued:
            with SQLTimer(self._server, self.shard, self._queued[-1]):
                async with self._raw.cursor() as cur:
                    await self._run(cur, None)

    @property
    def writes_to_commit(self) -> bool:
        """Whether committing sends anything (a transaction that sent and queued nothing has
        no round trip at all)."""
        return self.begun or self._queued != ["BEGIN"]

    async def commit(self, *, one_trip: bool = False) -> None:
        """Commit the transaction, its queued writes in the same round trip. A transaction that
        sent nothing yet sends its writes first and COMMIT after them, so that a failure before
        COMMIT was sent is known to have committed nothing (`_unsent`); unless `one_trip`:
        BEGIN, the writes and COMMIT in one round trip, for a caller that would not try
        another shard anyway."""
        if not self.begun:
            if self._queued == ["BEGIN"]:
                self._queued = []  # nothing was written: no round trip at all
                return
            if not one_trip:
                await self.flush()
        self._queued.append("COMMIT")
        self.commit_sent = True
        await self.flush()


# From how many edges a page is read as one JSON document, by driver (`MySQLBackend.fetch_edges`;
# None: always as rows). aiomysql parses rows in pure Python: from ~40 edges that costs more than
# the document costs MariaDB. asyncmy parses them in compiled code: rows cost less, client and
# MariaDB together, at every size measured, 10 to 500 edges (bench/page_form_bench.py,
# docs/BENCHMARKS.md "Twenty-second session"), and MariaDB alone always less.
DOCUMENT_PAGES_FROM: dict[str, int | None] = {"aiomysql": 40, "asyncmy": None}


class MySQLBackend:
    """MariaDB 10.11 is what the tests run. The one MySQL 8 difference the store's SQL meets is
    the upsert (see `upsert`); nothing else is tested against MySQL."""

    name = "mysql"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    now_ms_sql = "SELECT CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)"
    autocommit_writes = True
    batches_queued = True
    transactional_ddl = False  # each DDL statement commits on its own

    def __init__(self, settings: StoreSettings, shard_map: ShardMap) -> None:
        if not settings.mysql_servers:
            raise ValueError("store.backend = 'mysql' needs store.mysql_servers")
        self._s = settings
        self._map = shard_map
        self._servers: list[MySQLServer] = settings.mysql_servers
        self._create_pool = _CREATE_POOL[settings.mysql_driver]
        self.document_pages_from = DOCUMENT_PAGES_FROM[settings.mysql_driver]
        self._pools: list[Any] = [None] * len(self._servers)
        self._pool_locks = [asyncio.Lock() for _ in self._servers]
        # Learnt from the first connection's handshake: MySQL (not MariaDB) names the inserted
        # row with an alias (`AS new`). Until then, and on MariaDB, the `VALUES(col)` form.
        self._row_alias = False
        self._flavor_known = False

    def upsert(self, table: str, cols: Sequence[str], key: Sequence[str], update_sql: dict[str, str],
               rows: int = 1) -> str:
        # MariaDB has only `VALUES(col)` (it rejects a row alias); MySQL 8.0.20+ deprecates that
        # form for the alias (`INSERT ... AS new ... UPDATE c = new.c`), which it has since 8.0.19.
        alias, new = (" AS new", r"new.\1") if self._row_alias else ("", r"VALUES(\1)")
        sets = ", ".join(f"{c} = {_NEW.sub(new, e)}" for c, e in update_sql.items())
        row = "(" + ", ".join(["%s"] * len(cols)) + ")"
        return (f"INSERT INTO {{{table}}} ({', '.join(cols)}) VALUES {', '.join([row] * rows)}{alias} "
                f"ON DUPLICATE KEY UPDATE {sets}")

    def keep_existing(self, key: Sequence[str]) -> str:
        # Not INSERT IGNORE: that also downgrades other errors, and each skipped row costs a
        # warning (and aiomysql a SHOW WARNINGS round trip). A no-op update skips silently.
        return f" ON DUPLICATE KEY UPDATE {key[0]} = {key[0]}"

    def keys_in(self, cols: Sequence[str], n: int) -> str:
        # A row-constructor IN: MariaDB plans a long OR of per-key conditions slowly (measured:
        # 965 ms for 600 keys, 74 ms as a row-constructor IN; bench/feed_bench.py).
        if n == 1:
            return "(" + " AND ".join(f"{c} = %s" for c in cols) + ")"
        row = "(" + ", ".join(["%s"] * len(cols)) + ")"
        return f"({', '.join(cols)}) IN ({', '.join([row] * n)})"

    def json_int(self, column: str, field: str) -> str:
        return f"CAST(JSON_VALUE({column}, '$.{field}') AS SIGNED)"

    def union_all(self, selects: Sequence[str]) -> str:
        # Parenthesised members keep their own ORDER BY and LIMIT. Not `SELECT * FROM (...) t`:
        # MariaDB materialises each such derived table, on disk (Aria) when it has a TEXT column
        # as `data` is, so a three-list read made three temporary tables and cost MariaDB 645 us
        # of CPU where this costs 250 (the eighteenth session's microbenchmark, docs/sharding.md).
        return " UNION ALL ".join(f"({s})" for s in selects)

    async def fetch_edges(self, conn: Conn, page: str, params: Sequence[Any], limit: int) -> list[list]:
        """A page as rows or, with aiomysql from `document_pages_from` edges, as one JSON
        document built by the server: aiomysql then parses one value instead of hundreds of rows
        (its per-column cost in pure Python is most of what a 500-edge read costs), and orjson
        parses the document. A page past `group_concat_max_len` (set on each connection, see
        `_pool`) comes back cut short and does not parse: then it is read as rows. The
        document's derived table is a temporary table on disk (Aria: `data` is TEXT), which
        costs MariaDB more than rows at every size; below ~40 edges more than the rows cost even
        aiomysql, and at every size more than they cost asyncmy (bench/page_form_bench.py)."""
        if self.document_pages_from is None or limit < self.document_pages_from:
            rows = await conn.fetchall(f"SELECT id2, time, version, data FROM {page}", params)
            return [[id2, time, version, orjson.loads(data)] for id2, time, version, data in rows]
        # Plain concatenation, not JSON_ARRAYAGG: `data` is stored as the JSON text the store
        # wrote, so the server need not parse and re-serialise it. No ORDER BY inside: that is a
        # second sort on the server (the derived table's rows come in index order); the order
        # is not guaranteed, so it is restored here, which costs ~0.1 ms for 500 edges.
        rows = await conn.fetchall(
            "SELECT GROUP_CONCAT(CONCAT('[', id2, ',', time, ',', version, ',', data, ']') "
            f"SEPARATOR ',') FROM (SELECT id2, time, version, data FROM {page}) t", params)
        text = rows[0][0] if rows else None
        if text is None:
            return []
        try:
            edges = orjson.loads("[" + text + "]")
        except orjson.JSONDecodeError:
            rows = await conn.fetchall(f"SELECT id2, time, version, data FROM {page}", params)
            return [[id2, time, version, orjson.loads(data)] for id2, time, version, data in rows]
        edges.sort(key=lambda e: (e[1], e[0]), reverse=True)
        return edges

    async def _pool(self, server: int, shard: int) -> Any:
        pool = self._pools[server]
        if pool is not None:
            return pool
        async with self._pool_locks[server]:
            if self._pools[server] is None:
                srv = self._servers[server]
                # MULTI_STATEMENTS: queued statements go with the next one (`_MySQLConn`). Every
                # value is escaped into the SQL the store writes (`_render`), never spliced raw.
                kwargs: dict[str, Any] = dict(user=srv.user, password=srv.password, autocommit=True,
                                              client_flag=CLIENT.MULTI_STATEMENTS,
                                              connect_timeout=self._s.connect_timeout, charset="utf8mb4",
                                              # GROUP_CONCAT pages (`fetch_edges`) are capped by
                                              # it: 16 MB holds any page the store reads that way.
                                              init_command="SET SESSION group_concat_max_len = 16777216")
                if srv.unix_socket:
                    kwargs["unix_socket"] = srv.unix_socket
                else:
                    kwargs.update(host=srv.host, port=srv.port)
                try:
                    # minsize=0: a pool must come up even while its server is down, so the other
                    # servers' shards keep serving.
                    self._pools[server] = await asyncio.wait_for(
                        self._create_pool(minsize=0, maxsize=self._s.pool_max, pool_recycle=3600, **kwargs),
                        self._s.connect_timeout)
                except BaseException as exc:
                    raise translate(exc, shard) from exc
            return self._pools[server]

    @asynccontextmanager
    async def _acquire(self, shard: int) -> AsyncIterator[Any]:
        server = self._map.server_of_shard[shard]
        pool = await self._pool(server, shard)
        try:
            raw = await asyncio.wait_for(pool.acquire(), self._s.acquire_timeout)
        except BaseException as exc:
            raise _unsent(translate(exc, shard)) from exc
        if not self._flavor_known:
            self._row_alias, self._flavor_known = _has_row_alias(raw.get_server_info() or ""), True
        healthy = False
        try:
            yield raw
            healthy = True
        finally:
            if not healthy:
                raw.close()  # unknown protocol state (timeout, cancel, network error): never reuse
            pool.release(raw)

    @asynccontextmanager
    async def connection(self, shard: int) -> AsyncIterator[_MySQLConn]:
        try:
            async with self._acquire(shard) as raw:
                yield _MySQLConn(raw, shard, self._map.database(shard) + ".", self._s.query_timeout,
                                 self._map.server_of_shard[shard])
        except (*_ERRORS, OSError, TimeoutError) as exc:
            raise translate(exc, shard) from exc

    @asynccontextmanager
    async def transaction(self, shard: int, *, one_trip: bool = False) -> AsyncIterator[_MySQLConn]:
        """BEGIN goes with the first statement and COMMIT with the last writes (`_MySQLConn`).
        A failure before COMMIT was sent committed nothing: a ShardUnavailableError then says
        so (`unsent`), and a caller may try another shard. `one_trip`: a body of queued writes
        only is sent with BEGIN and COMMIT in one round trip (and a failure is never `unsent`)."""
        conn: _MySQLConn | None = None
        try:
            async with self._acquire(shard) as raw:
                conn = _MySQLConn(raw, shard, self._map.database(shard) + ".", self._s.query_timeout,
                                  self._map.server_of_shard[shard], begin=True)
                try:
                    yield conn
                    await conn.commit(one_trip=one_trip)
                except BaseException:
                    if conn.begun:
                        await asyncio.shield(_rollback_quietly(raw))
                    raise
        except (*_ERRORS, OSError, TimeoutError) as exc:
            err = translate(exc, shard)
            raise (_unsent(err) if conn is None or not conn.commit_sent else err) from exc

    async def create_shard(self, shard: int) -> None:
        # Look first: `CREATE DATABASE IF NOT EXISTS` on an existing database makes the server
        # send a warning, and aiomysql a `SHOW WARNINGS` round trip and a Python warning.
        async with self.connection(shard) as conn:
            exists = await conn.fetchall("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                                         (self._map.database(shard),))
            if not exists[0][0]:
                await conn.execute(f"CREATE DATABASE IF NOT EXISTS `{self._map.database(shard)}` "
                                   "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")

    async def has_table(self, shard: int, table: str) -> bool:
        async with self.connection(shard) as conn:
            rows = await conn.fetchall("SELECT COUNT(*) FROM information_schema.TABLES "
                                       "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                                       (self._map.database(shard), table))
        return bool(rows[0][0])

    async def drop_shard(self, shard: int) -> None:
        server = self._map.server_of_shard[shard]
        pool = await self._pool(server, shard)
        async with pool.acquire() as raw, raw.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{self._map.database(shard)}`")

    async def ping(self, shard: int) -> None:
        async with self.connection(shard) as conn:
            await conn.fetchall("SELECT 1")

    async def close(self) -> None:
        for pool in self._pools:
            if pool is not None:
                pool.close()
                await pool.wait_closed()
        self._pools = [None] * len(self._servers)


async def _rollback_quietly(raw: Any) -> None:
    try:
        await asyncio.wait_for(raw.rollback(), 2.0)
    except BaseException:
        raw.close()
