"""Id slots leased from the store, one per database server, so that no two processes make the
same id (tao/ids.py) and a server that is down only stops ids for its own shards.

Every process that opens the store (a server process, a job worker, a batch job, a CLI command)
leases one of `N_SLOTS` (256) slots on **each database server** of the shard map, in the
`id_slots` table of that server's *lease shard*: the lowest logical shard the map puts on it
(shard 0 on the first server of a round-robin map; on SQLite, one embedded "server", shard 0).
No coordination service beyond the store:

    id_slots (slot, owner, expires)   owner: "host:pid:random" ('' once released); expires: ms

- `acquire` (one transaction on the lease shard): the lowest slot that has no row, or whose
  owner is '' (released) or whose `expires` is past on that database server's clock; it writes
  this process's owner and `expires = server now + lease`. The generator makes ids for that
  server's shards with the slot at or after the row's old `expires` (the floor; the server's now
  if that is later, so a process clock that is far behind cannot make ids from before the lease)
  and before the new one (the fence).
- `renew` (every third of the lease, in a task per server on the event loop; at once when
  `next_id` comes within half a lease of that server's fence): `expires` moves to a lease beyond
  the later of the server's now and the highest id made with the slot (a batch that ran ahead
  of the clock), if the row still names this owner, even if it had expired (no one took it, so
  no one made ids with it since); the fence moves with it. If another process took the slot,
  the generator's fence is already behind its ids' time, and `acquire` takes another slot.
- `release` (at close): the generator stops making ids for the server's shards, and the row
  gets owner '' and `expires` = the ms above every id it made: the next holder starts there.

**At open** (`IdLeases.acquire`, from `Tao.lease_ids`) every server is leased at once, in
parallel, so the first write to any shard finds its slot ready. A server that cannot be
reached is not fatal: its task keeps trying every `RETRY_SECONDS`, and meanwhile `next_id` for
its shards raises the retryable `IdLeaseLostError` (their writes would fail anyway). Every slot
held on a server (`IdSlotsExhaustedError`) does fail the open: it is the deployment's size, not
an outage. (Not lazily on a server's first id: `next_id` cannot wait, so that id would be
refused; `open_tao` has just checked every shard's schema, so every server was reachable.)

**Per server, each renewed by its own task**: a server that is down or stalled delays only its
own renewals, so the processes keep making ids, and writing, on every other server's shards.

Why this is safe whatever the clocks: ids for logical shard s are made only with the slot of
s's server, S. On S, a holder's ids all have ms < its fence, the fence is never above the row's
`expires`, a slot is taken only once its `expires` is past on S's clock (or it was released),
and the taker's ids have ms >= that `expires`. A paused process's ids stop at its fence; when it
resumes, `next_id` raises `IdLeaseLostError` until the lease is renewed or replaced (it wakes the
task), never an id another process may make. Slot k on server A and slot k on server B are two
leases, held perhaps by two processes, but their ids name different shards.

**A shard moving between servers** (copy its database, change `store.shard_map`: there is no
online move, so the shard takes no writes from the copy until every process runs with the new
map) changes which server's slots make its ids, and may change a server's lease shard. The
slots of the new server know nothing of the ids made for the shard on the old one, so writers
with the new map must start only once the new server's clock is past every `expires` in the old
server's (old) lease table: `SELECT MAX(expires) FROM <old lease shard>.id_slots`. That is
normally already the case (the copy takes longer than the few ms a released lease ends ahead,
and a crashed process made no id after it crashed); a batch that ran ahead of the clock can
push it seconds ahead. `python -m tao id-slots` prints each server's latest `expires` and
its now (`lease_tables`). docs/sharding.md, "Moving a shard".

The lease's statements count as `id_lease_queries` in `Tao.stats()`, not `sql_queries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from tao.backends.base import Conn
from tao.errors import DuplicateKeyError, IdSlotsExhaustedError, ShardUnavailableError, TaoError
from tao.ids import N_SLOTS, IdGenerator
from tao.shards import Shards

log = logging.getLogger(__name__)

COUNTER = "id_lease_queries"
RETRY_SECONDS = 1.0  # after a failed renewal


def lease_shards(server_of_shard: tuple[int, ...]) -> dict[int, int]:
    """{server: its lease shard}: the lowest logical shard on each server that holds any."""
    out: dict[int, int] = {}
    for shard, server in enumerate(server_of_shard):
        out.setdefault(server, shard)
    return out


@dataclass(frozen=True)
class LeaseTable:
    """One server's `id_slots`, as `python -m tao id-slots` prints it."""

    server: int
    lease_shard: int
    server_now: int  # ms, that server's clock
    held: int  # slots whose lease has not ended
    latest_expires: int | None  # the largest `expires` (None: no slot was ever taken there)


