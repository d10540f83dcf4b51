"""Migration 3 (the outbox's lanes) on a shard that has jobs queued by code older than lanes: the
queued index jobs move to their lanes, every other job stays in the general lane, and the
migration can be run again (on MariaDB its DDL commits as it goes; on SQLite it commits with
its version row)."""

from __future__ import annotations

from tao import Tao
from tao.migrations import LATEST, MIGRATIONS, migrate_shard, shard_version
from tao.testing import TaoTestHooks

# The shard as migration 2 left it: no lane column, the poll's index on run_at alone.
_BACK_TO_2 = {
    "mysql": ["ALTER TABLE {outbox} DROP KEY lane_due, DROP COLUMN lane, ADD KEY due (run_at)",
              "DELETE FROM {schema_migrations} WHERE version = 3"],
    "sqlite": ["DROP INDEX outbox_lane_due", "ALTER TABLE outbox DROP COLUMN lane",
               "CREATE INDEX outbox_due ON outbox (run_at)", "DELETE FROM schema_migrations WHERE version = 3"],
}


async def test_queued_jobs_move_to_their_lanes_and_the_migration_can_run_again(tao: Tao):
    assert LATEST == 3
    backend = TaoTestHooks(tao).backend
    shard = 0
    async with backend.transaction(shard) as conn:
        for sql in _BACK_TO_2[backend.name]:
            await conn.execute(sql)
        for job_id, handler in ((1, "search.index.p1"), (2, "tests.general")):  # as older code wrote them
            await conn.execute("INSERT INTO {outbox} (id, handler, payload, run_at, attempts, created) "
                               "VALUES (%s, %s, %s, 0, 0, 0)", (job_id, handler, '{"n": %d}' % job_id))
    assert await shard_version(backend, shard) == 2

    assert await migrate_shard(backend, shard) == [3]
    assert await shard_version(backend, shard) == 3
    async with backend.connection(shard) as conn:
        lanes = dict(await conn.fetchall("SELECT handler, lane FROM {outbox} WHERE id IN (1, 2)"))
    assert lanes == {"search.index.p1": "search.index.p1", "tests.general": ""}

    if not backend.transactional_ddl:  # interrupted after its DDL: run again, nothing fails or changes
        async with backend.connection(shard) as conn:
            for sql in dict(MIGRATIONS)[3][backend.name]:
                await conn.execute(sql)
            assert dict(await conn.fetchall("SELECT handler, lane FROM {outbox} WHERE id IN (1, 2)")) == lanes

    ran: list[dict] = []

    async def general(store, payload: dict) -> None:
        ran.append(payload)
    tao.outbox.register("tests.general", general)
    tao.outbox.declare("search.index.p1")  # its indexer runs it
    assert await tao.outbox.run_once(shard) == 1 and ran == [{"n": 2}]


async def test_a_job_written_without_its_lane_is_still_run_by_its_runner(tao: Tao):
    """Code older than lanes, still running mid-deploy against the migrated schema, writes every
    job to the general lane (the column's default): the lane's runner, which polls the general
    lane for its own handlers too, runs it; a general worker leaves it alone."""
    ran: list[dict] = []

    async def index_job(store, payload: dict) -> None:
        ran.append(payload)
    backend = TaoTestHooks(tao).backend
    async with backend.transaction(0) as conn:
        await conn.execute("INSERT INTO {outbox} (id, handler, payload, run_at, attempts, created) "
                           "VALUES (%s, %s, %s, 0, 0, 0)", (7, "search.index.p1", '{"n": 7}'))
    tao.outbox.declare("search.index.p1")
    assert await tao.outbox.run_once(0) == 0 and await tao.outbox.pending() == 1  # a server's worker
    tao.outbox.register("search.index.p1", index_job)
    tao.outbox.only = {"search.index.p1"}  # the partition's indexer
    assert await tao.outbox.run_once(0) == 1 and ran == [{"n": 7}]
