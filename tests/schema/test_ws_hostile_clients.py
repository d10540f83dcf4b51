"""The WebSocket surface against careless and hostile clients, on the real app, store and broker:
malformed messages, clients that go away without a word, clients that never read. What each
test counts (operations, listeners, sockets, tasks) is what such a client could make grow."""

from __future__ import annotations

import asyncio
import socket

import aiomysql
import pytest
from aiohttp import WSCloseCode

from http_errors import MAX_REQUEST_BODY
from resolvers.realtime import CLOSE_GOING_AWAY, KIND_NEW_FOLLOWER, stream_event
from server_ws import CLOSE_BAD_MESSAGE, SOCKETS_KEY, close_all
from tao.shardmap import ShardMap
from tests.schema.client import GQL
from tests.wsclient import VIEWER_EVENTS, WSClient

VIEWER = "{ viewer { username } }"


async def ws(gql: GQL, token: str | None, **kw) -> WSClient:
    return await WSClient.connect(gql.client, "/graphql", token, **kw)


MALFORMED = [
    "[1]", '"subscribe"', "1", "null",
    '{"type": "subscribe", "id": "1", "payload": "{ viewer { username } }"}',
    '{"type": "subscribe", "id": {"a": 1}, "payload": {"query": "{ viewer { username } }"}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": 123}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { username } }", "operationName": 5}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { username } }", "variables": [1]}}',
    '{"type": "complete", "id": ["1"]}',
]


async def test_a_malformed_message_closes_the_socket_with_4400_and_leaves_no_operation(gql: GQL) -> None:
    """Before: a non-object killed the connection's handler (1006), and a `query` or
    `operationName` of the wrong type crashed its operation silently: no answer, and the id kept
    one of the socket's operation slots until the socket closed."""
    token, _ = await gql.sign_up("ada")
    for message in MALFORMED:
        sock = await ws(gql, token)
        await sock.ws.send_str(message)
        assert await sock.wait_closed(timeout=5) == CLOSE_BAD_MESSAGE, (message, sock.close_code)
        assert sock.close_reason.startswith("invalid message: "), (message, sock.close_reason)
        assert all(not h.operations for h in gql.client.app[SOCKETS_KEY]), message
    sock = await ws(gql, token)  # the next socket works as ever
    assert (await sock.execute("1", VIEWER))["data"]["viewer"]["username"] == "ada"
    await sock.close()


async def test_a_client_that_stops_reading_is_dropped_and_holds_up_nothing(gql: GQL, gql_settings) -> None:
    """A client that stops reading fills the socket's buffers; aiohttp then waits for them to
    drain with no limit. Before: the subscription hung in that send (its queue overflowed
    unnoticed), the slow-consumer close hung the same way, and so did `close_all`: one such
    client held its broker listeners forever and a process's shut-down. The kernel's and the
    transport's buffers (megabytes on loopback) are shrunk here so a few events fill them."""
    gql_settings.realtime.queue_size = 16
    gql_settings.realtime.send_timeout_seconds = 1.0
    token, _ = await gql.sign_up("bob")
    carol_token, _ = await gql.sign_up("carol")
    app = gql.client.app
    sock = await ws(gql, token)
    await sock.subscribe("1", VIEWER_EVENTS)
    (handler,) = app[SOCKETS_KEY]
    server_side = handler.websocket.request.transport
    server_side.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server_side.set_write_buffer_limits(high=2048)
    client_side = sock.ws._writer.transport  # the client's own TCP transport: it stops reading
    client_side.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client_side.pause_reading()
    carol = await ws(gql, carol_token)
    await carol.subscribe("1", VIEWER_EVENTS)
    await asyncio.sleep(0.3)  # both subscriptions are listening
    carols_listeners = 2  # her session watch and her subscription
    assert gql.tao.broker.stats()["listeners"] == 2 + carols_listeners
    bob = handler.context.viewer_id
    for _ in range(1000):  # events for bob until the server gives up on him
        if not handler.operations:
            break
        await stream_event(gql.tao, [bob], KIND_NEW_FOLLOWER, {"user": bob}, near=bob).deliver(gql.tao)
        await asyncio.sleep(0.01)
    for _ in range(200):
        if gql.tao.broker.stats()["listeners"] == carols_listeners:
            break
        await asyncio.sleep(0.05)
    assert gql.tao.broker.stats()["listeners"] == carols_listeners  # bob's socket let go of everything
    assert not handler.operations
    assert (await carol.execute("q", VIEWER))["data"]["viewer"]["username"] == "carol"  # others unaffected
    async with asyncio.timeout(10):  # the shut-down's close of every socket does not wait on bob
        await close_all(app)
    assert await carol.wait_closed() == CLOSE_GOING_AWAY


