"""The interface every SQL backend offers the store.

SQL is written once, in MySQL's flavour with `%s` placeholders and `{table}` names; a backend
qualifies table names for the logical shard (`{objects}` -> `taogram_s0003.objects`) and
adapts placeholders and the few dialect differences (`Dialect`). Every driver error is
translated here, at the boundary, into `ShardUnavailableError`/`ShardTimeoutError`/`ConflictError`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

TABLES = ("objects", "assocs", "assoc_counts", "inverse_tombstones", "unique_keys", "outbox", "schema_migrations")
_TABLE_RE = re.compile(r"\{(" + "|".join(TABLES) + r")\}")


class Conn(Protocol):
    """A connection bound to one logical shard (inside a transaction when from `transaction`)."""

    shard: int

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the affected row count."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...


class Backend(Protocol):
    name: str  # "mysql" | "sqlite"
    # Dialect snippets the store's SQL needs (see the implementations).
    insert_ignore: str        # "INSERT IGNORE" | "INSERT OR IGNORE"
    for_update: str           # " FOR UPDATE" | ""
    skip_locked: str          # " FOR UPDATE SKIP LOCKED" | ""
    aggregates_json: bool     # read a page as one JSON document built by the server (assoc_reads)

    def upsert(self, table: str, cols: Sequence[str], key: Sequence[str], update_sql: dict[str, str],
               rows: int = 1) -> str:
        """INSERT ... ON DUPLICATE KEY UPDATE / ON CONFLICT DO UPDATE of `rows` rows. `update_sql`
        maps a column to an expression in which `NEW(col)` names the inserted value."""
        ...

    def keep_existing(self, key: Sequence[str]) -> str:
        """The tail of an INSERT that leaves rows whose `key` already exists untouched."""
        ...

    def json_int(self, column: str, field: str) -> str:
        """An SQL expression: the integer at `field` of the JSON in `column` (NULL if absent or null)."""
        ...

    def transaction(self, shard: int) -> AbstractAsyncContextManager[Conn]: ...

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


async def aiter_chunks(items: Sequence[Any], size: int) -> AsyncIterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
