"""Recording and retracting notifications: jobs every cause commits with itself, done right after
the commit by the writer, and by a worker only when the writer could not.

A cause (a like, a comment, a follow, ...) passes `notify(event)` in its write's `jobs=`, and its
undo passes `retract(event)`: each is durable with its cause or absent with it. A writer that can
do the work itself wraps them with `promptly(tao, jobs, near=id1)`: the rows then commit due
`notifications.record_grace_ms` later under ids the writer knows, the writer records (or
retracts) right after its commit and deletes the rows; a writer that dies, or fails, first leaves
them to a worker (the realtime layer's `deliver` pattern, `resolvers/realtime/publish.py`).
Either way a record runs at least once, and every step is idempotent:

1. nothing for oneself; nothing if the cause is gone (undone before the record ran);
2. nothing if the recipient blocks, is blocked by, or mutes the actor, or their preference for
   the type is OFF (or FOLLOWING and they do not follow the actor);
3. the group: the notification whose unique key (`notif_group`, per recipient and group key) is
   claimed; the first event of a window creates it (a lost claim race deletes its own object and
   joins the winner's, never "no group": see `group_of`);
4. new actors join the group's `NOTIF_ACTOR` list (an existing edge is left alone: a retried
   record counts once) and move the group to the top of the recipient's `NOTIFIED` list, with a
   `notification.new` stream event (live delivery): the actor edges, the list edge and the
   event's job are one transaction on the recipient's shard (the group lives there); then the
   group's push for this batch window is scheduled (`push.schedule`);
5. the causes are checked again: an undo that ran between 1 and 4 found no actor to remove, so
   the record removes it itself.

**Coalescing.** Records of one group in one process run one batch at a time: events that arrive
while a batch of their group is being written wait for it and then go together, as one batch
(at most `MAX_BATCH` events). A viral post's burst of likes is therefore a few batches, each
with one read of each kind, one write transaction and one stream event, not one of each per
like; with no burst a batch is one event and waits for nothing.

The write cost of a group is bounded: one object and one `NOTIFIED` edge per group and window,
plus the actor edge per actor, whatever the number of events.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from resolvers import realtime
from resolvers.job_context import JobContext
from resolvers.notifications import prefs, push
from resolvers.notifications.model import SELF_TYPES, Event, Level, NotificationType, encode
from tao import ConflictError, Tao, shard_of
from tao.models import now_ms

log = logging.getLogger("taogram.notifications")

RECORD_JOB = "notifications.record"
RETRACT_JOB = "notifications.retract"
GROUP_NS = "notif_group"
KIND_NOTIFICATION = "notification.new"  # stream event ids: {"notification": id, "user": actor}
MAX_BATCH = 500  # events of one group written together (a batch's edges stay one small transaction)


def notify(event: Event) -> tuple[str, dict]:
    """The job recording `event`, for the cause's `jobs=`."""
    return (RECORD_JOB, event.payload())


def retract(event: Event) -> tuple[str, dict]:
    """The job removing `event`'s actor from its notification, for the undo's `jobs=`."""
    return (RETRACT_JOB, event.payload())


async def record_job(job: JobContext, payload: dict) -> None:
    await record(job.tao, Event.from_payload(payload))


async def retract_job(job: JobContext, payload: dict) -> None:
    await remove_actor(job.tao, Event.from_payload(payload))


# ---- done by the writer, the job as the fallback -------------------------------------------------

@dataclass
class Prompt:
    """A cause's notification jobs, to be done by its writer right after the commit: pass `jobs`
    in the cause's `jobs=`, then `await deliver(tao)`."""

    jobs: list[tuple] = field(default_factory=list)

    async def deliver(self, tao: Tao) -> None:
        """Record (or retract) each event now and delete its job row. Never raises: whatever
        fails is left to the job, due `record_grace_ms` after the commit."""
        await asyncio.gather(*(self._one(tao, *job) for job in self.jobs))

    @staticmethod
    async def _one(tao: Tao, handler: str, payload: dict, _delay: int, job_id: int) -> None:
        try:
            event = Event.from_payload(payload)
            if handler == RECORD_JOB:
                await record(tao, event, fresh=True)
            else:
                await remove_actor(tao, event)
        except Exception as exc:  # the job does it; the cause is acknowledged
            log.info("notification %s left to its job %s: %s", handler, job_id, exc)
            return
        await tao.outbox.delete(shard_of(job_id), job_id)


def promptly(tao: Tao, jobs: Sequence[tuple], *, near: int) -> Prompt:
    """`jobs` (from `causes`) as the writer's to do: each row is due `record_grace_ms` later and
    named by an id on `near`'s shard (the shard the cause's write runs on), so the writer can
    delete it once done."""
    grace = tao.settings.notifications.record_grace_ms
    shard = shard_of(near)
    return Prompt([(handler, payload, grace, tao.ids.next_id(shard)) for handler, payload, *_ in jobs])


