"""A subscriber's view of the viewer's stream: stored events after a cursor, then live ones.

    async for event in viewer_stream(ctx, after, match=lambda e: e.ids.get("thread") == tid):
        yield SomeGraphQLType.from_event(event)   # re-read through ctx.loaders (fresh per event)

Invariants (what `viewer_stream` guarantees on one subscription):
- No gap across the seam: it subscribes to the viewer's channel (and waits until the broker has
  the subscription live) *before* it reads the backlog from the store, so an event committed
  after the read is published to a listener that already exists.
- No duplicate: positions (cursors) strictly increase in commit order within a stream, and it
  yields a stored event only if its position is past the last one it yielded.
- Nothing missed while live: each published event carries the position of the event before it
  (`prev`); one past the last yielded position means a message was lost (Redis restarted, a
  publish timed out), so it re-reads the store from there. The broker's `on_resync` (a
  reconnect) does the same.
- Bounded memory: at most `realtime.queue_size` undelivered messages; past that the client is a
  slow consumer and the socket is closed (1013) with the cursor to resume from.
- Never silently ends: a store read that fails is retried for a few seconds; if the fault
  persists the socket is closed (1013) with the cursor to resume from, never left open with a
  dead subscription.
- Every event it yields runs as a session that is still valid (re-checked per delivered event),
  with fresh loaders (`ctx.reset_loaders()`), so a resolver re-reading the event's ids sees the
  store as it is now, through the viewer's privacy. With `build`, the event is built through
  those fresh loaders while the session is re-read through them too (one batch), and what was
  built is yielded only if the session is live.
- Only the viewer's own stream: the user is `ctx.require_viewer()`, never an argument.
- Tells the transport when its start's work is done: before it first waits for a live event it
  calls what `STARTED` holds in the operation's task (server_ws: give back the operation's place
  in flight, admission.py), so a live subscription holds no place while it waits.
Ephemeral events (no position) are yielded as they come, never replayed; `session.revoked`
is consumed here (it closes the socket when it names this session) and never yielded.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from resolvers.edge_data import StreamEntry
from resolvers.errors import BadInputError, UnavailableError
from resolvers.realtime.events import (
    CLOSE_SLOW_CONSUMER,
    CLOSE_TRY_AGAIN_LATER,
    KIND_SESSION_REVOKED,
    STREAM_ATYPE,
    StreamEvent,
    decode_cursor,
    encode_cursor,
    user_channel,
)
from resolvers.realtime.sessions import close_socket, ensure_live_session
from resolvers.throttle import spend_cost_budget
from tao import ShardUnavailableError, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

DAY_MS = 24 * 3600 * 1000
FUTURE_SLACK_MS = DAY_MS  # how far past the clock a real position can run (a burst of appends, clock skew)
T = TypeVar("T")

# Set by the transport for one operation's task (contextvars are per task): called, once or more,
# when a subscription's stream has done the work of its start and waits for a live event.
STARTED: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("stream_started", default=None)


class SlowConsumer(Exception):
    pass


class _Inbox:
    """A broker listener with a bounded queue; a resync request is a flag, so it never overflows."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: collections.deque[StreamEvent] = collections.deque()
        self.resync = False
        self.overflowed = False
        self._wake = asyncio.Event()

    def on_message(self, message: dict) -> None:
        if len(self.items) >= self.size:
            self.overflowed = True
        else:
            self.items.append(StreamEvent.from_message(message))
        self._wake.set()

    def on_resync(self) -> None:
        self.resync = True
        self._wake.set()

    async def next(self) -> StreamEvent | None:
        """The next message; None when the store must be re-read. Raises SlowConsumer."""
        while True:
            if self.overflowed:
                raise SlowConsumer
            if self.resync:
                self.resync = False
                return None
            if self.items:
                return self.items.popleft()
            self._wake.clear()
            await self._wake.wait()


async def read_backlog(tao: Tao, user_id: int, after: int, limit: int) -> list[StreamEvent]:
    """The user's stored events with position > `after`, oldest first; BadInputError
    (CURSOR_EXPIRED in its message) when more than `limit` were missed."""
    edges = await tao.assoc_time_range(user_id, STREAM_ATYPE, low=after + 1, limit=limit + 1)
    if len(edges) > limit:
        raise BadInputError(f"CURSOR_EXPIRED: more than {limit} events since this cursor; refetch what you "
                            "show, then subscribe without `after`.")
    entries = [(a, StreamEntry.decode(a.data)) for a in reversed(edges)]
    return [StreamEvent(user_id, e.kind, e.ids, a.time, None, a.id2) for a, e in entries]


async def stream_head(tao: Tao, user_id: int) -> int:
    """The position of the user's newest stored event (0: none yet)."""
    newest = await tao.assoc_time_range(user_id, STREAM_ATYPE, limit=1)
    return newest[0].time if newest else 0


# Waits between attempts at a store read that failed (a shard timing out under load, a
# failover): about 4.5 s in all, then the socket is closed with 1013 and the resume cursor.
STORE_RETRY_DELAYS = (0.1, 0.3, 1.0, 3.0)


class StoreUnavailable(Exception):
    pass


