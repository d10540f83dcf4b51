"""Versioned schema migrations, applied per logical shard by `python -m tao migrate`.

Each migration is a version number and a list of statements per dialect. A shard's
`schema_migrations` table records what was applied; `migrate` applies what is missing, in
order, and `check` refuses to serve a shard whose schema is older or newer than this code.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

import time

from tao.errors import MigrationError

_MYSQL_1 = [
    """CREATE TABLE IF NOT EXISTS {objects} (
        id BIGINT NOT NULL PRIMARY KEY,
        otype SMALLINT NOT NULL,
        version BIGINT NOT NULL,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        data MEDIUMTEXT NOT NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {assocs} (
        id1 BIGINT NOT NULL,
        atype SMALLINT NOT NULL,
        id2 BIGINT NOT NULL,
        time BIGINT NOT NULL,
        version BIGINT NOT NULL,
        data TEXT NOT NULL,
        src_version BIGINT NULL,
        PRIMARY KEY (id1, atype, id2),
        KEY by_time (id1, atype, time, id2)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {assoc_counts} (
        id1 BIGINT NOT NULL,
        atype SMALLINT NOT NULL,
        count BIGINT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (id1, atype)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {inverse_tombstones} (
        id1 BIGINT NOT NULL,
        atype SMALLINT NOT NULL,
        id2 BIGINT NOT NULL,
        src_version BIGINT NOT NULL,
        PRIMARY KEY (id1, atype, id2)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {unique_keys} (
        ns VARCHAR(32) NOT NULL,
        k VARCHAR(255) NOT NULL,
        id BIGINT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (ns, k)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {outbox} (
        id BIGINT NOT NULL PRIMARY KEY,
        handler VARCHAR(64) NOT NULL,
        payload MEDIUMTEXT NOT NULL,
        run_at BIGINT NOT NULL,
        attempts INT NOT NULL DEFAULT 0,
        last_error TEXT NULL,
        created BIGINT NOT NULL,
        KEY due (run_at)
    ) ENGINE=InnoDB""",
]

_SQLITE_1 = [
    """CREATE TABLE IF NOT EXISTS objects (
        id INTEGER NOT NULL PRIMARY KEY, otype INTEGER NOT NULL, version INTEGER NOT NULL,
        created INTEGER NOT NULL, updated INTEGER NOT NULL, data TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS assocs (
        id1 INTEGER NOT NULL, atype INTEGER NOT NULL, id2 INTEGER NOT NULL, time INTEGER NOT NULL,
        version INTEGER NOT NULL, data TEXT NOT NULL, src_version INTEGER NULL,
        PRIMARY KEY (id1, atype, id2)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS assocs_by_time ON assocs (id1, atype, time, id2)",
    """CREATE TABLE IF NOT EXISTS assoc_counts (
        id1 INTEGER NOT NULL, atype INTEGER NOT NULL, count INTEGER NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (id1, atype)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS inverse_tombstones (
        id1 INTEGER NOT NULL, atype INTEGER NOT NULL, id2 INTEGER NOT NULL, src_version INTEGER NOT NULL,
        PRIMARY KEY (id1, atype, id2)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS unique_keys (
        ns TEXT NOT NULL, k TEXT NOT NULL, id INTEGER NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (ns, k)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER NOT NULL PRIMARY KEY, handler TEXT NOT NULL, payload TEXT NOT NULL,
        run_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NULL,
        created INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (run_at)",
]

# 2: the id slots each process leases (tao/id_leases.py). Every shard gets the table, as every
# shard gets every table; only each server's lowest logical shard's is used (its lease shard).
_MYSQL_2 = [
    """CREATE TABLE IF NOT EXISTS {id_slots} (
        slot SMALLINT NOT NULL PRIMARY KEY,
        owner VARCHAR(96) NOT NULL,
        expires BIGINT NOT NULL
    ) ENGINE=InnoDB""",
]
_SQLITE_2 = [
    """CREATE TABLE IF NOT EXISTS id_slots (
        slot INTEGER NOT NULL PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL)""",
]

# 3: the outbox's lanes (tao/outbox.py, docs/sharding.md "Lanes"): a job whose handler has a lane of
# its own (`jobs.own_lane_prefixes`, by default the search partitions' index jobs) is polled by
# its runner only, through (lane, run_at), which replaces the index on run_at alone; the jobs
# already queued move to their lanes: those of the default prefix. A deployment with other
# prefixes leaves its jobs in the general lane, where their runners poll too (`Outbox._lanes`),
# so none is stranded; new ones are written to their lanes.
_MYSQL_3 = [
    "ALTER TABLE {outbox} ADD COLUMN IF NOT EXISTS lane VARCHAR(64) NOT NULL DEFAULT '', "
    "ADD KEY IF NOT EXISTS lane_due (lane, run_at), DROP KEY IF EXISTS due",
    "UPDATE {outbox} SET lane = handler WHERE handler LIKE 'search.index.p%'",
]
_SQLITE_3 = [
    "ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS outbox_lane_due ON outbox (lane, run_at)",
    "DROP INDEX IF EXISTS outbox_due",
    "UPDATE outbox SET lane = handler WHERE handler LIKE 'search.index.p%'",
]

# (version, {dialect: statements})
MIGRATIONS: list[tuple[int, dict[str, list[str]]]] = [
    (1, {"mysql": _MYSQL_1, "sqlite": _SQLITE_1}),
    (2, {"mysql": _MYSQL_2, "sqlite": _SQLITE_2}),
    (3, {"mysql": _MYSQL_3, "sqlite": _SQLITE_3}),
]
LATEST = MIGRATIONS[-1][0]

_MIGRATIONS_TABLE = {
    "mysql": "CREATE TABLE IF NOT EXISTS {schema_migrations} "
             "(version INT NOT NULL PRIMARY KEY, applied BIGINT NOT NULL) ENGINE=InnoDB",
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations "
              "(version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)",
}


async def shard_version(backend, shard: int) -> int:
    """The shard's schema version; 0 for a shard that was never migrated."""
    if not await backend.has_table(shard, "schema_migrations"):
        return 0
    async with backend.connection(shard) as conn:
        rows = await conn.fetchall("SELECT MAX(version) FROM {schema_migrations}")
    return rows[0][0] or 0


async def migrate_shard(backend, shard: int) -> list[int]:
    """Apply the missing migrations to one shard; return the versions applied."""
    await backend.create_shard(shard)
    current = await shard_version(backend, shard)
    if current > LATEST:
        raise MigrationError(f"shard {shard} is at schema {current}, newer than this code ({LATEST}): upgrade the code")
    if current == 0 and not await backend.has_table(shard, "schema_migrations"):
        async with backend.connection(shard) as conn:
            await conn.execute(_MIGRATIONS_TABLE[backend.name])
    applied = []
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        # DDL commits implicitly on MySQL; every statement is idempotent (IF NOT EXISTS), so a
        # migration interrupted half-way is simply re-run. SQLite's DDL is transactional and its
        # ADD COLUMN has no IF NOT EXISTS: there a migration commits with its version row, or not.
        opened = backend.transaction(shard) if backend.transactional_ddl else backend.connection(shard)
        async with opened as conn:
            for sql in statements[backend.name]:
                await conn.execute(sql)
            await conn.execute("INSERT INTO {schema_migrations} (version, applied) VALUES (%s, %s)",
                               (version, int(time.time() * 1000)))
        applied.append(version)
    return applied


async def check_shard(backend, shard: int) -> None:
    version = await shard_version(backend, shard)
    if version != LATEST:
        raise MigrationError(f"shard {shard} is at schema {version}, this code needs {LATEST}: "
                             "run `python -m tao migrate`")
