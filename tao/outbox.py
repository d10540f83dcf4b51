"""Durable jobs: the outbox table of each shard, and the worker that drains it.

A job is a row written in the same transaction as the change that caused it, so the job exists
if and only if the change committed. A worker claims due rows in a short transaction
(`SELECT ... FOR UPDATE SKIP LOCKED` on MariaDB, so any number of workers can share a shard),
pushing their `run_at` forward by a lease; it then runs the registered handler and deletes the
row, or reschedules it with exponential backoff. A worker that dies mid-job leaves the row to
come due again when the lease ends: delivery is at-least-once, so handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

from config import JobSettings
from config.observability.jobs import observe_job
from config.observability.traces import with_trace_context
from tao.backends.base import Conn
from tao.errors import JobNotDueError, TaoError
from tao.models import now_ms
from tao.shards import Ride, Shards

log = logging.getLogger("tao.outbox")

# A handler gets the store (`Tao`) and the job's payload.
Handler = Callable[[Any, dict], Awaitable[None]]
# Jobs a write commits with its change: (handler, payload[, delay_ms[, job_id]]) each.
Jobs = list[tuple] | None
DEAD_LETTER_MS = 100 * 365 * 24 * 3600 * 1000  # a job past max_attempts waits here for an operator
# How long a done job waits for a commit on its shard to carry its deletion (`delete_soon`)
# before it is deleted on its own: well under the writers' repair delays (seconds).
RIDE_WAIT_S = 0.5

# The shard on which this task last wrote a job due at once and has not nudged the worker for
# since (`Outbox.add` sets it, `nudge` consumes it). A write runs its transaction body and its
# nudge in one task, so a ContextVar pairs them without a lock.
_due_written: ContextVar[int | None] = ContextVar("tao_due_job_written", default=None)


class Outbox:
    """The store's one durable job queue (`Tao.outbox`). Handlers are called with `store` (the
    `Tao` that owns this outbox) and the job's payload."""

    def __init__(self, shards: Shards, settings: JobSettings) -> None:
        # Due times are on the store's clock (Tao sets this to `tao.clock.now_ms`), so a
        # delayed job comes due when the deployment's time says so, in every process.
        self.now: Callable[[], int] = now_ms
        self._shards = shards
        self.store: Any = None  # set by the Tao that owns this outbox
        self._s = settings
        self.handlers: dict[str, Handler] = {}
        # Jobs this process may write but never claims: another process runs them (a search
        # index partition's single writer, resolvers/search). See `declare`.
        self.elsewhere: set[str] = set()
        # When set, this process claims only these jobs (a dedicated runner, e.g. a search indexer).
        self.only: set[str] | None = None
        # A handler named with one of these prefixes has a lane of its own: see `lane_of`.
        self._own_lanes = tuple(settings.own_lane_prefixes)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._idle_until: dict[int, float] = {}
        # Done jobs waiting to be deleted, per shard (`delete_soon`): each batch rides with the
        # COMMIT of the next transaction this process commits on its shard, or is deleted on its
        # own after RIDE_WAIT_S. Only where the backend batches statements (MariaDB); the
        # embedded backend's statements are local calls, so it deletes at once.
        self._done: dict[int, set[int]] = {}
        self._flushing: set[asyncio.Task] = set()
        if shards.backend.batches_queued:
            shards.rider = self._ride

    def register(self, name: str, handler: Handler) -> None:
        if name in self.handlers and self.handlers[name] is not handler:
            raise ValueError(f"a handler for {name!r} is already registered")
        self.handlers[name] = handler
        self.elsewhere.discard(name)

    def declare(self, name: str) -> None:
        """`name` is run by another process: this one may enqueue it but never claims it (any
        handler of it registered here is dropped). Used for jobs with exactly one runner."""
        self.handlers.pop(name, None)
        self.elsewhere.add(name)

    def lane_of(self, handler: str) -> str:
        """The lane a job of `handler` waits in: its own name for a handler with a lane of its
        own (`jobs.own_lane_prefixes`: the search partitions' index jobs, each run by one
        process), else the general lane "". A worker polls each lane it runs through the
        (lane, run_at) index, so it reads past no job it does not run, however many are due:
        before lanes, a poll skipped such jobs by name and read every one of them that was due,
        on every poll of every server (most when an indexer was down or behind)."""
        return handler if handler.startswith(self._own_lanes) else ""

    def _lanes(self) -> list[str]:
        """The lanes this process claims from: those of the handlers it runs (`only`, or every
        registered one), and always the general lane. A job of a handler with a lane of its own
        can be in the general lane: written by code older than lanes still running mid-deploy
        (the column's default), or by a process whose `own_lane_prefixes` differ. Its runner
        finds it there (the poll's handler filter keeps every other job out; it reads past the
        general lane's due jobs, which are few: the general workers lease them as they come due)."""
        runs = self.only if self.only is not None else self.handlers
        return sorted({"", *(self.lane_of(name) for name in runs if name not in self.elsewhere)})

    # ---- enqueue --------------------------------------------------------------------------------

    async def add(self, conn: Conn, handler: str, payload: dict, *, delay_ms: int = 0,
                  job_id: int | None = None) -> int:
        """Write a job row inside the caller's transaction; returns its id. A caller that will
        do the job itself right after the commit names the id (from `ids.next_id(shard)`), so
        it can `delete` the row when it succeeds; otherwise the worker runs it when due."""
        if handler not in self.handlers and handler not in self.elsewhere:
            raise TaoError(f"no handler registered for job {handler!r}")
        job_id = self._shards.ids.next_id(conn.shard) if job_id is None else job_id
        await self._insert(conn, [(handler, payload, delay_ms, job_id)])
        return job_id

    async def add_jobs(self, conn: Conn, jobs: Jobs) -> None:
        """Write the callers' jobs in their transaction, in one statement:
        (handler, payload[, delay_ms[, job_id]]) each."""
        if jobs:
            await self._insert(conn, [(handler, payload, rest[0] if rest else 0, rest[1] if len(rest) > 1 else None)
                                      for handler, payload, *rest in jobs])

    async def _insert(self, conn: Conn, jobs: list[tuple[str, dict, int, int | None]]) -> None:
        ts = self.now()
        params: list[Any] = []
        for handler, payload, delay_ms, job_id in jobs:
            if handler not in self.handlers and handler not in self.elsewhere:
                raise TaoError(f"no handler registered for job {handler!r}")
            job_id = self._shards.ids.next_id(conn.shard) if job_id is None else job_id
            payload = with_trace_context(payload)  # observability: the job's span continues this trace
            params += [job_id, handler, self.lane_of(handler), json.dumps(payload, separators=(",", ":")),
                       ts + delay_ms, ts]
            if delay_ms <= 0:
                _due_written.set(conn.shard)
        await conn.queue("INSERT INTO {outbox} (id, handler, lane, payload, run_at, attempts, created) VALUES "
                         + ", ".join(["(%s, %s, %s, %s, %s, 0, %s)"] * len(jobs)), params)

    async def enqueue(self, shard: int, handler: str, payload: dict, *, delay_ms: int = 0) -> int:
        job_id = await self._shards.write(shard, lambda conn: self.add(conn, handler, payload, delay_ms=delay_ms))
        self.nudge(shard)
        return job_id

    async def delete(self, shard: int, *job_ids: int) -> None:
        """Delete done jobs of `shard` (one statement); a failure is logged: they run again."""
        if not job_ids:
            return
        try:
            async with self._shards.read(shard) as conn:
                await conn.execute(f"DELETE FROM {{outbox}} WHERE id IN ({', '.join(['%s'] * len(job_ids))})", job_ids)
        except TaoError as exc:  # the jobs will run again; handlers are idempotent
            log.info("could not delete done jobs %s on shard %s: %s", job_ids, shard, exc)

    async def delete_soon(self, shard: int, *job_ids: int) -> None:
        """Delete done jobs of `shard` with no round trip of their own: they go with the next
        transaction this process commits on `shard` (a busy shard's next write is moments away),
        or in a statement of their own after RIDE_WAIT_S. Until then, and for good if this
        process dies first, they are rows like any job not yet deleted: they come due at their
        `run_at` and run again, which handlers allow. For jobs due well after RIDE_WAIT_S (a
        writer's own repair job, such as the delivery's, due `realtime.redeliver_after_ms`
        later); `delete` deletes at once."""
        if not job_ids:
            return
        if self._shards.rider is None:
            await self.delete(shard, *job_ids)
            return
        self._wait(shard, job_ids)

    def _wait(self, shard: int, job_ids: Iterable[int]) -> None:
        """Done jobs join their shard's waiting set; its first arms the timer that deletes
        what no commit carries within RIDE_WAIT_S."""
        waiting = self._done.get(shard)
        if waiting is None:
            waiting = self._done[shard] = set()
            asyncio.get_running_loop().call_later(RIDE_WAIT_S, self._delete_waiting, shard)
        waiting.update(job_ids)

    def _ride(self, shard: int) -> Ride | None:
        """`Shards.rider`: the shard's waiting done jobs, as a statement for a COMMIT to carry."""
        ids = self._done.pop(shard, None)
        if not ids:
            return None

        def done(committed: bool) -> None:
            if not committed:  # back in the queue, for the next commit (or the timer) to carry
                self._wait(shard, ids)
        return Ride(f"DELETE FROM {{outbox}} WHERE id IN ({', '.join(['%s'] * len(ids))})", sorted(ids), done)

    def _delete_waiting(self, shard: int) -> None:
        """RIDE_WAIT_S after a shard's first waiting job: what no commit carried meanwhile."""
        ids = self._done.pop(shard, None)
        if ids:
            task = asyncio.get_running_loop().create_task(self.delete(shard, *ids))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def flush_done(self) -> None:
        """Delete every waiting done job now (the store closing)."""
        for shard in list(self._done):
            self._delete_waiting(shard)
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    def nudge(self, shard: int) -> None:
        """This process (this task) wrote to `shard`: look at its outbox at once if the write
        committed a job due now. Jobs due later (the repairs a writer does itself, an inverse
        sync's grace period) come due on the worker's idle polls (at least every `max_idle`
        second): waking it for them cost every write a claim transaction that found nothing."""
        if _due_written.get() != shard:
            return
        _due_written.set(None)
        self._idle_until.pop(shard, None)
        self._wake.set()

    # ---- claim and run ------------------------------------------------------------------------

    async def run_once(self, shard: int, *, include_delayed: bool = False) -> int:
        """Claim and run one batch of due jobs on `shard`; return how many ran."""
        now = self.now()
        horizon = now + DEAD_LETTER_MS // 2 if include_delayed else now
        lease_until = now + int(self._s.lease_seconds * 1000)
        lanes = self._lanes()
        # Within a lane, still only the handlers this process runs: in the general lane, a job
        # another process runs (one declared `elsewhere`, or one of an own lane's handlers
        # written there by older code) is left to its runner, which polls the general lane too.
        if self.only is not None:
            names = sorted(self.only)
            skip = f" AND handler IN ({','.join(['%s'] * len(names))})"
        else:
            names = sorted(self.elsewhere)
            skip = f" AND handler NOT IN ({','.join(['%s'] * len(names))})" if names else ""

        async def claim(conn: Conn) -> list[tuple]:
            rows: list[tuple] = []
            for lane in lanes:  # one step down (lane, run_at) each; most processes run one lane
                rows += await conn.fetchall(
                    f"SELECT id, handler, payload, attempts FROM {{outbox}} WHERE lane = %s AND run_at <= %s{skip} "
                    f"ORDER BY run_at LIMIT %s{self._shards.backend.skip_locked}",
                    (lane, horizon, *names, self._s.batch_size - len(rows)))
                if len(rows) >= self._s.batch_size:
                    break
            if rows:
                marks = ",".join(["%s"] * len(rows))
                await conn.execute(f"UPDATE {{outbox}} SET run_at = %s, attempts = attempts + 1 WHERE id IN ({marks})",
                                   [lease_until, *(r[0] for r in rows)])
            return rows
        rows = await self._shards.write(shard, claim)
        if not rows:
            return 0
        ran = await asyncio.gather(*(self._run_job(shard, *row) for row in rows))
        return sum(ran)

    async def _run_job(self, shard: int, job_id: int, handler: str, payload: str, attempts: int) -> bool:
        """Run one claimed job; False if its handler said it is not due yet (put back unchanged)."""
        fn = self.handlers.get(handler)
        not_due: JobNotDueError | None = None
        try:
            if fn is None:
                raise TaoError(f"no handler registered for job {handler!r} in this process")
            data = json.loads(payload)
            with observe_job(handler, job_id, attempts + 1, data):  # metrics, log line, span
                try:
                    await fn(self.store, data)
                except JobNotDueError as exc:
                    not_due = exc
        except Exception as exc:
            attempts += 1
            if attempts >= self._s.max_attempts:
                delay = DEAD_LETTER_MS
                log.error("job %s (%s) failed %d times; parked: %s", job_id, handler, attempts, exc)
            else:
                delay = int(min(self._s.backoff_max, self._s.backoff_base * 2 ** (attempts - 1))
                            * 1000 * random.uniform(0.5, 1.0))
            error = "".join(traceback.format_exception_only(exc)).strip()[:2000]
            try:
                async with self._shards.read(shard) as conn:
                    await conn.execute("UPDATE {outbox} SET run_at = %s, last_error = %s WHERE id = %s",
                                       (self.now() + delay, error, job_id))
            except TaoError:
                pass  # the lease expires and the job comes due again anyway
            return True
        if not_due is not None:  # back to its time, the claim's attempt undone
            try:
                async with self._shards.read(shard) as conn:
                    await conn.execute("UPDATE {outbox} SET run_at = %s, attempts = %s WHERE id = %s",
                                       (not_due.run_at, attempts, job_id))
            except TaoError:
                pass  # the lease expires and the handler says so again
            return False
        await self.delete(shard, job_id)
        return True

    async def run_until_idle(self, *, include_delayed: bool = True, max_rounds: int = 10_000) -> int:
        """Drain every shard (tests, batch jobs). With include_delayed, jobs scheduled for later
        (backoff, the inverse-sync grace period) run now too, except those whose handler says they
        are not due yet (`JobNotDueError`: a story's expiry before its 24 hours)."""
        total = 0
        for _ in range(max_rounds):
            ran = 0
            for shard in range(self._shards.n_shards):
                ran += await self.run_once(shard, include_delayed=include_delayed)
            total += ran
            if ran == 0:
                return total
        raise TaoError("outbox did not become idle")

    async def pending(self) -> int:
        n = 0
        for shard in range(self._shards.n_shards):
            async with self._shards.read(shard) as conn:
                n += (await conn.fetchall("SELECT COUNT(*) FROM {outbox} WHERE run_at < %s",
                                          (self.now() + DEAD_LETTER_MS // 2,)))[0][0]
        return n

    async def pending_before(self, created_ms: int, *, excluding: tuple[str, ...] = ()) -> int:
        """Jobs still queued (any shard) that were created before `created_ms`, other than those of
        the `excluding` handlers: a barrier for work that must come after every earlier job."""
        n = 0
        marks = ", ".join(["%s"] * len(excluding))
        cond = f" AND handler NOT IN ({marks})" if excluding else ""
        for shard in range(self._shards.n_shards):
            async with self._shards.read(shard) as conn:
                # parked jobs (failed too often) do not hold the barrier
                n += (await conn.fetchall(f"SELECT COUNT(*) FROM {{outbox}} WHERE created < %s AND run_at < %s{cond}",
                                          (created_ms, now_ms() + DEAD_LETTER_MS // 2, *excluding)))[0][0]
        return n

    async def depth_by_handler(self) -> dict[str, tuple[int, int | None, int]]:
        """{handler: (jobs due or running, oldest `created` ms among them, parked jobs)} over every
        shard, shards in parallel (the `/metrics` outbox gauges)."""
        parked_after = self.now() + DEAD_LETTER_MS // 2

        async def one(shard: int) -> list[tuple]:
            async with self._shards.read(shard) as conn:
                return await conn.fetchall(
                    "SELECT handler, SUM(run_at < %s), MIN(CASE WHEN run_at < %s THEN created END), "
                    "SUM(run_at >= %s) FROM {outbox} GROUP BY handler", (parked_after, parked_after, parked_after))
        out: dict[str, tuple[int, int | None, int]] = {}
        for rows in await asyncio.gather(*(one(s) for s in range(self._shards.n_shards))):
            for handler, due, oldest, parked in rows:
                d, o, p = out.get(handler, (0, None, 0))
                oldest = int(oldest) if oldest is not None else None
                out[handler] = (d + int(due or 0), min(x for x in (o, oldest) if x is not None)
                                if o is not None or oldest is not None else None, p + int(parked or 0))
        return out

    # ---- the worker loop ----------------------------------------------------------------------

    def start(self, shards: list[int] | None = None) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.work(shards), name="tao-outbox-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def work(self, shards: list[int] | None = None, *, max_idle: float = 1.0) -> None:
        """Poll the shards forever. An idle shard is polled less often (down to once every
        `max_idle` seconds), and at once again when this process writes to it."""
        shards = list(range(self._shards.n_shards)) if shards is None else shards
        loop = asyncio.get_running_loop()
        backoff: dict[int, float] = {}
        while True:
            self._wake.clear()
            ran_any = False
            for shard in shards:
                if self._idle_until.get(shard, 0) > loop.time():
                    continue
                try:
                    ran = await self.run_once(shard)
                except TaoError as exc:
                    log.warning("outbox of shard %s: %s", shard, exc)
                    ran = 0
                if ran:
                    ran_any = True
                    backoff.pop(shard, None)
                else:
                    b = min(max_idle, backoff.get(shard, self._s.poll_interval / 2) * 2)
                    backoff[shard] = b
                    self._idle_until[shard] = loop.time() + b
            if not ran_any:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._s.poll_interval)
                except TimeoutError:
                    pass
