"""Recording and retracting notifications: the outbox jobs every cause commits with itself.

A cause (a like, a comment, a follow, ...) passes `notify(event)` in its write's `jobs=`, and its
undo passes `retract(event)`: each is durable with its cause or absent with it. A worker then
runs the job, at least once; every step is idempotent:

1. nothing for oneself; nothing if the cause is gone (undone before the job ran);
2. nothing if the recipient blocks, is blocked by, or mutes the actor, or their preference for
   the type is OFF (or FOLLOWING and they do not follow the actor);
3. the group: the notification whose unique key (`notif_group`, per recipient and group key) is
   claimed; the first event of a window creates it (a lost claim race deletes its own object);
4. the actor joins the group's `NOTIF_ACTOR` list (an existing edge is left alone: a retried job
   counts once); a new actor moves the group to the top of the recipient's `NOTIFIED` list and
   records a `notification.new` stream event (live delivery) with that write, and schedules the
   group's push for this batch window (`push.schedule`);
5. the cause is checked again: an undo that ran between 1 and 4 found no actor to remove, so the
   job removes it itself.

The write cost of a group is bounded: one object and one `NOTIFIED` edge per group and window,
plus the actor edge and the list's time per event, whatever the number of events.
"""

from __future__ import annotations

import logging

from resolvers import realtime
from resolvers.job_context import JobContext
from resolvers.notifications import prefs, push
from resolvers.notifications.model import SELF_TYPES, Event, Level, NotificationType, encode
from tao import Tao
from tao.models import now_ms

log = logging.getLogger("taogram.notifications")

RECORD_JOB = "notifications.record"
RETRACT_JOB = "notifications.retract"
GROUP_NS = "notif_group"
KIND_NOTIFICATION = "notification.new"  # stream event ids: {"notification": id, "user": actor}


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


async def cause_exists(tao: Tao, event: Event) -> bool:
    if isinstance(event.cause, tuple):
        id1, atype, id2 = event.cause
        return bool(await tao.assoc_get(id1, atype, [id2]))
    return (await tao.obj_get([event.cause])).get(event.cause) is not None


async def allowed(tao: Tao, event: Event) -> bool:
    """Whether the recipient hears of this actor's event at all (blocks, mutes, preferences)."""
    r, a = event.recipient, event.actor
    if event.type in SELF_TYPES:
        prefs_edge = (await tao.assoc_get_many([prefs.prefs_key(r)]))[prefs.prefs_key(r)]
        return prefs.decode(prefs_edge).level(event.type) is not Level.OFF
    keys = [(r, "BLOCKS", a), (r, "BLOCKED_BY", a), (r, "MUTES", a), (r, "FOLLOWS", a), prefs.prefs_key(r)]
    edges = await tao.assoc_get_many(keys)
    if any(edges[k] is not None for k in keys[:3]):
        return False
    level = prefs.decode(edges[keys[4]]).level(event.type)
    if level is Level.OFF:
        return False
    return level is Level.EVERYONE or edges[keys[3]] is not None


async def group_of(tao: Tao, event: Event, *, create: bool) -> int | None:
    """The notification `event` belongs to (created when `create` and absent)."""
    key = event.group_key()
    found = (await tao.key_get_many(GROUP_NS, [key])).get(key)
    if found or not create:
        return found
    nid = await tao.obj_add("NOTIFICATION", encode(event), owner=event.recipient)
    if await tao.key_claim(GROUP_NS, key, nid):
        return nid
    await tao.obj_delete(nid)  # another worker created the group first: join theirs
    return (await tao.key_get_many(GROUP_NS, [key])).get(key)


async def record(tao: Tao, event: Event) -> int | None:
    """Record the event; returns its notification's id, or None when nobody is told."""
    if event.actor == event.recipient and event.type not in SELF_TYPES:
        return None
    if not await cause_exists(tao, event) or not await allowed(tao, event):
        return None
    nid = await group_of(tao, event, create=True)
    if nid is None:
        return None
    joined = not await tao.assoc_get(nid, "NOTIF_ACTOR", [event.actor])
    if joined:
        await tao.assoc_add(nid, "NOTIF_ACTOR", event.actor, time=event.at)
    listed = (await tao.assoc_get(event.recipient, "NOTIFIED", [nid])).get(nid)
    if joined or listed is None:
        # The list is ordered by event time (a late job never moves a group down).
        await _move_to_top(tao, event, nid, max(event.at, listed.time if listed is not None else 0))
    if not await cause_exists(tao, event):
        await remove_actor(tao, event)
        return None
    return nid


async def _move_to_top(tao: Tao, event: Event, nid: int, time: int) -> None:
    stream = realtime.stream_event(tao, [event.recipient], KIND_NOTIFICATION,
                                   {"notification": nid, "user": event.actor}, near=event.recipient)
    await tao.assoc_add(event.recipient, "NOTIFIED", nid, time=time, jobs=[stream.job])
    await stream.deliver(tao)
    await push.schedule(tao, event, nid)


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


def is_notification_event(kind: str) -> bool:
    return kind == KIND_NOTIFICATION


__all__ = [
    "KIND_NOTIFICATION",
    "RECORD_JOB",
    "RETRACT_JOB",
    "NotificationType",
    "notify",
    "record",
    "record_job",
    "remove_actor",
    "retract",
    "retract_job",
]
