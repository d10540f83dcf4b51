"""The `graphql-transport-ws` connection: strawberry's protocol handler with taogram's policies.

What each connection keeps true (resolvers.realtime holds the domain half):
- It runs as a session that is still valid: the session is re-read at every operation's start,
  watched while the socket lives (`SessionWatch`: a `session.revoked` event, a broker resync,
  every `realtime.session_check_seconds`), and re-checked before each delivered event; when it
  has ended the socket is closed with 4403 and the reason.
- Bounded: at most `realtime.max_subscriptions` live operations, and at most
  `realtime.max_subscriptions_per_user` of one user over all their sockets on every server
  process, holding at most `realtime.max_operation_chars_per_user` characters of text in all
  (`UserOperations`, counted in `tao.holds`), client messages limited by a
  token bucket (`messages_per_second`, `message_burst`; past it: close 4429), and a bounded
  queue per subscription (a slow consumer is closed with 1013 and its resume cursor).
- Well-formed messages only: a client message whose shape the protocol does not allow (not an
  object, an `id` that is not a string, a `subscribe` without a string `payload.query`, ...) closes
  the socket with 4400 and the reason, before any of it is used (`message_problem`).
- A client that does not read is dropped: a send or a close that cannot finish within
  `realtime.send_timeout_seconds` (the socket's buffers full) aborts the connection, so the
  subscription, its broker listener and a process's shut-down never wait on that client.
- Orderly shut-down: `close_all(app)` (the app's on_shutdown) closes every live socket with
  1001 "server shutting down", so clients reconnect (to another process) and resume by cursor.
- Load shedding counts what runs on the socket (admission.py): each operation takes a place in
  flight in its own task before it runs (waiting at most `server.admission_wait_ms`, as an HTTP
  request does); refused, it gets an `error` message with code `UNAVAILABLE` and runs nothing,
  and the socket stays open. The place is given back at the operation's first message (a
  query's or mutation's result, a subscription's first event, an error) or when a subscription
  first waits for a live event (`resolvers.realtime.STARTED`), whichever comes first, and at the
  latest when its task ends (`Place`): a live subscription holds none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from typing import Any

from aiohttp import web
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler

from admission import BUSY_MESSAGE, SHEDDER_KEY, Place
from config import RealtimeSettings
from config.observability.metrics import REQUESTS_SHED, WEBSOCKETS_OPEN, OperationNames
from config.observability.requests import WSOperation, observe_ws_operation
from resolvers.errors import UnavailableError
from resolvers.passwords import LEND_PLACE
from resolvers.realtime import (
    CLOSE_GOING_AWAY,
    CLOSE_RATE_LIMITED,
    CLOSE_SLOW_CONSUMER,
    STARTED,
    SessionWatch,
    ensure_live_session,
)
from tao import ShardUnavailableError
from tao.holds import Hold, Holds, LocalHolds

log = logging.getLogger("taogram.server")

SOCKETS_KEY = web.AppKey("websockets", weakref.WeakSet)


class UserOperations:
    """Each user's live operations over all their sockets on every server process: how many, and
    the characters of text they hold (`realtime.max_subscriptions_per_user`,
    `max_operation_chars_per_user`). A live operation holds its message's text for as long as it
    runs: strawberry keeps the query and the variables, the parsed document its source and
    tokens, and every frame repeats the id. Counted by the store's shared holds (`tao.holds`:
    in Redis when the broker is Redis, so N processes give one cap, not N; leased, so a process
    that dies frees its users within `broker.hold_lease_seconds`; in process memory in the
    embedded default)."""

    def __init__(self, holds: Holds) -> None:
        self.holds = holds

    async def take(self, viewer: int, chars: int, rt: RealtimeSettings) -> Hold | str:
        """The operation's hold, or why it is refused."""
        got = await self.holds.acquire(f"ws-ops:{viewer}", chars, rt.max_subscriptions_per_user,
                                       rt.max_operation_chars_per_user)
        if got.hold is not None:
            return got.hold
        if got.count >= rt.max_subscriptions_per_user:
            return ("Too many live operations for this account (over all its sockets and servers): complete some "
                    "(or close other sockets), then retry.")
        return ("The live operations of this account hold too much text (queries, variables, ids): complete some, "
                "or send shorter ones.")

    def hold_until_done(self, hold: Hold, task: asyncio.Task) -> None:
        """Until the operation's task is done: a done callback, so the hold is given back however
        the task ends (completed, failed, or cancelled before it ran)."""
        task.add_done_callback(lambda _: self.holds.release(hold))


def operation_chars(message: dict) -> int:
    """The characters of text a `subscribe` message's operation holds while it runs: its id,
    query, operation name (strawberry keeps it, apart from the query that contains it) and
    variables (its shape checked by `message_problem` already)."""
    payload = message["payload"]
    variables = payload.get("variables")
    return (len(message["id"]) + len(payload["query"]) + len(payload.get("operationName") or "")
            + (len(json.dumps(variables)) if variables else 0))