# ---- recording ----------------------------------------------------------------------------------

async def cause_exists(tao: Tao, event: Event) -> bool:
    return bool(await _causes_exist(tao, [event]))


async def _causes_exist(tao: Tao, events: list[Event]) -> set[int]:
    """The actors of `events` whose cause still exists (one batched read per kind of cause)."""
    edges = [e for e in events if isinstance(e.cause, tuple)]
    objs = [e for e in events if not isinstance(e.cause, tuple)]
    out: set[int] = set()
    if edges:
        found = await tao.assoc_get_many([e.cause for e in edges])  # type: ignore[misc]
        out |= {e.actor for e in edges if found[e.cause] is not None}  # type: ignore[index]
    if objs:
        got = await tao.obj_get([e.cause for e in objs])  # type: ignore[misc]
        out |= {e.actor for e in objs if e.cause in got}
    return out


async def _allowed(tao: Tao, recipient: int, ntype: NotificationType, actors: list[int]) -> set[int]:
    """The actors the recipient hears of at all (blocks, mutes, preferences): one batched read."""
    per = [[(recipient, "BLOCKS", a), (recipient, "BLOCKED_BY", a), (recipient, "MUTES", a),
            (recipient, "FOLLOWS", a)] for a in actors]
    edges = await tao.assoc_get_many([k for keys in per for k in keys] + [prefs.prefs_key(recipient)])
    level = prefs.decode(edges[prefs.prefs_key(recipient)]).level(ntype)
    if level is Level.OFF:
        return set()
    if ntype in SELF_TYPES:  # about the recipient's own account: only the level applies
        return set(actors)
    return {a for a, keys in zip(actors, per)
            if not any(edges[k] is not None for k in keys[:3])
            and (level is Level.EVERYONE or edges[keys[3]] is not None)}


async def allowed(tao: Tao, event: Event) -> bool:
    """Whether the recipient hears of this actor's event at all (blocks, mutes, preferences)."""
    return bool(await _allowed(tao, event.recipient, event.type, [event.actor]))


async def group_of(tao: Tao, event: Event, *, create: bool) -> int | None:
    """The notification `event` belongs to (created when `create` and absent).

    Two first events of a group recorded at once by two processes (each coalesces only its own)
    both create a notification and claim the key: the loser deletes its own and joins the
    winner's, which the lost claim leaves in the cache (`key_claim`). A winner it still cannot
    read is a conflict (the record is retried), never "no group": that would drop its actor."""
    key = event.group_key()
    found = (await tao.key_get_many(GROUP_NS, [key])).get(key)
    if found or not create:
        return found
    nid = await tao.obj_add("NOTIFICATION", encode(event), owner=event.recipient)
    if await tao.key_claim(GROUP_NS, key, nid):
        return nid
    await tao.obj_delete(nid)  # another worker created the group first: join theirs
    winner = (await tao.key_get_many(GROUP_NS, [key])).get(key)
    if not winner:
        raise ConflictError(f"notification group {key!r} was claimed by another writer but cannot be read yet; "
                            "the record is retried")
    return int(winner)


async def record(tao: Tao, event: Event, *, fresh: bool = False) -> int | None:
    """Record the event; returns its notification's id, or None when nobody is told. Events of
    one group that arrive together are written together (`_Batches`). `fresh`: the caller has
    just committed the cause, so it is not read before the write (it is after, as always)."""
    if event.actor == event.recipient and event.type not in SELF_TYPES:
        return None
    return await _batches(tao).submit(event, fresh)


async def record_many(tao: Tao, events: list[Event], *, fresh: frozenset[int] = frozenset()) -> dict[int, int | None]:
    """Record events of one group (same recipient and group key) as one batch: {actor: the
    notification's id, or None when that actor's event tells nobody}. The causes of the
    actors in `fresh` were just committed by the caller: only the check after the write
    (which an undo in between needs) reads them."""
    latest: dict[int, Event] = {}
    for e in events:  # one actor, several events (a retried job): one membership, its latest time
        if (e.actor != e.recipient or e.type in SELF_TYPES) and (e.actor not in latest or e.at > latest[e.actor].at):
            latest[e.actor] = e
    out: dict[int, int | None] = dict.fromkeys((e.actor for e in events), None)
    if not latest:
        return out
    first = next(iter(latest.values()))
    live = set(fresh) & set(latest)
    live |= await _causes_exist(tao, [e for a, e in latest.items() if a not in live])
    ok = await _allowed(tao, first.recipient, first.type, [a for a in latest if a in live])
    todo = [e for a, e in latest.items() if a in ok]
    if not todo:
        return out
    nid = await group_of(tao, first, create=True)
    if nid is None:
        return out
    members_and_listed = await tao.assoc_get_many([(nid, "NOTIF_ACTOR", e.actor) for e in todo]
                                                  + [(first.recipient, "NOTIFIED", nid)])
    members = {a for (_, atype, a), edge in members_and_listed.items() if edge is not None and atype == "NOTIF_ACTOR"}
    listed = members_and_listed[(first.recipient, "NOTIFIED", nid)]
    joined = [e for e in todo if e.actor not in members]
    if joined or listed is None:
        await _write(tao, first.recipient, nid, joined, max(joined or todo, key=lambda e: e.at),
                     listed.time if listed is not None else 0)
    for e in todo:
        out[e.actor] = nid
    still = await _causes_exist(tao, joined) if joined else set()
    # undone while we wrote: its undo found no actor to remove, so we remove it
    for e in (e for e in joined if e.actor not in still):
        await remove_actor(tao, e)
        out[e.actor] = None
    return out


