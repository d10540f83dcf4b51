"""The embedded SQLite backend under cancellation: a request cancelled (its client went away)
while its transaction's BEGIN waits for the database must not leave the shard's writer inside
a transaction, which would refuse every later write on that shard."""

from __future__ import annotations

import asyncio
import sqlite3

from tao.testing import TaoTestHooks as hooks
from tests.tao.conftest import make_settings, open_store


async def test_a_transaction_cancelled_in_its_begin_leaves_the_shard_writable(test_id, tmp_path):
    store = await open_store(make_settings("sqlite", None, test_id, tmp_path))
    try:
        backend = hooks(store).backend
        node = await store.obj_add("TEST_NODE", {"n": 0})
        shard = store.shard(node)
        path = backend._shards[shard].path
        # Another connection holds the database's write lock, so the store's BEGIN IMMEDIATE
        # waits in aiosqlite's thread (busy_timeout) while the request is cancelled.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(store.obj_update(node, {"n": 1}))
        await asyncio.sleep(0.3)  # it is in its BEGIN now
        write.cancel()
        await asyncio.sleep(0.1)
        other.execute("ROLLBACK")  # the BEGIN goes through in its thread after the cancel
        other.close()
        assert isinstance((await asyncio.gather(write, return_exceptions=True))[0], asyncio.CancelledError)
        await store.obj_update(node, {"n": 2})  # before: "cannot start a transaction within a transaction"
        assert (await store.obj_get([node]))[node].data["n"] == 2
    finally:
        await store.close()
