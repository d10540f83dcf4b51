"""A locked write that needs its lists' newest times (an append: `assoc_append_many`, a
delivery's `assoc_add_and_append`) reads one index entry a list in MariaDB, however long the
list. Written as `MAX(time)` in a correlated subquery, MariaDB read every edge of each list: a
send into a long conversation cost it the conversation's length (docs/sharding.md, "Dialects").
Counted with the server's own index reads (`Handler_read_*`)."""

from __future__ import annotations

import pytest

from tao import Tao
from tests.tao.mariadb_status import global_status


@pytest.fixture
def store(mysql_store: Tao) -> Tao:
    return mysql_store


def index_reads(services) -> int:
    """Index entries MariaDB read on every server so far (first, next, previous, by key)."""
    return global_status(services, ("Handler_read_first", "Handler_read_key", "Handler_read_next",
                                    "Handler_read_prev", "Handler_read_last"))


LONG = 3000


async def test_an_append_reads_a_bounded_number_of_index_entries_whatever_the_list_length(store, services):
    user = await store.obj_add("TEST_NODE", {})
    events = [store.ids.next_id(store.shard(user)) for _ in range(LONG + 2)]
    for start in range(0, LONG, 500):
        await store.assoc_append_many([(user, "STREAM_EVENT", e, {"n": i})
                                       for i, e in enumerate(events[start:start + 500], start)])
    assert await store.assoc_count(user, "STREAM_EVENT") == LONG

    # With another list in the same statement (a delivery locks several): MariaDB's MIN/MAX
    # shortcut, which a single list's constant key allows, does not apply.
    other = await store.obj_add("TEST_NODE", {}, owner=user)
    before = index_reads(services)
    appended, _ = await store.assoc_append_many([(user, "STREAM_EVENT", events[LONG], {"n": LONG}),
                                                 (other, "STREAM_EVENT", events[LONG + 1], {"n": 0})])
    reads = index_reads(services) - before

    newest = await store.assoc_time_range(user, "STREAM_EVENT", limit=2)
    assert appended.new and appended.prev == newest[1].time and appended.assoc.time == newest[0].time
    # Measured: ~20 with the index step (the lock, the edge's key, the head, the writes, and the
    # background's few), and over LONG when the newest time was MAX(time).
    assert reads < 200, reads
