"""The event broker: publish a small message on a named channel; deliver it to this process's
listeners of that channel. Redis pub/sub in production and tests, an in-process bus in the
embedded default, one interface (`Broker`). The only importer of `redis`.

What the broker promises, and what it does not:
- Delivery is best effort. `publish` never raises and waits at most `publish_timeout`: a message
  that could not be published is lost to live listeners, so whatever must not be lost is written
  to the store first (the real-time streams, `resolvers.realtime`) and the message only says
  "look". A caller never fails a write because the broker is down.
- `listen(channel, listener)` returns once the subscription is live (Redis acknowledged it), so
  a listener that reads the store after `listen` returns misses nothing published after that
  read; if Redis is unreachable it returns at once and the subscription goes live later.
- Whenever a subscription goes live late (after a reconnect, or an acknowledgement that came
  after `listen` gave up waiting), the channel's listeners get `on_resync()`: messages may have
  been missed, re-read the store.
- One Redis subscription per channel per process, held while at least one local listener needs
  it (a reference count), dropped with the last one.

Channels are namespaced by `BrokerSettings.channel_prefix` (a deployment's or a test's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from config import BrokerSettings

log = logging.getLogger("tao.broker")

PING_INTERVAL = 5.0  # seconds between health pings on an idle subscription connection


class Listener(Protocol):
    """A local consumer of one channel. Both methods run on the event loop and must not block
    (put the message on a bounded queue and return)."""

    def on_message(self, message: dict[str, Any]) -> None: ...

    def on_resync(self) -> None: ...


class Broker:
    """The interface; see the module docstring for the guarantees."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self._listeners: dict[str, set[Listener]] = {}
        self.published = 0
        self.publish_failures = 0

    def _name(self, channel: str) -> str:
        return f"{self.settings.channel_prefix}:{channel}"

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        """Publish `message` (JSON-able) on `channel`; False if it could not be. Never raises."""
        raise NotImplementedError

    async def publish_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Publish several (channel, message) pairs; returns how many were published."""
        results = await asyncio.gather(*(self.publish(c, m) for c, m in messages))
        return sum(results)

    async def listen(self, channel: str, listener: Listener) -> None:
        self._listeners.setdefault(channel, set()).add(listener)
        # Every listener waits for the subscription to be live, not only the channel's first:
        # a second one that returned while the first's subscription was still on its way (two
        # subscriptions of one user starting together) would read the store too early, and an
        # event published in between would reach neither its listen nor its read.
        try:
            await self._subscribe(channel)
        except BaseException:  # cancelled while waiting: leave no listener behind
            await asyncio.shield(self.unlisten(channel, listener))
            raise

    async def unlisten(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if not listeners or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[channel]
            await self._unsubscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        pass

    async def _unsubscribe(self, channel: str) -> None:
        pass

    def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for listener in list(self._listeners.get(channel, ())):
            try:
                listener.on_message(message)
            except Exception:  # one broken listener must not starve the others
                log.exception("listener of %s failed", channel)

    def _resync(self, channels: Iterable[str]) -> None:
        for channel in channels:
            for listener in list(self._listeners.get(channel, ())):
                try:
                    listener.on_resync()
                except Exception:
                    log.exception("listener of %s failed to resync", channel)

    def stats(self) -> dict[str, int]:
        return {"channels": len(self._listeners), "listeners": sum(map(len, self._listeners.values())),
                "published": self.published, "publish_failures": self.publish_failures}

    async def close(self) -> None:
        self._listeners.clear()


class LocalBroker(Broker):
    """The embedded default: an in-process bus. Messages go through the same JSON encoding as
    Redis, so listeners get fresh values with the same types on both."""

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        data = orjson.dumps(message)
        self.published += 1
        # Deliver on a later loop turn, as a network broker would: a publisher never runs
        # listener code inside its own call.
        asyncio.get_running_loop().call_soon(self._dispatch, channel, orjson.loads(data))
        return True


class RedisBroker(Broker):
    """Redis pub/sub via redis-py's asyncio client: one connection for publishing (a pool), one
    subscription connection per process with a reader task that reconnects forever."""

    def __init__(self, settings: BrokerSettings) -> None:
        super().__init__(settings)
        import redis.asyncio as aioredis  # imported here: the embedded default never needs it

        self._redis_mod = aioredis
        # driver_info None: no CLIENT SETINFO, whose version lookup stats files on the loop.
        self._client = aioredis.Redis.from_url(settings.url, socket_connect_timeout=settings.connect_timeout,
                                               socket_timeout=settings.publish_timeout * 4,
                                               driver_info=None)
        self._pubsub: Any = None
        self._connected = asyncio.Event()
        self._acked: set[str] = set()            # channels Redis confirmed on this connection
        self._requested: set[str] = set()        # channels asked for on this connection
        self._waiters: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._closed = False
        self._last_failure_log = 0.0
        self.reconnects = 0

    # ---- publishing ---------------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> bool:
        return await self._publish_one(self._name(channel), orjson.dumps(message))

    async def publish_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """One pipeline, one round trip (a message's members' copies: one write and one read of
        the replies, not a task and a pooled connection each). All or none: when the pipeline
        fails, none is counted as published, and the caller publishes them all again (listeners
        drop a position they have)."""
        batch = [(self._name(channel), orjson.dumps(message)) for channel, message in messages]
        if len(batch) <= 1:
            return sum([await self._publish_one(name, data) for name, data in batch])
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                pipe = self._client.pipeline(transaction=False)
                for name, data in batch:
                    pipe.publish(name, data)
                await pipe.execute()
        except (self._redis_mod.RedisError, OSError, TimeoutError) as exc:
            self._failed(len(batch), exc)
            return 0
        self.published += len(batch)
        return len(batch)

    async def _publish_one(self, name: str, data: bytes) -> bool:
        try:
            await asyncio.wait_for(self._client.publish(name, data), self.settings.publish_timeout)
        except (self._redis_mod.RedisError, OSError, TimeoutError) as exc:
            self._failed(1, exc)
            return False
        self.published += 1
        return True

    def _failed(self, n: int, exc: BaseException) -> None:
        self.publish_failures += n
        now = time.monotonic()
        if now - self._last_failure_log > 5.0:  # a down Redis must not flood the log
            self._last_failure_log = now
            log.warning("publish to Redis failed (events stay in the store): %s", exc)

    # ---- subscribing --------------------------------------------------------------------------

    def _start(self) -> None:
        if self._reader is None and not self._closed:
            self._reader = asyncio.create_task(self._run(), name="tao-broker-reader")

    async def _subscribe(self, channel: str) -> None:
        self._start()
        waiter = None
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._connected.wait()
                if channel in self._acked:
                    return
                waiter = self._waiters.get(channel)
                if waiter is None or waiter.done():
                    waiter = self._waiters[channel] = asyncio.get_running_loop().create_future()
                if channel not in self._requested:  # the reader asks for every channel on connect
                    self._requested.add(channel)
                    await self._pubsub.subscribe(self._name(channel))
                await asyncio.shield(waiter)
        except (self._redis_mod.RedisError, OSError, TimeoutError, AttributeError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and (waiter is None or not waiter.cancelled()):
                raise  # our caller was cancelled, not the connection
            # Not live yet: the acknowledgement (or the reconnect) will resync this channel.
            if waiter is not None:
                if self._waiters.get(channel) is waiter:
                    del self._waiters[channel]
                waiter.cancel()
            log.info("subscription to %s not live yet (it will resync when it is): %r", channel, exc)

    async def _unsubscribe(self, channel: str) -> None:
        self._acked.discard(channel)
        self._requested.discard(channel)
        if self._connected.is_set():
            try:
                await self._pubsub.unsubscribe(self._name(channel))
            except (self._redis_mod.RedisError, OSError, AttributeError):
                pass  # the connection is going; a reconnect subscribes only live channels

    async def _run(self) -> None:
        """Connect, subscribe every channel that has listeners, resync them, read; forever."""
        delay = self.settings.reconnect_min
        first = True
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                await asyncio.wait_for(pubsub.ping(), self.settings.connect_timeout)
                self._pubsub, self._acked = pubsub, set()
                channels = list(self._listeners)
                self._requested = set(channels)
                if channels:
                    await pubsub.subscribe(*(self._name(c) for c in channels))
                self._connected.set()
                if not first:
                    self.reconnects += 1
                    log.info("Redis subscription connection is back (%d channels)", len(channels))
                first = False
                delay = self.settings.reconnect_min
                await self._read(pubsub, resync_on_ack=set(channels))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis errors, OSError, timeouts: reconnect
                if self._connected.is_set() or first:
                    log.warning("Redis subscription connection lost: %s", exc)
                first = False
            finally:
                self._connected.clear()
                self._pubsub = None
                for w in self._waiters.values():
                    if not w.done():
                        w.cancel()
                self._waiters.clear()
                try:
                    await asyncio.wait_for(pubsub.aclose(), 1.0)
                except Exception:
                    pass
            if not self._closed:
                await asyncio.sleep(delay)
                delay = min(self.settings.reconnect_max, delay * 2)

    async def _read(self, pubsub: Any, resync_on_ack: set[str]) -> None:
        prefix = self.settings.channel_prefix + ":"
        last_seen = time.monotonic()
        pinged = False
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if msg is None:
                if now - last_seen > PING_INTERVAL:
                    if pinged:
                        raise TimeoutError(f"no answer from Redis for {now - last_seen:.1f} s")
                    await pubsub.ping()
                    pinged = True
                continue
            last_seen, pinged = now, False
            kind = msg["type"]
            channel = msg.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode()
            if isinstance(channel, str) and channel.startswith(prefix):
                channel = channel[len(prefix):]
            if kind == "message":
                try:
                    payload = orjson.loads(msg["data"])
                except orjson.JSONDecodeError:
                    log.warning("dropped a message that is not JSON on %s", channel)
                    continue
                self._dispatch(channel, payload)
            elif kind == "subscribe":
                self._acked.add(channel)
                # No waiter: nobody is blocked in listen() for it (a reconnect, or listen gave
                # up waiting), so its listeners may have missed messages meanwhile.
                waiter = self._waiters.pop(channel, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if channel in resync_on_ack or waiter is None:
                    resync_on_ack.discard(channel)
                    self._resync([channel])

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._client.aclose()
        await super().close()

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "connected": int(self._connected.is_set()), "reconnects": self.reconnects}


def make_broker(settings: BrokerSettings) -> Broker:
    if settings.backend == "redis":
        return RedisBroker(settings)
    if settings.backend == "local":
        return LocalBroker(settings)
    raise ValueError(f"broker.backend must be 'local' or 'redis', got {settings.backend!r}")
