"""A worker's poll of its outbox reads the jobs it may claim, not the jobs another process runs.

The search index partitions' jobs are each run by one process (their partition's writer): a
server writes them but never claims them. Polled as `handler NOT IN (...)` over the `run_at`
index, every server's every poll read past all of them that were due, so the poll's cost grew
with that backlog, most of all when an indexer was down or behind (docs/sharding.md, "Lanes").
Counted with MariaDB's own index reads (`Handler_read_*`)."""

from __future__ import annotations

import pytest

from tao import Tao
from tao.testing import TaoTestHooks
from tests.tao.mariadb_status import global_status


@pytest.fixture
def store(mysql_store: Tao) -> Tao:
    return mysql_store


def index_reads(services) -> int:
    return global_status(services, ("Handler_read_first", "Handler_read_key", "Handler_read_next",
                                    "Handler_read_prev", "Handler_read_last", "Handler_read_rnd_next"))


BACKLOG = 3000
OTHERS = "search.index.p7"  # a lane of its own (`jobs.own_lane_prefixes`), run by an indexer


async def test_a_poll_reads_past_none_of_another_processs_due_jobs(store, services):
    ran: list[dict] = []

    async def general(tao, payload: dict) -> None:
        ran.append(payload)
    store.outbox.register("tests.general", general)
    store.outbox.declare(OTHERS)
    node = await store.obj_add("TEST_NODE", {})
    shard = store.shard(node)
    for start in range(0, BACKLOG, 1000):  # due now, written as a server writes them
        await TaoTestHooks(store).write(shard, lambda conn, s=start: store.outbox.add_jobs(
            conn, [(OTHERS, {"n": i}) for i in range(s, s + 1000)]))
    await store.enqueue(node, "tests.general", {"n": "mine"})

    before = index_reads(services)
    assert await store.outbox.run_once(shard) == 1
    reads = index_reads(services) - before
    assert ran == [{"n": "mine"}]
    # Measured: over BACKLOG when the poll skipped them by name; a few dozen with a lane each (the
    # claim, the job's own statements and the store's background).
    assert reads < 300, reads

    before = index_reads(services)
    assert await store.outbox.run_once(shard) == 0  # an idle poll, the backlog still there
    assert index_reads(services) - before < 100
    assert await store.outbox.pending() == BACKLOG


async def test_the_process_that_runs_a_lane_claims_its_jobs_and_only_those(store):
    ran: list[int] = []

    async def index_job(tao, payload: dict) -> None:
        ran.append(payload["n"])
    node = await store.obj_add("TEST_NODE", {})
    store.outbox.declare(OTHERS)
    await store.enqueue(node, OTHERS, {"n": 1})
    store.outbox.declare("tests.general")
    await store.enqueue(node, "tests.general", {"n": 2})
    store.outbox.register(OTHERS, index_job)  # this process becomes the lane's runner
    store.outbox.only = {OTHERS}  # as `python -m resolvers search-indexer` sets it
    assert await store.outbox.run_once(store.shard(node)) == 1
    assert ran == [1] and await store.outbox.pending() == 1  # the general job is left to others