async def with_store_retries(fn: Callable[[], Awaitable[T]]) -> T:
    """`await fn()`, again after a transient store fault; StoreUnavailable once it persists."""
    for delay in (*STORE_RETRY_DELAYS, None):
        try:
            return await fn()
        except (ShardUnavailableError, UnavailableError) as exc:  # a shard down or slow (loaders name it
            # UnavailableError); other errors are not transient
            if delay is None:
                raise StoreUnavailable(str(exc)) from exc
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def give_up(ctx: RequestContext, resume_after: int | None, why: str) -> None:
    """Close the socket with 1013 and the cursor to resume from (over HTTP: an UNAVAILABLE error)."""
    resume = f"reconnect with after: {encode_cursor(resume_after)}" if resume_after else "reconnect"
    if getattr(ctx, "socket", None) is None:
        raise UnavailableError(f"{why}; {resume}")
    await close_socket(ctx, CLOSE_TRY_AGAIN_LATER, f"{why}: {resume}")


async def _checked(ctx: RequestContext, build: Callable[[StreamEvent], Awaitable[T | None]],
                   event: StreamEvent) -> tuple[bool, T | None]:
    """The session's check and the event's build, their reads in the same loader batches of
    fresh loaders (fresh at each attempt: a retry after a store fault reads again, never a
    loader's remembered failure): (the session is live, what `build` made)."""
    ctx.reset_loaders()
    live, out = await asyncio.gather(ensure_live_session(ctx, through_loaders=True), build(event),
                                     return_exceptions=True)
    for result in (live, out):  # both finished: no read left running into the next event's loaders
        if isinstance(result, BaseException):
            raise result
    return live, out  # type: ignore[return-value]


async def viewer_stream(ctx: RequestContext, after: str | None, *,
                        match: Callable[[StreamEvent], bool] | None = None,
                        build: Callable[[StreamEvent], Awaitable[T | None]] | None = None,
                        ) -> AsyncIterator[StreamEvent | T]:
    """The viewer's events after the cursor `after` (None: from now on), stored then live; see
    the module docstring. `match` filters (e.g. one thread's events); skipped events still
    advance the position, so they are never replayed to this subscription. `build`: yield what
    it makes of each matching event instead (None: skip the event), made with the event's fresh
    loaders while the session is checked through them, so both reads share one batch (one
    cache round trip less an event); nothing it made is yielded unless the session is live.
    A store fault that outlasts `STORE_RETRY_DELAYS` closes the socket (1013) with the cursor
    to resume from."""
    viewer = ctx.require_viewer()
    rt = ctx.settings.realtime
    cursor = decode_cursor(after)
    if cursor is not None and cursor < now_ms() - rt.replay_window_days * DAY_MS:
        raise BadInputError(f"CURSOR_EXPIRED: this cursor is older than {rt.replay_window_days:g} days; "
                            "refetch what you show, then subscribe without `after`.")
    if cursor is not None and cursor > now_ms() + FUTURE_SLACK_MS:
        # A position is max(now, the newest + 1): never this far past the clock, so no stream
        # gave this cursor. Taken as one, it read past every event (MariaDB: the subscription
        # stayed silent until the clock reached it) or, past a 64-bit integer, failed in the
        # store (SQLite: INTERNAL_SERVER_ERROR).
        raise BadInputError("`after` is not a cursor of your stream (it is past every event): pass the `cursor` "
                            "of the last event you received, or omit it.")
    tao = ctx.tao
    inbox = _Inbox(rt.queue_size)
    channel = user_channel(viewer)
    await tao.broker.listen(channel, inbox)  # before any read of the store: see the invariants
    try:
        try:
            if cursor is not None:
                backlog = await with_store_retries(lambda: read_backlog(tao, viewer, cursor, rt.max_replay))
                # A replay's work grows with the events it read (SQL rows, a session check or a
                # build each: ~1 ms apiece), which the field's static cost does not see: a point
                # each, from the viewer's cost budget (ThrottledError when not there).
                await spend_cost_budget(tao, ctx.settings.limits, ctx.cost_key, len(backlog),
                                        f"replaying {len(backlog)} events since `after`")
                last = cursor
            else:
                backlog = []
                last = await with_store_retries(lambda: stream_head(tao, viewer))
        except StoreUnavailable:
            await give_up(ctx, cursor, "the store is unavailable")
            return
        while True:
            for event in backlog:
                if event.position is not None and event.position <= last:  # stored, and seen already
                    continue
                wanted = event.kind != KIND_SESSION_REVOKED and (match is None or match(event))
                out: StreamEvent | T | None = event
                try:
                    if build is not None and wanted:
                        live, out = await with_store_retries(functools.partial(_checked, ctx, build, event))
                    else:
                        live = await with_store_retries(lambda: ensure_live_session(ctx))
                except StoreUnavailable:  # resume at this event (positions are integers)
                    await give_up(ctx, event.position - 1 if event.position is not None else last,
                                  "the store is unavailable")
                    return
                if not live:
                    return
                if event.position is not None:
                    last = event.position
                if not wanted or out is None:
                    continue
                if build is None:
                    ctx.reset_loaders()
                yield out
            started = STARTED.get()
            if started is not None:  # the start's work (listen, the head or backlog read) is done: waiting now
                started()
            try:
                live_event = await inbox.next()
            except SlowConsumer:
                await close_socket(ctx, CLOSE_SLOW_CONSUMER,
                                   f"slow consumer: more than {rt.queue_size} events queued; reconnect with "
                                   f"after: {encode_cursor(last)}")
                return
            if live_event is None or (live_event.stored and live_event.prev is not None and live_event.prev > last):
                try:  # resync, or a gap: what was missed comes from the store
                    backlog = await with_store_retries(
                        functools.partial(read_backlog, tao, viewer, last, rt.max_replay))
                except StoreUnavailable:
                    await give_up(ctx, last, "the store is unavailable")
                    return
            else:
                backlog = [live_event]
    finally:
        await tao.broker.unlisten(channel, inbox)
