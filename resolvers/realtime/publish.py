"""Recording and publishing events: a domain write's stream events, and ephemeral events.

A stored event is durable with its cause and published after the commit:

    event = stream_event(ctx.tao, [recipient_id], "follow.new", {"user": viewer}, near=viewer)
    await ctx.tao.assoc_add(viewer, "FOLLOWS", recipient_id, jobs=[event.job])  # same transaction
    await event.deliver(ctx.tao)                                                # after the commit

`event.job` is an outbox job (`realtime.stream_event`) written in the cause's transaction, so
the event exists if and only if the cause committed. `deliver()` does the job at once: it
appends the event to each user's stream (`assoc_append_many` on the user's shard: the edge's
time is the event's cursor, in commit order) and publishes `{u, c, p, e, k, i}` on each user's
channel, then deletes the job row. It never raises: if it cannot finish (a shard down, a crash),
the job comes due `realtime.redeliver_after_ms` later and a worker does the same, idempotently
(an append that exists already is not appended again). A publish the broker refused (Redis down,
a timeout) also leaves the job: it publishes every recipient's event again until the broker
takes them all, and subscribers drop positions they already have. Subscribers also find missed
events in the store (resync after a reconnect, the `prev` gap check, resume by cursor).

`near` is an id on the shard the write runs on (its id1, or its owner): the job row lives
there, and `deliver` can only delete the row when it knows that shard (otherwise the delayed
job still runs, as a no-op).

An ephemeral event (typing) is published and never stored: `await publish_ephemeral(tao, user_ids,
kind, ids)`. It has no cursor, is not replayed on resume, and may be lost; never use it for
anything a client must not miss.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass

from resolvers.edge_data import stream_event_data
from resolvers.job_context import JobContext
from resolvers.realtime.events import STREAM_ATYPE, StreamEvent, user_channel
from tao import Tao, shard_of
from tao.models import Appended, now_ms

log = logging.getLogger("taogram.realtime")

STREAM_EVENT_JOB = "realtime.stream_event"
TRIM_STREAM_JOB = "realtime.trim_stream"
MAX_RECIPIENTS = 256  # one event, one job: a group thread's members, never a follower fan-out


@dataclass
class PendingEvent:
    """A stored event not yet committed: pass `job` in the write's `jobs=`, then `deliver`."""

    event_id: int
    user_ids: list[int]
    kind: str
    ids: dict[str, int]
    job: tuple

    def appends(self) -> list[tuple]:
        """The stream appends of this event, for a writer that commits them with its own edges
        (`Tao.assoc_add_and_append`) and then calls `published`."""
        return stream_appends(self.event_id, self.user_ids, self.kind, self.ids)

    async def published(self, tao: Tao, appended: list[Appended], *, done_jobs: tuple[int, ...] = ()) -> None:
        """After the writer committed `appends()` (`appended`: what they did): publish, and
        delete the event's job and `done_jobs` (see `deliver`). Never raises."""
        shard = shard_of(self.event_id)
        try:
            _, published = await publish_appended(tao, appended, self.kind, self.ids)
        except Exception as exc:  # the outbox job publishes it again; the write is acknowledged
            log.info("stream event %s left to its job: %s", self.event_id, exc)
            published = False
        await tao.outbox.delete_soon(shard, *done_jobs, *([self.event_id] if published else []))

    async def deliver(self, tao: Tao, *, done_jobs: tuple[int, ...] = ()) -> list[StreamEvent]:
        """Append and publish now (after the cause committed). Never raises; returns the events
        appended by this call (empty if the job had done it, or on failure). `done_jobs`: ids of
        other jobs on the event's shard that the caller has done; they are deleted with the
        event's own job, in one statement (and even if this delivery fails)."""
        shard = shard_of(self.event_id)
        try:
            events, published = await append_and_publish(tao, self.event_id, self.user_ids, self.kind, self.ids)
        except Exception as exc:  # the outbox job retries it; the write is acknowledged
            log.info("stream event %s left to its job: %s", self.event_id, exc)
            await tao.outbox.delete_soon(shard, *done_jobs)
            return []
        # Unpublished: the job publishes it again, later (subscribers deduplicate).
        await tao.outbox.delete_soon(shard, *done_jobs, *([self.event_id] if published else []))
        return events


