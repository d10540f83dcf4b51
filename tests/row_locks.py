"""Rows held by a transaction of the test's own (MariaDB row locks) until a block ends, then
rolled back: a write that needs those rows waits on them, so a race test can change the world
under a write at a known point, then let it go.

    async with held_by_a_transaction(tao, shard, "SELECT ... FOR UPDATE", params) as rows:
        ...  # a write needing those rows waits here
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tao.testing import TaoTestHooks as hooks


class _Release(Exception):
    """Raised in the holding transaction at the block's end: it rolls back."""


@asynccontextmanager
async def held_by_a_transaction(tao: Any, shard: int, statement: str,
                                params: Sequence[Any] = ()) -> AsyncIterator[list[tuple]]:
    """Run `statement` (a locking read, or an insert of a row others will want) in a transaction
    on `shard` and keep it open until the block ends; yields the rows the statement returned."""
    locked, release = asyncio.Event(), asyncio.Event()
    rows: list[tuple] = []

    async def hold(conn: Any) -> None:
        rows.extend(await conn.fetchall(statement, params))
        locked.set()
        await release.wait()
        raise _Release

    holder = asyncio.create_task(hooks(tao).write(shard, hold))
    started = asyncio.create_task(locked.wait())
    await asyncio.wait({holder, started}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if not locked.is_set():
        started.cancel()
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        pytest.fail("the holding transaction did not start: " + repr(holder.exception() if holder.done()
                                                                      and not holder.cancelled() else "timed out"))
    try:
        yield rows
    finally:
        release.set()
        with pytest.raises(_Release):
            await holder