CLOSE_BAD_MESSAGE = 4400  # graphql-transport-ws: an invalid message closes the socket with 4400

_PAYLOAD_FIELDS = (("variables", dict, "an object"), ("extensions", dict, "an object"),
                   ("operationName", str, "a string"))


def message_problem(message: object) -> str | None:
    """Why a client message does not have the shape graphql-transport-ws gives it (None: it has).
    strawberry's handler reads these fields unchecked: a list or a number where it expects an
    object killed the connection's handler (an abnormal 1006 close), and a `query` or an
    `operationName` of the wrong type crashed the operation's task silently while its id stayed
    registered, using one of the socket's `max_subscriptions` slots until the socket closed."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message is a JSON object with a string `type`"
    kind = message["type"]
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return f"a `{kind}` message needs a string `id`"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return "a `subscribe` message needs `payload.query`, a string"
        for name, kinds, what in _PAYLOAD_FIELDS:
            if payload.get(name) is not None and not isinstance(payload[name], kinds):
                return f"`payload.{name}` must be {what} or null"
    return None


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class SocketHandle:
    """What the domain sees of the socket (`ctx.socket`): it can close it with a reason."""

    def __init__(self, handler: TaogramWSHandler) -> None:
        self._handler = weakref.ref(handler)

    async def close(self, code: int, reason: str) -> None:
        handler = self._handler()
        if handler is not None:
            await handler.close(code, reason)


class TaogramWSHandler(BaseGraphQLTransportWSHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rt: RealtimeSettings = self.context.settings.realtime
        self.max_subscriptions_per_connection = rt.max_subscriptions
        self._bucket = _TokenBucket(rt.messages_per_second, rt.message_burst)
        self._send_timeout = rt.send_timeout_seconds
        self._watch: SessionWatch | None = None
        self._closed = False
        self._socket_released = False
        self._shutting_down: asyncio.Future | None = None  # referenced while it runs (see shutdown)
        self._observed: dict[str, WSOperation] = {}  # operation id -> its observation (one log line each)
        self.context.socket = SocketHandle(self)
        request = getattr(self.websocket, "request", None)
        tao = getattr(self.context, "tao", None)
        self._by_user = UserOperations(tao.holds if tao is not None else LocalHolds())
        if request is not None:
            request.app[SOCKETS_KEY].add(self)

    async def handle(self) -> Any:
        WEBSOCKETS_OPEN.inc()  # observability: open sockets, summed over live processes
        try:
            return await super().handle()
        finally:
            WEBSOCKETS_OPEN.dec()

    async def close(self, code: int, reason: str) -> None:
        """Close once, with a reason (later calls are no-ops)."""
        if self._closed:
            return
        self._closed = True
        log.info("closing a WebSocket: %s %s", code, reason)
        try:
            async with asyncio.timeout(self._send_timeout):
                await self.websocket.close(code=code, reason=reason[:120])  # a close reason is <= 123 bytes
        except TimeoutError:
            pass  # a client that does not read: not even the close frame goes out (dropped below)
        except Exception as exc:  # already gone
            log.debug("close failed: %s", exc)
        finally:  # also when cancelled: aiohttp's close then leaves the transport flushing forever
            self._drop_if_unread()

    def _drop_if_unread(self) -> None:
        # A client that read our close frame has read everything before it, so bytes still
        # buffered mean a client that does not read. aiohttp then closes the transport gracefully
        # (flush first), which such a client never lets finish: the connection, its handler and
        # its broker listeners would stay. abort() drops it, and the handler ends.
        request = getattr(self.websocket, "request", None)
        transport = request.transport if request is not None else None
        if transport is not None and transport.get_write_buffer_size() > 0:
            log.info("dropping a WebSocket whose client does not read")
            transport.abort()

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):
            return  # the client went away while an event was on its way: nothing to report
        await super().handle_task_exception(error)

    async def handle_message(self, message: Any) -> None:
        if self._closed:
            return
        if not self._bucket.take():
            await self.close(CLOSE_RATE_LIMITED, "message rate limit exceeded: slow down, then reconnect")
            return
        problem = message_problem(message)
        if problem is not None:
            await self.close(CLOSE_BAD_MESSAGE, f"invalid message: {problem}")
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.context.viewer_id is not None and self._watch is None:
            self._watch = SessionWatch(self.context)
            await self._watch.start()

    async def handle_subscribe(self, message: Any) -> None:
        # Every operation on the socket runs as a session that is still valid (issue 9, item 1).
        try:
            if self.connection_acknowledged and not await ensure_live_session(self.context):
                return
        except (ShardUnavailableError, UnavailableError):  # the session could not be read: refuse this operation only
            await self.send_message({"id": message["id"], "type": "error", "payload": [{
                "message": "Part of the data is temporarily unavailable; retry shortly.",
                "extensions": {"code": "UNAVAILABLE"}}]})
            return
        if self._closed:
            return
        viewer = self.context.viewer_id if self.connection_acknowledged else None
        hold: Hold | None = None
        if viewer is not None:
            taken = await self._by_user.take(viewer, operation_chars(message), self.context.settings.realtime)
            if isinstance(taken, str):
                await self.send_message({"id": message["id"], "type": "error", "payload": [{
                    "message": taken, "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"}}]})
                return
            hold = taken
        before = self.operations.get(message["id"])
        started = False
        try:
            if not self._closed:
                await super().handle_subscribe(message)
                operation = self.operations.get(message["id"])
                started = operation is not None and operation is not before and operation.task is not None
                if hold is not None and started:
                    self._by_user.hold_until_done(hold, operation.task)
        finally:
            if hold is not None and not started:  # refused by strawberry (a duplicate id), or interrupted
                self._by_user.holds.release(hold)

    async def run_operation(self, operation: Any) -> None:
        # One log line and one count per operation on the socket, when it ends (config/observability).
        names: OperationNames = self.view.operation_names
        request_id = f"{self.context.request_id}:{str(operation.id)[:64]}"  # the socket's id and the operation's
        with observe_ws_operation(names, operation.operation_name, operation.query, request_id,
                                  self.context.viewer_id) as op:
            self._observed[operation.id] = op
            try:
                place = await self._admit()
                if place is None:  # refused by the load shedder: nothing ran; the socket stays open
                    REQUESTS_SHED.inc()
                    try:
                        await operation.send_operation_message({"id": operation.id, "type": "error", "payload": [{
                            "message": BUSY_MESSAGE, "extensions": {"code": "UNAVAILABLE"}}]})
                    except Exception as error:  # the socket went away meanwhile
                        await self.handle_task_exception(error)
                    op.outcome = "rejected"
                    return
                STARTED.set(place.release)  # this task's context: the subscription's stream calls it
                LEND_PLACE.set(place.release)  # and a wait on the password pool (a logIn over the socket)
                try:
                    await super().run_operation(operation)
                finally:
                    place.release()
            finally:
                if self._observed.get(operation.id) is op:  # the id may be reused while this one ends
                    del self._observed[operation.id]

    async def _admit(self) -> Place | None:
        """This operation's place in flight (waiting for one as an HTTP request does), or None
        when the load shedder refuses it. An app without a shedder admits everything."""
        request = getattr(self.websocket, "request", None)
        shedder = request.app.get(SHEDDER_KEY) if request is not None else None
        if shedder is None:
            return Place(None)
        return Place(shedder) if await shedder.enter() else None

    async def send_message(self, message: Any) -> None:
        op = self._observed.get(message.get("id")) if isinstance(message, dict) else None
        if op is not None:
            op.saw(message)
        started = STARTED.get()  # set in an operation's task only: its first message ends its work
        if started is not None:
            started()
        try:
            async with asyncio.timeout(self._send_timeout):
                await super().send_message(message)
        except TimeoutError:  # aiohttp waits for the buffers to drain with no limit of its own
            await self.close(CLOSE_SLOW_CONSUMER, "slow consumer: the client does not read; reconnect, "
                                                  "resume by cursor")
            raise WebSocketDisconnected from None

    async def shutdown(self) -> None:
        # aiohttp cancels this handler's task when the peer's connection is lost, at whatever
        # await it is in; an interrupted shut-down would leave operations running and broker
        # listeners registered (the session watch's, each subscription's) until the process
        # stops. So the operations are cancelled before anything awaits, and the rest runs in a
        # task of its own that a cancellation of this one does not stop.
        for operation in list(self.operations.values()):
            if operation.task is not None:
                operation.task.cancel()
        hold = getattr(self.context, "socket_hold", None)  # its account's socket slot (server.on_ws_connect)
        if hold is not None and not self._socket_released:
            self._socket_released = True
            self._by_user.holds.release(hold)
        self._shutting_down = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._shutting_down)

    async def _shut_down(self) -> None:
        try:
            if self._watch is not None:
                await self._watch.stop()
        finally:
            await super().shutdown()


async def close_all(app: web.Application) -> None:
    """on_shutdown: every live socket gets 1001 and a reason, before in-flight requests drain."""
    handlers = list(app[SOCKETS_KEY])
    if handlers:
        log.info("closing %d WebSocket(s) for shut-down", len(handlers))
    await asyncio.gather(*(h.close(CLOSE_GOING_AWAY, "server shutting down: reconnect and resume with after: <cursor>")
                           for h in handlers))


def install(app: web.Application) -> None:
    app[SOCKETS_KEY] = weakref.WeakSet()
    app.on_shutdown.append(close_all)
