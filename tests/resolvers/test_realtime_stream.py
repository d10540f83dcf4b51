"""`viewer_stream` on the real store and broker: a slow consumer is closed with its resume
cursor instead of queueing without bound, and resuming from that cursor loses nothing; a lost
live message is noticed by its `prev` and fetched from the store; ephemeral events are not stored."""

from __future__ import annotations

import asyncio

import pytest

from resolvers.accounts import authenticate
from resolvers.context import RequestContext
from resolvers.job_context import JobContext
from resolvers.jobs import register_job_handlers
from resolvers.realtime import (
    CLOSE_SLOW_CONSUMER,
    CLOSE_TRY_AGAIN_LATER,
    STREAM_EVENT_JOB,
    TRIM_STREAM_JOB,
    publish_ephemeral,
    read_backlog,
    stream_event,
    stream_event_job,
    trim_stream_job,
    user_channel,
    viewer_stream,
)
from resolvers.realtime.events import STREAM_ATYPE
from resolvers.realtime.stream import DAY_MS
from tao.models import now_ms
from tests.schema.client import GQL
from tests.tao.conftest import mysql_settings, open_store  # noqa: F401  (a fixture)


class Socket:
    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def viewer_ctx(gql: GQL, settings, name: str) -> RequestContext:
    token, _ = await gql.sign_up(name)
    ctx = RequestContext(tao=gql.tao, settings=settings)
    await authenticate(ctx, token)
    ctx.socket = Socket()
    return ctx


async def test_slow_consumer_is_closed_with_its_cursor_and_resumes_without_loss(gql: GQL, gql_settings) -> None:
    gql_settings.realtime.queue_size = 3
    ctx = await viewer_ctx(gql, gql_settings, "bob")
    stream = viewer_stream(ctx, None)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)  # subscribed, waiting
    for i in range(10):
        await stream_event(ctx.tao, [ctx.viewer_id], "follow.new", {"user": 1000 + i}).deliver(ctx.tao)
    got = await asyncio.wait_for(first, 10)
    assert got.ids == {"user": 1000}
    await asyncio.sleep(0.3)  # the consumer stalls while nine more arrive: three fit
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 10)
    code, reason = ctx.socket.closed
    assert code == CLOSE_SLOW_CONSUMER and f"after: {got.cursor}" in reason
    resumed = viewer_stream(ctx, got.cursor)
    rest = [await asyncio.wait_for(anext(resumed), 10) for _ in range(9)]
    assert [e.ids["user"] for e in rest] == list(range(1001, 1010))
    await resumed.aclose()


async def test_a_lost_live_message_is_fetched_from_the_store(gql: GQL, gql_settings) -> None:
    ctx = await viewer_ctx(gql, gql_settings, "bob")
    stream = viewer_stream(ctx, None)
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)
    # Appended but never published (as when a publish times out): no message on the channel.
    await ctx.tao.assoc_append_many([(ctx.viewer_id, STREAM_ATYPE, ctx.tao.ids.next_id(0),
                                      {"k": "follow.new", "i": {"user": 1}})])
    await stream_event(ctx.tao, [ctx.viewer_id], "follow.new", {"user": 2}).deliver(ctx.tao)
    first = await asyncio.wait_for(pending, 10)
    second = await asyncio.wait_for(anext(stream), 10)
    assert [first.ids["user"], second.ids["user"]] == [1, 2]  # the gap was noticed by prev
    await stream.aclose()


async def test_ephemeral_events_are_delivered_live_and_never_stored(gql: GQL, gql_settings) -> None:
    ctx = await viewer_ctx(gql, gql_settings, "bob")
    stream = viewer_stream(ctx, None)
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)
    assert await publish_ephemeral(ctx.tao, [ctx.viewer_id], "typing", {"thread": 5}) == 1
    event = await asyncio.wait_for(pending, 10)
    assert event.kind == "typing" and event.cursor is None and event.event_id is None
    await stream.aclose()
    assert await read_backlog(ctx.tao, ctx.viewer_id, 0, 100) == []


async def test_an_undelivered_event_is_delivered_by_its_job(gql: GQL, gql_settings) -> None:
    ctx = await viewer_ctx(gql, gql_settings, "bob")
    event = stream_event(ctx.tao, [ctx.viewer_id], "follow.new", {"user": 7}, near=ctx.viewer_id)
    assert event.job[0] == STREAM_EVENT_JOB
    # The write commits with the job, and the writer dies before `deliver`.
    await ctx.tao.assoc_add(ctx.viewer_id, "TEST_PLAIN", ctx.viewer_id, jobs=[event.job])
    assert await read_backlog(ctx.tao, ctx.viewer_id, 0, 100) == []
    await ctx.tao.run_jobs_until_idle()
    (stored,) = await read_backlog(ctx.tao, ctx.viewer_id, 0, 100)
    assert stored.event_id == event.event_id and stored.ids == {"user": 7}
    # A second run (at-least-once) appends nothing.
    await stream_event_job(JobContext(ctx.tao, ctx.settings), event.job[1])
    assert len(await read_backlog(ctx.tao, ctx.viewer_id, 0, 100)) == 1
    # Delivered by its writer: the job row goes (with the next commit on its shard, or on its
    # own moments later: `Outbox.delete_soon`), nothing is left for a worker.
    event = stream_event(ctx.tao, [ctx.viewer_id], "follow.new", {"user": 8}, near=ctx.viewer_id)
    await ctx.tao.assoc_add(ctx.viewer_id, "TEST_PLAIN", ctx.viewer_id, jobs=[event.job])
    await event.deliver(ctx.tao)
    await ctx.tao.outbox.flush_done()
    assert await _jobs_but_trims(ctx.tao) == 0
    assert len(await read_backlog(ctx.tao, ctx.viewer_id, 0, 100)) == 2


