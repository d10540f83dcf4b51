"""Long-lived connections run as a session that is still valid, or not at all.

A WebSocket authenticates once (`connection_init`), then lives for hours; a session can end
meanwhile (`logOut`, `logOut(allSessions)`, expiry). Three checks, each closing the socket with
4403 and a reason (`close_socket`) when the session is gone:
- at every operation's start (the server's WebSocket handler calls `ensure_live_session`);
- before every event a subscription delivers (`viewer_stream` calls it; for an event it builds,
  through the event's fresh loaders, in the same batch as the event's objects);
- promptly when it ends: `logOut` publishes `session.revoked` on the user's channel after
  deleting the sessions (`publish_session_revoked`), and each socket watches its user's channel
  (`SessionWatch`, started by the server after `connection_ack`), re-checking on that event, on
  a broker resync, and every `realtime.session_check_seconds` (the expiry backstop, and the
  backstop when the broker was down while the log-out happened).
A check is one fresh cached read of the SESSION object (`accounts.session_problem`).

`ctx.socket` is the transport's connection (server.py): anything with `async close(code,
reason)`; None over HTTP, where the request itself was authenticated at its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from resolvers.accounts import session_problem, session_record_problem
from resolvers.errors import AuthenticationError
from resolvers.realtime.events import CLOSE_FORBIDDEN, KIND_SESSION_REVOKED, user_channel
from resolvers.realtime.publish import publish_ephemeral
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

log = logging.getLogger("taogram.realtime")


async def close_socket(ctx: RequestContext, code: int, reason: str) -> None:
    """Close the operation's WebSocket (no-op over HTTP)."""
    socket = getattr(ctx, "socket", None)
    if socket is not None:
        await socket.close(code, reason)


async def ensure_live_session(ctx: RequestContext, *, through_loaders: bool = False) -> bool:
    """True if the context is anonymous or its session still authorizes the viewer. Otherwise
    close the socket with 4403 and the reason, and answer False (over HTTP: raise
    AuthenticationError, as the request would have been refused). `through_loaders`: read the
    session through `ctx.loaders`, which the caller has just reset (as fresh as a direct read),
    so the read shares a batch with what the caller loads at the same time (a delivered
    event's objects: one cache round trip for both)."""
    if ctx.viewer_id is None or ctx.session_id is None:
        return True
    if through_loaders:
        problem = session_record_problem(await ctx.loaders.object_by_id.load(ctx.session_id), ctx.viewer_id)
    else:
        problem = await session_problem(ctx.tao, ctx.session_id, ctx.viewer_id)
    if problem is None:
        return True
    if getattr(ctx, "socket", None) is None:
        raise AuthenticationError(problem)
    await close_socket(ctx, CLOSE_FORBIDDEN, problem)
    return False


async def publish_session_revoked(tao: Tao, user_id: int, session_ids: list[int]) -> None:
    """After the sessions are deleted: tell the user's live sockets to re-check now."""
    for sid in session_ids:
        await publish_ephemeral(tao, [user_id], KIND_SESSION_REVOKED, {"session": sid})


class SessionWatch:
    """One per authenticated socket: re-checks its session on `session.revoked`, on a broker
    resync and periodically; the check closes the socket when the session is gone."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self._kick = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._channel: str | None = None

    async def start(self) -> None:
        if self.ctx.viewer_id is None:
            return
        self._channel = user_channel(self.ctx.viewer_id)
        await self.ctx.tao.broker.listen(self._channel, self)
        # A check once listening: a log-out whose `session.revoked` was published between the
        # handshake's read of the session and this listen reached no one, and the socket stayed
        # open until the periodic check (one cached read a connection more).
        self._kick.set()
        self._task = asyncio.create_task(self._run(), name="session-watch")

    def on_message(self, message: dict) -> None:
        if message.get("k") == KIND_SESSION_REVOKED and (message.get("i") or {}).get("session") == self.ctx.session_id:
            self._kick.set()

    def on_resync(self) -> None:
        self._kick.set()

    async def _run(self) -> None:
        period = self.ctx.settings.realtime.session_check_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), period)
            self._kick.clear()
            try:
                if not await ensure_live_session(self.ctx):
                    return
            except Exception as exc:  # a shard down: keep the socket, check again later
                log.info("session check failed, will retry: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._channel is not None:
            await self.ctx.tao.broker.unlisten(self._channel, self)
