"""The real-time layer: durable per-user event streams, published after commit, and the
subscriptions that read them with no gap and no duplicate. Domains build on this package; the
broker itself (Redis pub/sub, or the embedded in-process bus) is `tao.broker`, reached as
`tao.broker`.

The model
---------
Every user has one *stream*: the `STREAM_EVENT` association list `(user, STREAM_EVENT, event_id)`
on the user's shard, data `{"k": kind, "i": {name: id, ...}}`. It is appended only with
`tao.assoc_append_many`, which gives each new edge a time strictly greater than every edge
already in the list, chosen under the list's lock: the edge time is the event's *position*, and
positions order a stream in commit order. The position, as an opaque string, is the event's
`cursor` (`s<position>`). Events name ids only, never content.

Recording a stored event (a domain write)
-----------------------------------------
    from resolvers.realtime import stream_event

    event = stream_event(ctx.tao, recipients, "message.new", {"thread": tid, "message": mid}, near=tid)
    await ctx.tao.obj_add("MESSAGE", data, owner=tid, jobs=[event.job])   # the cause, same transaction
    await event.deliver(ctx.tao)                                          # after the commit

- `stream_event(tao, user_ids, kind, ids, near=)` allocates the event id and builds `event.job`,
  an outbox job (`realtime.stream_event`, registered by `resolvers.jobs`) for the write's
  `jobs=`: the event is durable with its cause, or absent with it. `near` is an id on the shard
  the write's transaction runs on (its id1 or owner): the job row is then deleted by `deliver`.
- `event.deliver(tao)` appends to each recipient's stream and publishes `{u, c, p, e, k, i}`
  (user, position, previous position, event id, kind, ids) on each user's channel `u:<id>`.
  It never raises and never fails the write: when it cannot finish, or the broker refused a
  publish, the job does it `realtime.redeliver_after_ms` later, idempotently (an existing
  append is not repeated; its event is published again, and subscribers drop duplicates).
- At most `MAX_RECIPIENTS` (256) users per event: group threads, not follower fan-outs.
- Kinds are dotted strings owned by their domain (`"message.new"`, `"message.unsent"`,
  `"receipt.read"`, `"thread.added"`); the layer's own are in `events.py` (`follow.new`,
  `follow.request`, `session.revoked`).

Publishing an ephemeral event (typing)
--------------------------------------
    await publish_ephemeral(ctx.tao, member_ids, "typing", {"thread": tid, "user": viewer})

Published, never stored: no cursor, no replay on resume, may be lost.

Subscribing (a subscription resolver)
-------------------------------------
    async for event in viewer_stream(info.context, after, match=lambda e: e.ids.get("thread") == tid):
        ...  # build the GraphQL event from event.ids through info.context.loaders and privacy

`viewer_stream(ctx, after, match=None)` (`stream.py`) yields `StreamEvent`s of the *viewer's*
stream: first the stored events after the cursor `after` (None: none; live from now), then live
ones, with no gap and no duplicate across the seam (it subscribes before it reads the backlog,
and yields a stored event only past the last position it yielded), re-reading the store when a
live event's `prev` shows a lost message or the broker reconnects. Per subscription the queue is
bounded (`realtime.queue_size`): a slow consumer's socket is closed (1013) with the cursor to
resume from. Before each event it re-checks the session (closing the socket with 4403 when it
has ended) and resets `ctx.loaders`, so whatever the resolver reads is fresh and passes the
viewer's privacy. A cursor too old, or more than `realtime.max_replay` missed events, is a
BAD_USER_INPUT error starting `CURSOR_EXPIRED:` (refetch, then subscribe without `after`).

In GraphQL (`schema/realtime.py`): every event type implements the `StreamEvent` interface
(`cursor: String` (null when ephemeral), `eventId: ID`); a domain registers its types with
`register_event_type(kind, GraphQLType, build)`, where `build(info, event)` returns the
object or None to skip the event (e.g. content the viewer may no longer see). Subscription
fields: `viewerEvents(after:)` (every kind, this layer's); the messages domain adds
`inboxEvents(after:)` and `threadEvents(threadId:, after:)` on the same stream, by `match`.

Streams are bounded: about one append in `realtime.stream_trim_every` enqueues
`realtime.trim_stream`, which keeps the newest `stream_keep` events younger than
`replay_window_days`.

Guarantees (docs/realtime.md): stored events are delivered at least once per stream across
reconnects (resume by cursor), and exactly once on one subscription (deduplicated there by
position); clients deduplicate by `eventId` across subscriptions. Ephemeral events: at most once.
"""

from resolvers.realtime.events import (
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_RATE_LIMITED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TRY_AGAIN_LATER,
    KIND_FOLLOW_REQUEST,
    KIND_NEW_FOLLOWER,
    KIND_SESSION_REVOKED,
    StreamEvent,
    decode_cursor,
    encode_cursor,
    user_channel,
)
from resolvers.realtime.publish import (
    MAX_RECIPIENTS,
    STREAM_EVENT_JOB,
    TRIM_STREAM_JOB,
    PendingEvent,
    publish_appended,
    publish_ephemeral,
    stream_event,
    stream_event_job,
    trim_stream_job,
)
from resolvers.realtime.sessions import SessionWatch, close_socket, ensure_live_session, publish_session_revoked
from resolvers.realtime.stream import (
    STARTED,
    StoreUnavailable,
    give_up,
    read_backlog,
    stream_head,
    viewer_stream,
    with_store_retries,
)

__all__ = [
    "CLOSE_FORBIDDEN", "CLOSE_GOING_AWAY", "CLOSE_RATE_LIMITED", "CLOSE_SLOW_CONSUMER", "CLOSE_TRY_AGAIN_LATER",
    "KIND_FOLLOW_REQUEST", "KIND_NEW_FOLLOWER", "KIND_SESSION_REVOKED", "MAX_RECIPIENTS", "STREAM_EVENT_JOB",
    "TRIM_STREAM_JOB", "PendingEvent", "STARTED", "SessionWatch", "StoreUnavailable", "StreamEvent", "close_socket",
    "give_up", "with_store_retries", "decode_cursor", "encode_cursor", "ensure_live_session", "publish_appended",
    "publish_ephemeral", "publish_session_revoked", "read_backlog", "stream_event", "stream_event_job",
    "trim_stream_job", "stream_head", "user_channel", "viewer_stream",
]