async def _jobs_but_trims(tao) -> int:
    """Queued jobs other than stream trims: about one append in `realtime.stream_trim_every`
    (100) enqueues a trim, at random, and a test counting jobs would fail once in 100 runs."""
    return sum(n for handler, (n, _, _) in (await tao.outbox.depth_by_handler()).items() if handler != TRIM_STREAM_JOB)


@pytest.mark.slow
async def test_a_persistent_store_fault_closes_the_socket_with_the_resume_cursor(services, mysql_settings) -> None:
    tao = await open_store(mysql_settings)
    try:
        user = await tao.obj_add("USER", {"username": "bob"})
        (stored,) = await stream_event(tao, [user], "follow.new", {"user": 1}).deliver(tao)
        ctx = RequestContext(tao=tao, settings=mysql_settings)
        ctx.viewer_id, ctx.socket = user, Socket()
        stream = viewer_stream(ctx, None)
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)
        for i in range(len(services.mysql)):
            await asyncio.to_thread(services.kill_mysql, i)
        # A live message that shows a gap: what was missed must be read from the store, which is down.
        await tao.broker.publish(user_channel(user), {"u": user, "k": "follow.new", "i": {"user": 2},
                                                      "c": stored.position + 10, "p": stored.position + 5, "e": 1})
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 30)
        code, reason = ctx.socket.closed
        assert code == CLOSE_TRY_AGAIN_LATER and f"after: {stored.cursor}" in reason, reason
    finally:
        services.ensure_running()
        await tao.close()


async def test_the_trim_job_keeps_a_stream_bounded(gql: GQL, gql_settings) -> None:
    gql_settings.realtime.stream_keep, gql_settings.realtime.max_replay = 4, 3
    ctx = await viewer_ctx(gql, gql_settings, "bob")
    old = now_ms() - int(gql_settings.realtime.replay_window_days * DAY_MS) - 1000
    await ctx.tao.assoc_add(ctx.viewer_id, STREAM_ATYPE, ctx.tao.ids.next_id(0), time=old, data={"k": "x", "i": {}})
    for i in range(6):
        await stream_event(ctx.tao, [ctx.viewer_id], "follow.new", {"user": i}).deliver(ctx.tao)
    await trim_stream_job(JobContext(ctx.tao, ctx.settings), {"user": ctx.viewer_id})
    kept = await read_backlog(ctx.tao, ctx.viewer_id, 0, 100)
    assert [e.ids["user"] for e in kept] == [2, 3, 4, 5]  # the newest stream_keep, none too old
    assert await ctx.tao.assoc_count(ctx.viewer_id, STREAM_ATYPE) == 4


@pytest.mark.slow
async def test_a_refused_publish_is_published_again_by_the_job_once_the_broker_is_back(services,
                                                                                     mysql_settings) -> None:
    tao = await open_store(mysql_settings)
    try:
        register_job_handlers(tao)
        user = await tao.obj_add("USER", {"username": "bob"})
        await asyncio.to_thread(services.kill_redis)
        event = stream_event(tao, [user], "follow.new", {"user": 3}, near=user)
        await tao.assoc_add(user, "TEST_PLAIN", user, jobs=[event.job])
        (stored,) = await event.deliver(tao)         # appended, but Redis refused the publish
        assert await _jobs_but_trims(tao) == 1       # so its job stays
        await asyncio.to_thread(services.start_redis)
        heard: list[dict] = []
        got = asyncio.Event()

        class Listener:
            def on_message(self, message: dict) -> None:
                heard.append(message)
                got.set()

            def on_resync(self) -> None:
                pass
        await tao.broker.listen(user_channel(user), Listener())
        await tao.run_jobs_until_idle()
        await asyncio.wait_for(got.wait(), 10)
        assert heard[0]["c"] == stored.position and heard[0]["e"] == event.event_id
        assert await tao.outbox.pending() == 0
    finally:
        services.ensure_running()
        await tao.close()


async def test_a_build_that_met_a_store_fault_is_retried_with_fresh_loaders(gql: GQL, gql_settings) -> None:
    """A loader keeps a key's failure (a shard down for that key) as the key's answer for the
    rest of its life; a build retried after a fault with the same loaders got that failure
    back at once, never reading again, and the socket was closed (1013) after the retries
    even when the shard was back. Each attempt starts with fresh loaders: the retry reads."""
    from resolvers.errors import UnavailableError

    ctx = await viewer_ctx(gql, gql_settings, "bob")
    attempts: list[object] = []

    async def build(event):
        loaders = ctx.loaders
        if not attempts:  # the first attempt meets a fault on this key, as a failed batch leaves it
            loaders.object_by_id.prime(ctx.viewer_id, UnavailableError("shard 3 timed out"))
        attempts.append(loaders)
        return await loaders.object_by_id.load(ctx.viewer_id)

    stream = viewer_stream(ctx, None, build=build)
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)
    await stream_event(ctx.tao, [ctx.viewer_id], "follow.new", {"user": 1}).deliver(ctx.tao)
    user = await asyncio.wait_for(pending, 10)
    assert user.id == ctx.viewer_id and ctx.socket.closed is None
    assert len(attempts) == 2 and attempts[0] is not attempts[1]
    await stream.aclose()
