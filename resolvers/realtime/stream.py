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
- Every event it yields runs as a session that is still valid (re-checked per delivered event),
  with fresh loaders (`ctx.reset_loaders()`), so a resolver re-reading the event's ids sees the
  store as it is now, through the viewer's privacy.
- Only the viewer's own stream: the user is `ctx.require_viewer()`, never an argument.
Ephemeral events (no position) are yielded as they come, never replayed; `session.revoked`
is consumed here (it closes the socket when it names this session) and never yielded.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from resolvers.errors import BadInputError
from resolvers.realtime.events import (
    CLOSE_SLOW_CONSUMER,
    KIND_SESSION_REVOKED,
    STREAM_ATYPE,
    StreamEvent,
    decode_cursor,
    encode_cursor,
    user_channel,
)
from resolvers.realtime.sessions import close_socket, ensure_live_session
from tao import Tao
from tao.core import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

DAY_MS = 24 * 3600 * 1000


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
    return [StreamEvent(user_id, a.data.get("k", ""), {k: int(v) for k, v in a.data.get("i", {}).items()},
                        a.time, None, a.id2) for a in reversed(edges)]


async def stream_head(tao: Tao, user_id: int) -> int:
    """The position of the user's newest stored event (0: none yet)."""
    newest = await tao.assoc_time_range(user_id, STREAM_ATYPE, limit=1)
    return newest[0].time if newest else 0


async def viewer_stream(ctx: RequestContext, after: str | None, *,
                        match: Callable[[StreamEvent], bool] | None = None) -> AsyncIterator[StreamEvent]:
    """The viewer's events after the cursor `after` (None: from now on), stored then live; see
    the module docstring. `match` filters (e.g. one thread's events); skipped events still
    advance the position, so they are never replayed to this subscription."""
    viewer = ctx.require_viewer()
    rt = ctx.settings.realtime
    last = decode_cursor(after)
    if last is not None and last < now_ms() - rt.replay_window_days * DAY_MS:
        raise BadInputError(f"CURSOR_EXPIRED: this cursor is older than {rt.replay_window_days:g} days; "
                            "refetch what you show, then subscribe without `after`.")
    tao = ctx.tao
    inbox = _Inbox(rt.queue_size)
    channel = user_channel(viewer)
    await tao.broker.listen(channel, inbox)  # before any read of the store: see the invariants
    try:
        backlog = await read_backlog(tao, viewer, last, rt.max_replay) if last is not None else []
        if last is None:
            last = await stream_head(tao, viewer)
        while True:
            for event in backlog:
                if event.stored:
                    if event.position <= last:
                        continue
                    last = event.position
                if event.kind == KIND_SESSION_REVOKED:
                    if not await ensure_live_session(ctx):
                        return
                    continue
                if match is not None and not match(event):
                    continue
                if not await ensure_live_session(ctx):
                    return
                ctx.reset_loaders()
                yield event
            try:
                event = await inbox.next()
            except SlowConsumer:
                await close_socket(ctx, CLOSE_SLOW_CONSUMER,
                                   f"slow consumer: more than {rt.queue_size} events queued; reconnect with "
                                   f"after: {encode_cursor(last)}")
                return
            if event is None or (event.stored and event.prev is not None and event.prev > last):
                backlog = await read_backlog(tao, viewer, last, rt.max_replay)  # resync, or a gap
            else:
                backlog = [event]
    finally:
        await tao.broker.unlisten(channel, inbox)