async def test_a_client_gone_without_a_word_is_dropped_by_the_heartbeat(gql: GQL, gql_settings) -> None:
    """A client that vanished without closing (no FIN reaches the server) looks like one that
    never answers a ping. Before: nothing pinged an idle socket, so it held its session watch
    and subscriptions until the process stopped. A client that reads answers the pings and stays."""
    gql_settings.realtime.heartbeat_seconds = 1.0
    token, _ = await gql.sign_up("bob")
    carol_token, _ = await gql.sign_up("carol")
    gone = await ws(gql, token)
    await gone.subscribe("1", VIEWER_EVENTS)
    alive = await ws(gql, carol_token)
    await alive.subscribe("1", VIEWER_EVENTS)
    await asyncio.sleep(0.3)
    assert gql.tao.broker.stats()["listeners"] == 4
    gone.ws._writer.transport.pause_reading()  # it reads nothing more, pings included
    for _ in range(60):  # carol reads meanwhile: aiohttp answers each of her pings
        with pytest.raises(TimeoutError):
            await alive.receive(timeout=0.25)
        if gql.tao.broker.stats()["listeners"] == 2:
            break
    assert gql.tao.broker.stats()["listeners"] == 2  # bob's socket let go of everything; carol's stays
    assert (await alive.execute("q", VIEWER))["data"]["viewer"]["username"] == "carol"
    await alive.close()


async def test_a_message_larger_than_an_http_request_closes_the_socket_with_1009(gql: GQL) -> None:
    """Before: aiohttp's default let one message be 4 MiB, twice an HTTP request's bound."""
    token, _ = await gql.sign_up("ada")
    sock = await ws(gql, token)
    await sock.ws.send_str('{"type": "ping", "payload": {"pad": "' + "x" * MAX_REQUEST_BODY + '"}}')
    assert await sock.wait_closed() == WSCloseCode.MESSAGE_TOO_BIG
    sock = await ws(gql, token)
    await sock.ws.send_str('{"type": "ping", "payload": {"pad": "' + "x" * (MAX_REQUEST_BODY - 100) + '"}}')
    assert (await sock.receive()) == {"type": "pong"}
    await sock.close()


FOLLOW = "mutation($i: ID!) { follow(input: {userId: $i}) { status errors { code } } }"


@pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)
async def test_a_mutation_in_flight_when_its_socket_is_lost_commits_nothing_and_leaves_nothing(
        gql: GQL, gql_settings, services) -> None:
    """A client sends a mutation and its connection drops while the write waits in MariaDB (a row
    lock held by another connection keeps it there). The operation is cancelled: its task ends
    at once, its transaction rolls back (the write's connection is closed, not reused, since its
    protocol state is unknown), so nothing is applied that nobody was told of, and the store's
    pool keeps serving: the same follow, sent again, commits whole."""
    ta, _ = await gql.sign_up("ada")
    _, cy = await gql.sign_up("cy")
    _, bob = await gql.sign_up("bob")
    # ada's FOLLOWS count row exists: the follow below waits on its lock.
    assert (await gql.mutate("follow", ta, cy))["status"] == "FOLLOWING"
    await gql.tao.run_jobs_until_idle()
    app = gql.client.app
    sock = await ws(gql, ta)
    (handler,) = app[SOCKETS_KEY]
    ada = handler.context.viewer_id
    shards = ShardMap.from_settings(gql_settings.store)
    shard = gql.tao.shard(ada)
    ep = services.mysql[shards.server_of_shard[shard]]
    lock = await aiomysql.connect(host=ep.host, port=ep.port, user=ep.user, password=ep.password, autocommit=False)
    try:
        async with lock.cursor() as cur:
            await cur.execute(f"SELECT count FROM `{shards.database(shard)}`.assoc_counts "
                              "WHERE id1 = %s AND atype = %s FOR UPDATE", (ada, gql.tao.registry.atype("FOLLOWS").code))
            assert await cur.fetchall()
            await sock.subscribe("f", FOLLOW, {"i": bob})
            for _ in range(200):  # until the follow's write waits on the lock
                await cur.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
                if (await cur.fetchone())[0]:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the follow never waited on the lock")
            (operation,) = handler.operations.values()
            task = operation.task
            sock.ws.get_extra_info("socket").shutdown(socket.SHUT_RDWR)  # the connection is lost
            await sock.close()
            for _ in range(100):
                if task.done() and not handler.operations:
                    break
                await asyncio.sleep(0.05)
            assert task.cancelled() and not handler.operations  # ended while its write still waited
        await lock.rollback()  # the lock goes; the abandoned transaction can only roll back
    finally:
        lock.close()
    await asyncio.sleep(0.5)
    await gql.tao.run_jobs_until_idle()
    who = '{ user(username: "bob") { followerCount viewerFollows } }'
    assert (await gql.ok(who, token=ta))["user"] == {"followerCount": 0, "viewerFollows": False}
    mine = '{ viewer { followingCount } }'
    assert (await gql.ok(mine, token=ta))["viewer"] == {"followingCount": 1}  # cy only
    assert (await gql.mutate("follow", ta, bob))["status"] == "FOLLOWING"  # the pool still serves
    await gql.tao.run_jobs_until_idle()
    assert (await gql.ok(who, token=ta))["user"] == {"followerCount": 1, "viewerFollows": True}