def stream_event(tao: Tao, user_ids: Iterable[int], kind: str, ids: dict[str, int], *,
                 near: int | None = None) -> PendingEvent:
    """A durable event for each of `user_ids` (their streams), caused by a write on `near`'s shard."""
    users = list(dict.fromkeys(int(u) for u in user_ids))
    if not users or len(users) > MAX_RECIPIENTS:
        raise ValueError(f"a stream event goes to 1..{MAX_RECIPIENTS} users, got {len(users)}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ids.values()):
        raise ValueError("an event names ids only (ints)")
    event_id = tao.ids.next_id(shard_of(near) if near is not None else 0)
    payload = {"event": event_id, "users": users, "kind": kind, "ids": dict(ids)}
    job = (STREAM_EVENT_JOB, payload, tao.settings.realtime.redeliver_after_ms, event_id)
    return PendingEvent(event_id, users, kind, dict(ids), job)


def stream_appends(event_id: int, user_ids: list[int], kind: str, ids: dict[str, int]) -> list[tuple]:
    """The `assoc_append_many` edges that put the event in each user's stream."""
    data = stream_event_data(kind, ids)
    return [(u, STREAM_ATYPE, event_id, data) for u in user_ids]


async def append_and_publish(tao: Tao, event_id: int, user_ids: list[int], kind: str, ids: dict[str, int], *,
                             republish: bool = False) -> tuple[list[StreamEvent], bool]:
    """Append the event to each user's stream (idempotent), then publish the new appends (with
    `republish`, the existing ones too). Returns the events published and whether every
    publish succeeded."""
    appended = await tao.assoc_append_many(stream_appends(event_id, user_ids, kind, ids))
    return await publish_appended(tao, appended, kind, ids, republish=republish)


async def publish_appended(tao: Tao, appended: list[Appended], kind: str, ids: dict[str, int], *,
                           republish: bool = False) -> tuple[list[StreamEvent], bool]:
    """Publish the stream appends `appended` (of one event) that are new (with `republish`, all)."""
    events = [StreamEvent(a.assoc.id1, kind, ids, a.assoc.time, a.prev, a.assoc.id2)
              for a in appended if a.new or republish]
    published = await tao.broker.publish_many((user_channel(e.user_id), e.to_message()) for e in events)
    rt = tao.settings.realtime
    for e in events:  # streams only grow: about one append in stream_trim_every trims its stream
        if random.randrange(max(1, rt.stream_trim_every)) == 0:
            try:
                await tao.enqueue(e.user_id, TRIM_STREAM_JOB, {"user": e.user_id})
            except Exception as exc:  # best effort (a later append rolls again): never fail the delivery
                log.warning("trim of user %s's stream not enqueued: %s", e.user_id, exc)
    return events, published == len(events)


async def trim_stream_job(job: JobContext, payload: dict) -> None:
    """Keep a user's stream bounded: its newest `stream_keep` events younger than the replay window."""
    tao = job.tao
    rt = job.settings.realtime
    before = now_ms() - int(rt.replay_window_days * 24 * 3600 * 1000)
    await tao.assoc_trim(int(payload["user"]), STREAM_ATYPE, keep=max(rt.stream_keep, rt.max_replay + 1),
                         before=before)


async def stream_event_job(job: JobContext, payload: dict) -> None:
    """The outbox handler: the writer's `deliver` did not finish (or a publish failed); append
    what is missing and publish every recipient's event again, until every publish succeeds
    (raising makes the outbox retry with backoff). Subscribers drop what they already have."""
    tao = job.tao
    _, published = await append_and_publish(tao, int(payload["event"]), [int(u) for u in payload["users"]],
                                            str(payload["kind"]), {k: int(v) for k, v in payload["ids"].items()},
                                            republish=True)
    if not published:
        raise RuntimeError("the broker did not take every publish; retrying")


async def publish_ephemeral(tao: Tao, user_ids: Iterable[int], kind: str, ids: dict[str, int]) -> int:
    """Publish an event that is never stored (typing). Best effort; returns how many were published."""
    events = [StreamEvent(int(u), kind, dict(ids)) for u in dict.fromkeys(user_ids)]
    return await tao.broker.publish_many((user_channel(e.user_id), e.to_message()) for e in events)