async def server_now(shards: Shards, conn: Conn) -> int:
    """The database server's time (ms), on `conn`: the clock every lease's `expires` is on."""
    return int((await conn.fetchall(shards.backend.now_ms_sql))[0][0])


async def lease_tables(shards: Shards) -> list[LeaseTable]:
    """Every server's lease table, read in parallel (a server that is down raises)."""
    async def one(server: int, shard: int) -> LeaseTable:
        async with shards.read(shard) as conn:
            now = await server_now(shards, conn)
            rows = await conn.fetchall("SELECT owner, expires FROM {id_slots}")
        held = sum(1 for owner, expires in rows if owner != "" and expires > now)
        return LeaseTable(server, shard, now, held, max((r[1] for r in rows), default=None))
    return list(await asyncio.gather(*(one(server, shard) for server, shard
                                       in sorted(lease_shards(shards.shard_map.server_of_shard).items()))))


class ServerLease:
    """This process's id slot on one database server: taken by `acquire`, kept by the task
    `start` runs, let go by `release`."""

    def __init__(self, shards: Shards, ids: IdGenerator, server: int, lease_shard: int, lease_ms: int,
                 owner: str) -> None:
        self._shards = shards
        self._ids = ids
        self.server = server
        self.lease_shard = lease_shard
        self.lease_ms = lease_ms
        self.owner = owner
        self.slot: int | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # ---- the three transactions -------------------------------------------------------------

    async def acquire(self) -> int:
        """Take a free slot on this server and start making ids for its shards; returns the slot."""
        lock = self._shards.backend.for_update

        async def body(conn: Conn) -> tuple[int, int, int]:
            now = await server_now(self._shards, conn)
            rows = await conn.fetchall("SELECT slot, owner, expires FROM {id_slots}" + lock)
            held: dict[int, tuple[str, int]] = {r[0]: (r[1], r[2]) for r in rows}
            start = max(now, self._ids.high_ms(self.server) + 1)  # this process's ids may have run ahead already
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
                f"all {N_SLOTS} id slots are leased (server {self.server}'s, in shard {self.lease_shard}'s "
                f"id_slots table; the first lease ends in {max(0, soonest[1] - now) / 1000:.1f} s, held by "
                f"{soonest[0]}): stop a process of this deployment, or wait for a crashed one's lease "
                "(store.id_lease_seconds) to end")

        for attempt in range(3):
            try:
                slot, floor, fence = await self._shards.write(self.lease_shard, body, counter=COUNTER)
                break
            except DuplicateKeyError:  # another process inserted the same new slot first
                if attempt == 2:
                    raise
        self._ids.lease(slot, floor, fence, server=self.server)
        if self.slot is not None and self.slot != slot:
            log.warning("id lease: slot %d on server %d was lost (taken by another process); now holding slot %d",
                        self.slot, self.server, slot)
        self.slot = slot
        return slot

    async def renew(self) -> bool:
        """Extend the lease; False if another process holds the slot now (or there is none)."""
        slot = self.slot
        if slot is None:
            return False
        lock = self._shards.backend.for_update

        async def body(conn: Conn) -> int | None:
            now = await server_now(self._shards, conn)
            rows = await conn.fetchall("SELECT owner, expires FROM {id_slots} WHERE slot = %s" + lock, (slot,))
            if not rows or rows[0][0] != self.owner:
                return None
            # Never moves back (even if the server's clock does); a lease beyond a burst's ids.
            fence = max(rows[0][1], max(now, self._ids.high_ms(self.server)) + self.lease_ms)
            await conn.execute("UPDATE {id_slots} SET expires = %s WHERE slot = %s", (fence, slot))
            return fence

        fence = await self._shards.write(self.lease_shard, body, counter=COUNTER)
        if fence is None:
            return False
        self._ids.extend(slot, fence, server=self.server)
        return True

    async def release(self) -> None:
        """Stop the task, stop making ids for this server's shards, and free the slot."""
        await self.stop()
        slot, self.slot = self.slot, None
        floor = self._ids.revoke(self.server)
        if slot is None:
            return

        async def body(conn: Conn) -> Any:
            return await conn.execute("UPDATE {id_slots} SET owner = '', expires = %s WHERE slot = %s AND owner = %s",
                                      (floor, slot, self.owner))
        try:
            await self._shards.write(self.lease_shard, body, counter=COUNTER)
        except TaoError as exc:  # the slot comes free when its lease ends
            log.warning("id lease: could not release slot %d on server %d (%s); it is free once its lease ends",
                        slot, self.server, exc)

    # ---- the renewing task ------------------------------------------------------------------

    def start(self) -> None:
        """Renew every third of the lease (or take a slot, if there is none yet), on the running
        event loop, until `release`."""
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name=f"tao-id-lease-{self.server}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake_up(self) -> None:
        """`next_id` refused an id, or made one near the fence: renew now. Any thread may call it."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        every = self.lease_ms / 3000
        if self.slot is None:
            self._wake.set()  # none taken at open (the server was unreachable): try at once
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every)
            self._wake.clear()
            try:
                if not await self.renew():
                    if self.slot is not None:
                        log.warning("id lease: slot %s on server %d was taken by another process (this one was "
                                    "paused or cut off for longer than the lease); taking another",
                                    self.slot, self.server)
                    await self.acquire()
                    log.info("id lease: holding slot %d on server %d", self.slot, self.server)
            except TaoError as exc:  # the server unreachable, or no slot free: its shards' ids stop at the fence
                log.warning("id lease: could not renew slot %s on server %d (%s); retrying in %.1f s", self.slot,
                            self.server, exc, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)  # however often `next_id` asks meanwhile
                self._wake.set()


class IdLeases:
    """This process's id slots, one per database server of the shard map."""

    def __init__(self, shards: Shards, ids: IdGenerator, lease_seconds: float) -> None:
        lease_ms = max(1, int(lease_seconds * 1000))
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.servers = {server: ServerLease(shards, ids, server, shard, lease_ms, self.owner)
                        for server, shard in lease_shards(shards.shard_map.server_of_shard).items()}
        ids.on_renew = self._wake_up
        ids.renew_within = lease_ms // 2

    @property
    def slots(self) -> dict[int, int | None]:
        """{server: the slot held there, None if none now}."""
        return {server: lease.slot for server, lease in self.servers.items()}

    async def acquire(self) -> dict[int, int | None]:
        """Take a slot on every server, in parallel, and start their tasks. A server that cannot
        be reached gets none for now (its task keeps trying); IdSlotsExhaustedError (every slot
        held on a server) is raised."""
        leases = list(self.servers.values())
        results = await asyncio.gather(*(lease.acquire() for lease in leases), return_exceptions=True)
        for lease, result in zip(leases, results):
            if isinstance(result, ShardUnavailableError):
                log.warning("id lease: no slot on server %d for now (%s); its shards make no ids until one is "
                            "taken, retrying every %.1f s", lease.server, result, RETRY_SECONDS)
            elif isinstance(result, BaseException):
                raise result
        for lease in leases:
            lease.start()
        return self.slots

    async def release(self) -> None:
        await asyncio.gather(*(lease.release() for lease in self.servers.values()))

    def _wake_up(self, server: int) -> None:
        lease = self.servers.get(server)
        if lease is not None:
            lease.wake_up()