async def _write(tao: Tao, recipient: int, nid: int, joined: list[Event], latest: Event,
                 listed_time: int) -> None:
    """The new actors, the group's move to the top and its stream event: one transaction on the
    recipient's shard (the group's), then the event's delivery and the push's scheduling."""
    # The list is ordered by event time (a late record never moves a group down).
    time = max(listed_time, latest.at)
    stream = realtime.stream_event(tao, [recipient], KIND_NOTIFICATION,
                                   {"notification": nid, "user": latest.actor}, near=recipient)
    edges: list[tuple] = [(nid, "NOTIF_ACTOR", e.actor, e.at) for e in joined]
    edges.append((recipient, "NOTIFIED", nid, time))
    await tao.assoc_add_many(edges, jobs_by_shard={tao.shard(recipient): [stream.job]})
    await stream.deliver(tao)
    await push.schedule(tao, latest, nid)


async def remove_actor(tao: Tao, event: Event) -> None:
    """Undo: the actor leaves the group; a group with no actor leaves the recipient's list."""
    nid = await group_of(tao, event, create=False)
    if nid is None:
        return
    await tao.assoc_delete(nid, "NOTIF_ACTOR", event.actor)
    if await tao.assoc_count(nid, "NOTIF_ACTOR") == 0:
        await tao.assoc_delete(event.recipient, "NOTIFIED", nid)
        # an actor that joined meanwhile lists it again (its record saw it listed, then we removed it)
        if await tao.assoc_count(nid, "NOTIF_ACTOR") > 0:
            await tao.assoc_add(event.recipient, "NOTIFIED", nid, time=now_ms())


# ---- coalescing: one batch of a group at a time per process -------------------------------------

@dataclass
class _Queue:
    waiting: list[tuple[Event, bool, asyncio.Future]] = field(default_factory=list)
    runner: asyncio.Task | None = None


class _Batches:
    """Per process and store: for each group key, the events waiting for the batch in flight."""

    def __init__(self, tao: Tao) -> None:
        self._tao = weakref.ref(tao)
        self._queues: dict[str, _Queue] = {}

    async def submit(self, event: Event, fresh: bool) -> int | None:
        key = event.group_key()
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _Queue()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        q.waiting.append((event, fresh, fut))
        if q.runner is None:
            q.runner = asyncio.create_task(self._run(key, q), name=f"notification-batch:{key[:24]}")
        return await asyncio.shield(fut)  # a cancelled caller leaves its event in the batch

    async def _run(self, key: str, q: _Queue) -> None:
        try:
            while q.waiting:
                batch, q.waiting = q.waiting[:MAX_BATCH], q.waiting[MAX_BATCH:]
                tao = self._tao()
                try:
                    if tao is None:
                        raise RuntimeError("the store was closed")
                    done = await record_many(tao, [e for e, _, _ in batch],
                                             fresh=frozenset(e.actor for e, new, _ in batch if new))
                except Exception as exc:  # each caller raises (a job retries; `deliver` leaves it to the job)
                    for _, _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                for e, _, f in batch:
                    if not f.done():
                        f.set_result(done.get(e.actor))
        finally:
            for _, _, f in q.waiting:  # only if this task was cancelled
                if not f.done():
                    f.set_exception(RuntimeError("notification batch cancelled"))
            self._queues.pop(key, None)


_BATCHES: weakref.WeakKeyDictionary[Tao, _Batches] = weakref.WeakKeyDictionary()


def _batches(tao: Tao) -> _Batches:
    b = _BATCHES.get(tao)
    if b is None:
        b = _BATCHES[tao] = _Batches(tao)
    return b


def is_notification_event(kind: str) -> bool:
    return kind == KIND_NOTIFICATION


__all__ = [
    "KIND_NOTIFICATION",
    "RECORD_JOB",
    "RETRACT_JOB",
    "NotificationType",
    "Prompt",
    "notify",
    "promptly",
    "record",
    "record_job",
    "record_many",
    "remove_actor",
    "retract",
    "retract_job",
]
