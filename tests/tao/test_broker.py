"""The event broker on a real Redis (and the in-process bus): delivery, one Redis subscription
per channel per process (reference counted), publishing that never fails a caller, and
resubscription with a resync after Redis restarts."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from config import BrokerSettings
from tao.broker import LocalBroker, RedisBroker
from tests.harness import Services


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.resyncs = 0
        self.event = asyncio.Event()

    def on_message(self, message: dict) -> None:
        self.messages.append(message)
        self.event.set()

    def on_resync(self) -> None:
        self.resyncs += 1
        self.event.set()

    async def wait(self, predicate, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.event.clear()
                await self.event.wait()


def redis_settings(services: Services, test_id: str) -> BrokerSettings:
    return BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id,
                          reconnect_min=0.05, reconnect_max=0.2)


async def numsub(services: Services, channel: str) -> int:
    client = aioredis.Redis.from_url(services.redis_url)
    try:
        return dict(await client.pubsub_numsub(channel))[channel.encode()]
    finally:
        await client.aclose()


async def test_local_bus_delivers_to_every_listener_of_the_channel() -> None:
    broker = LocalBroker(BrokerSettings())
    a, b, other = Recorder(), Recorder(), Recorder()
    await broker.listen("u:1", a)
    await broker.listen("u:1", b)
    await broker.listen("u:2", other)
    assert await broker.publish("u:1", {"k": "x", "i": {"user": 5}})
    await a.wait(lambda: a.messages)
    await b.wait(lambda: b.messages)
    assert a.messages == b.messages == [{"k": "x", "i": {"user": 5}}] and other.messages == []
    await broker.unlisten("u:1", a)
    await broker.publish("u:1", {"n": 2})
    await b.wait(lambda: len(b.messages) == 2)
    assert len(a.messages) == 1
    await broker.close()


async def test_one_redis_subscription_per_channel_while_listeners_need_it(services: Services, test_id: str) -> None:
    broker = RedisBroker(redis_settings(services, test_id))
    try:
        a, b = Recorder(), Recorder()
        await broker.listen("u:7", a)
        await broker.listen("u:7", b)
        assert await numsub(services, f"{test_id}:u:7") == 1
        assert await broker.publish("u:7", {"k": "hello"})
        await a.wait(lambda: a.messages)
        await b.wait(lambda: b.messages)
        assert a.messages == b.messages == [{"k": "hello"}]
        await broker.unlisten("u:7", a)
        assert await numsub(services, f"{test_id}:u:7") == 1
        await broker.unlisten("u:7", b)
        async with asyncio.timeout(5):
            while await numsub(services, f"{test_id}:u:7") != 0:
                await asyncio.sleep(0.02)
    finally:
        await broker.close()


@pytest.mark.slow
async def test_redis_down_publish_fails_fast_and_listeners_resync_when_it_is_back(services: Services,
                                                                                 test_id: str) -> None:
    broker = RedisBroker(redis_settings(services, test_id))
    rec = Recorder()
    try:
        await broker.listen("u:9", rec)
        resyncs = rec.resyncs
        await asyncio.to_thread(services.kill_redis)
        began = time.monotonic()
        assert await broker.publish("u:9", {"k": "lost"}) is False
        assert time.monotonic() - began < 1.0
        await asyncio.to_thread(services.start_redis)
        await rec.wait(lambda: rec.resyncs > resyncs)  # resubscribed: listeners must re-read the store
        assert await broker.publish("u:9", {"k": "after"})
        await rec.wait(lambda: {"k": "after"} in rec.messages)
        assert {"k": "lost"} not in rec.messages
    finally:
        await broker.close()


async def test_a_listen_cancelled_while_redis_is_unreachable_leaves_no_listener() -> None:
    broker = RedisBroker(BrokerSettings(backend="redis", url="redis://127.0.0.1:1/0", connect_timeout=5.0))
    try:
        task = asyncio.create_task(broker.listen("u:1", Recorder()))
        await asyncio.sleep(0.3)  # waiting for a connection that cannot come
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert broker.stats()["listeners"] == 0 and broker.stats()["channels"] == 0
        assert await broker.publish("u:1", {"k": "x"}) is False  # and publishing still never raises
    finally:
        await broker.close()


async def test_a_second_listener_returns_only_once_the_subscription_is_live(services: Services, test_id: str) -> None:
    """`listen` returned at once for a channel that already had a listener, even while the
    first one's subscription was still on its way to Redis: its caller then read the store
    before the channel was live, and a message published in between was lost to it."""
    broker = RedisBroker(redis_settings(services, test_id))
    raw = aioredis.Redis.from_url(services.redis_url)
    try:
        await raw.ping()  # connected already: its publish is one round trip
        a, b = Recorder(), Recorder()
        first = asyncio.create_task(broker.listen("u:8", a))
        await asyncio.sleep(0)  # a's subscription is under way
        await broker.listen("u:8", b)
        assert await raw.publish(f"{test_id}:u:8", b'{"k": "x"}') == 1  # live when listen returned
        await b.wait(lambda: b.messages)
        assert b.messages == [{"k": "x"}]
        await first
    finally:
        await raw.aclose()
        await broker.close()


async def test_publish_many_is_one_round_trip_and_delivers_each_message(services: Services, test_id: str) -> None:
    """A message's copies for its members go out in one pipeline: one connection and one round
    trip, where a publish each (gathered) took a pooled connection each."""
    broker = RedisBroker(redis_settings(services, test_id))
    try:
        recorders = {f"u:{i}": Recorder() for i in range(3)}
        for channel, rec in recorders.items():
            await broker.listen(channel, rec)
        sent = [(channel, {"k": "m", "i": {"n": n}}) for n, channel in enumerate(recorders)]
        assert await broker.publish_many(iter(sent)) == 3
        for n, rec in enumerate(recorders.values()):
            await rec.wait(lambda rec=rec: rec.messages)
            assert rec.messages == [{"k": "m", "i": {"n": n}}]
        # the pool's idle connections are the publishing ones (the subscription's is in use)
        assert len(broker._client.connection_pool._available_connections) == 1
        assert broker.stats()["published"] == 3
    finally:
        await broker.close()


@pytest.mark.slow
async def test_publish_many_with_redis_down_publishes_none_and_never_raises(services: Services,
                                                                           test_id: str) -> None:
    broker = RedisBroker(redis_settings(services, test_id))
    try:
        await asyncio.to_thread(services.kill_redis)
        began = time.monotonic()
        assert await broker.publish_many([("u:1", {"k": "a"}), ("u:2", {"k": "b"})]) == 0
        assert time.monotonic() - began < 1.0
        assert broker.stats()["publish_failures"] == 2
    finally:
        await asyncio.to_thread(services.start_redis)
        await broker.close()
