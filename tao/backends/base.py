"""The interface every SQL backend offers the store.

SQL is written once, in MySQL's flavour with `%s` placeholders and `{table}` names; a backend
qualifies table names for the logical shard (`{objects}` -> `taogram_s0003.objects`) and
adapts placeholders and the few dialect differences (the `Backend` methods below). Every driver error is
translated here, at the boundary, into `ShardUnavailableError`/`ShardTimeoutError`/`ConflictError`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

TABLES = ("objects", "assocs", "assoc_counts", "inverse_tombstones", "unique_keys", "outbox", "id_slots",
          "schema_migrations")
_TABLE_RE = re.compile(r"\{(" + "|".join(TABLES) + r")\}")


class Conn(Protocol):
    """A connection bound to one logical shard (inside a transaction when from `transaction`)."""

    shard: int

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the affected row count."""
        ...

    async def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose answer no one reads (a lock's upsert, a transaction's last
        writes): a backend may send it with the next statement or the COMMIT, in one round
        trip; its error, if any, is raised there."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...


class Backend(Protocol):
    """A SQL server (or embedded files) holding the logical shards. The store's verbs never ask
    which one it is: each difference of dialect is a method or snippet here."""

    name: str  # "mysql" | "sqlite": picks the DDL of migrations, and names the backend in logs
    for_update: str           # " FOR UPDATE" | "": the tail of a locking read
    skip_locked: str          # " FOR UPDATE SKIP LOCKED" | "": the tail of a queue claim
    now_ms_sql: str           # one row, one column: the database server's time, ms since the Unix epoch
    # True: a write on an autocommit `connection` commits on its own (one round trip, no BEGIN
    # and COMMIT); False: writes need `transaction` (SQLite's reader connection must not write).
    autocommit_writes: bool
    # Queued statements go with a later one in one round trip (MariaDB's multi-statements):
    # worth carrying statements of no one's waiting with other transactions (`Shards.rider`).
    batches_queued: bool
    # DDL commits with its transaction (SQLite) rather than implicitly at each statement
    # (MySQL): a migration runs in one transaction where it can, else statement by statement.
    transactional_ddl: bool

    def upsert(self, table: str, cols: Sequence[str], key: Sequence[str], update_sql: dict[str, str],
               rows: int = 1) -> str:
        """An INSERT of `rows` rows that updates the row whose `key` exists instead. `update_sql`
        maps a column to an expression in which `NEW(col)` names the value this INSERT offered."""
        ...

    def keep_existing(self, key: Sequence[str]) -> str:
        """The tail of an INSERT that leaves rows whose `key` already exists untouched."""
        ...

    def keys_in(self, cols: Sequence[str], n: int) -> str:
        """A WHERE clause matching any of n keys over `cols` (params: each key's values in
        order), in the form this server plans best for a long list of keys."""
        ...

    def json_int(self, column: str, field: str) -> str:
        """An SQL expression: the integer at `field` of the JSON in `column` (NULL if absent or null)."""
        ...

    async def fetch_edges(self, conn: Conn, page: str, params: Sequence[Any], limit: int) -> list[list]:
        """The edges `SELECT id2, time, version, data FROM <page>` selects (at most `limit`), as
        [id2, time, version, data dict] newest first by (time, id2): one list's page, read
        the fastest way this server and its driver allow."""
        ...

    def union_all(self, selects: Sequence[str]) -> str:
        """One statement of the rows of every SELECT in `selects`, each of which may have its own
        ORDER BY and LIMIT (a page of each of several lists); the first names the columns."""
        ...

    def transaction(self, shard: int, *, one_trip: bool = False) -> AbstractAsyncContextManager[Conn]:
        """A transaction on the shard. `one_trip`: the caller accepts that a failure is never
        known to have sent nothing (`ShardUnavailableError.unsent`), so a backend may send a
        body of queued writes with BEGIN and COMMIT at once."""
        ...

    def connection(self, shard: int) -> AbstractAsyncContextManager[Conn]:
        """An autocommit connection for reads (each statement sees a consistent snapshot)."""
        ...

    async def create_shard(self, shard: int) -> None:
        """Make the shard's database exist (idempotent)."""
        ...

    async def has_table(self, shard: int, table: str) -> bool: ...

    async def ping(self, shard: int) -> None: ...

    async def close(self) -> None: ...


def qualify(sql: str, prefix: str) -> str:
    """Replace `{table}` with `prefix` + table (prefix is `db.` on MySQL, empty on SQLite)."""
    return _TABLE_RE.sub(lambda m: prefix + m.group(1), sql)


_FLAT_OR = 16  # terms joined flat at the leaves of `any_of`'s tree


def any_of(terms: Sequence[str]) -> str:
    """The terms joined by OR, parenthesised as a balanced tree: a flat chain of n ORs is an
    expression n deep, and SQLite refuses one deeper than 1 000 ("Expression tree is too large":
    a batch of 1 000 edges on the embedded store). Both databases flatten nested ORs again when
    they plan, so the indexes are used as for the flat chain. Depth: about 2 log2(n / 16) + 16."""
    if len(terms) <= _FLAT_OR:
        return " OR ".join(terms)
    half = len(terms) // 2
    return f"({any_of(terms[:half])}) OR ({any_of(terms[half:])})"


async def aiter_chunks(items: Sequence[Any], size: int) -> AsyncIterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
