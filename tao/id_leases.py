"""Id slots leased from the store, so that no two processes make the same id (tao/ids.py).

Every process that opens the store (a server process, a job worker, a batch job, a CLI command)
leases one of `N_SLOTS` (256) slots in the `id_slots` table of logical shard 0, the shard whose
server also keeps the store's clock (tao/clock.py). No coordination service beyond the store:

    id_slots (slot, owner, expires)   owner: "host:pid:random" ('' once released); expires: ms

- `acquire` (at open, one transaction): the lowest slot that has no row, or whose owner is ''
  (released) or whose `expires` is past on the database server's clock; it writes this
  process's owner and `expires = server now + lease`. The generator makes ids with the slot at
  or after the row's old `expires` (the floor; the server's now if that is later, so a process
  clock that is far behind cannot make ids from before the lease) and before the new one (the
  fence).
- `renew` (every third of the lease, in a task on the event loop; at once when `next_id` comes
  within half a lease of the fence): `expires` moves to a lease beyond the later of the server's
  now and the highest id made (a batch that ran ahead of the clock), if the row still names this
  owner, even if it had expired (no one took it, so no one made ids with it since); the fence
  moves with it. If another process took the slot, the
  generator's fence is already behind its ids' time, and `acquire` takes another slot.
- `release` (at close): the generator stops, and the row gets owner '' and `expires` = the ms
  above every id it made: the next holder starts there.

Why this is safe whatever the processes' clocks: a holder's ids all have ms < its fence, the
fence is never above the row's `expires`, a slot is taken only once its `expires` is past on
the server's clock (or it was released), and the taker's ids have ms >= that `expires`. A paused
process's ids stop at its fence; when it resumes, `next_id` raises `IdLeaseLostError` until the
lease is renewed or replaced (it wakes the task), never an id another process may make.

When every slot is held, `acquire` raises `IdSlotsExhaustedError`, naming the holders and when
the first lease ends: the store does not open (a crashed process's slot is free after one lease).
The lease's statements count as `id_lease_queries` in `Tao.stats()`, not `sql_queries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import Any

from tao.backends.base import Conn
from tao.errors import DuplicateKeyError, IdSlotsExhaustedError, TaoError
from tao.ids import N_SLOTS, IdGenerator
from tao.shards import Shards

log = logging.getLogger(__name__)

LEASE_SHARD = 0
COUNTER = "id_lease_queries"
RETRY_SECONDS = 1.0  # after a failed renewal


class IdLease:
    """This process's id slot: taken by `acquire`, kept by the task `start` runs, let go by `release`."""

    def __init__(self, shards: Shards, ids: IdGenerator, lease_seconds: float) -> None:
        self._shards = shards
        self._ids = ids
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.slot: int | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        ids.on_renew = self._wake_up
        ids.renew_within = self.lease_ms // 2

    # ---- the three transactions -------------------------------------------------------------

    async def _server_now(self, conn: Conn) -> int:
        return int((await conn.fetchall(self._shards.backend.now_ms_sql))[0][0])

    async def acquire(self) -> int:
        """Take a free slot and start making ids with it; returns the slot."""
        lock = self._shards.backend.for_update

        async def body(conn: Conn) -> tuple[int, int, int]:
            now = await self._server_now(conn)
            rows = await conn.fetchall("SELECT slot, owner, expires FROM {id_slots}" + lock)
            held: dict[int, tuple[str, int]] = {r[0]: (r[1], r[2]) for r in rows}
            start = max(now, self._ids.high_ms + 1)  # this process's ids may have run ahead already
            for slot in range(N_SLOTS):
                if slot not in held:
                    fence = start + self.lease_ms
                    await conn.execute("INSERT INTO {id_slots} (slot, owner, expires) VALUES (%s, %s, %s)",
                                       (slot, self.owner, fence))
                    return slot, now, fence
                owner, expires = held[slot]
                if owner == "" or expires <= now:
                    fence = max(start, expires) + self.lease_ms
                    await conn.execute("UPDATE {id_slots} SET owner = %s, expires = %s WHERE slot = %s",
                                       (self.owner, fence, slot))
                    return slot, max(expires, now), fence
            soonest = min(held.values(), key=lambda h: h[1])
            raise IdSlotsExhaustedError(
                f"all {N_SLOTS} id slots are leased (shard {LEASE_SHARD}'s id_slots table; the first lease "
                f"ends in {max(0, soonest[1] - now) / 1000:.1f} s, held by {soonest[0]}): stop a process "
                f"of this deployment, or wait for a crashed one's lease (store.id_lease_seconds) to end")

        for attempt in range(3):
            try:
                slot, floor, fence = await self._shards.write(LEASE_SHARD, body, counter=COUNTER)
                break
            except DuplicateKeyError:  # another process inserted the same new slot first
                if attempt == 2:
                    raise
        self._ids.lease(slot, floor, fence)
        if self.slot is not None and self.slot != slot:
            log.warning("id lease: slot %d was lost (taken by another process); now holding slot %d",
                        self.slot, slot)
        self.slot = slot
        return slot

    async def renew(self) -> bool:
        """Extend the lease; False if another process holds the slot now (or there is none)."""
        slot = self.slot
        if slot is None:
            return False
        lock = self._shards.backend.for_update

        async def body(conn: Conn) -> int | None:
            now = await self._server_now(conn)
            rows = await conn.fetchall("SELECT owner, expires FROM {id_slots} WHERE slot = %s" + lock, (slot,))
            if not rows or rows[0][0] != self.owner:
                return None
            # Never moves back (even if the server's clock does); a lease beyond a burst's ids.
            fence = max(rows[0][1], max(now, self._ids.high_ms) + self.lease_ms)
            await conn.execute("UPDATE {id_slots} SET expires = %s WHERE slot = %s", (fence, slot))
            return fence

        fence = await self._shards.write(LEASE_SHARD, body, counter=COUNTER)
        if fence is None:
            return False
        self._ids.extend(slot, fence)
        return True

    async def release(self) -> None:
        """Stop the task, stop making ids, and free the slot for the next process."""
        await self.stop()
        slot, self.slot = self.slot, None
        floor = self._ids.revoke()
        if slot is None:
            return

        async def body(conn: Conn) -> Any:
            return await conn.execute("UPDATE {id_slots} SET owner = '', expires = %s WHERE slot = %s AND owner = %s",
                                      (floor, slot, self.owner))
        try:
            await self._shards.write(LEASE_SHARD, body, counter=COUNTER)
        except TaoError as exc:  # the slot comes free when its lease ends
            log.warning("id lease: could not release slot %d (%s); it is free once its lease ends", slot, exc)

    # ---- the renewing task ------------------------------------------------------------------

    def start(self) -> None:
        """Renew every third of the lease, on the running event loop, until `release`."""
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name="tao-id-lease")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _wake_up(self) -> None:
        """`next_id` refused an id, or made one near its fence: renew now. Any thread may call it."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        every = self.lease_ms / 3000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every)
            self._wake.clear()
            try:
                if not await self.renew():
                    log.warning("id lease: slot %s was taken by another process (this one was paused or cut off "
                                "for longer than the lease); taking another", self.slot)
                    await self.acquire()
            except TaoError as exc:  # shard 0 unreachable, or no slot free: ids stop at the fence
                log.warning("id lease: could not renew slot %s (%s); retrying in %.1f s", self.slot, exc,
                            RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)  # however often `next_id` asks meanwhile
                self._wake.set()
