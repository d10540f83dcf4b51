"""The WebSocket surface against careless and hostile clients, on the real app, store and broker:
malformed messages, clients that go away without a word, clients that never read. What each
test counts (operations, listeners, sockets, tasks) is what such a client could make grow."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import WSCloseCode

from http_errors import MAX_REQUEST_BODY
from resolvers.realtime import CLOSE_GOING_AWAY, KIND_NEW_FOLLOWER, stream_event
from schema.relay import from_global_id
from server_ws import CLOSE_BAD_MESSAGE, SOCKETS_KEY, close_all
from tests.schema.client import GQL
from tests.wsclient import VIEWER_EVENTS, WSClient

VIEWER = "{ viewer { username } }"
# Every event of this subscription carries its follower's bio 25 times (a 150-character bio:
# ~4 KB a frame), so a few dozen events fill a socket's buffers: the client's receive window,
# advertised when it connected, stays ~64 KB whatever its SO_RCVBUF is set to after, and aiohttp's
# writer buffers up to 64 KB before it waits for the transport to drain. With VIEWER_EVENTS'
# frames it took ~700 events, 9 s.
BULKY_EVENTS = ("subscription { viewerEvents { __typename cursor ... on NewFollowerEvent { %s } } }"
                % " ".join(f"f{i}: follower {{ bio }}" for i in range(25)))


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
    transport's buffers (megabytes on loopback) are shrunk here and the events made bulky so a few
    dozen fill them."""
    gql_settings.realtime.queue_size = 16
    gql_settings.realtime.send_timeout_seconds = 1.0
    token, bob_gid = await gql.sign_up("bob")
    carol_token, carol_gid = await gql.sign_up("carol")
    assert (await gql.mutate("follow", carol_token, bob_gid))["errors"] == []  # what the events announce holds
    await gql.ok("mutation($b: String!) { updateProfile(input: {bio: $b}) { errors { code } } }", {"b": "x" * 150},
                 carol_token)
    app = gql.client.app
    sock = await ws(gql, token)
    await sock.subscribe("1", BULKY_EVENTS)
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
    carol_id = from_global_id(carol_gid, gql.tao.n_shards)[1]
    for _ in range(1000):  # events for bob until the server gives up on him
        if not handler.operations:
            break
        await stream_event(gql.tao, [bob], KIND_NEW_FOLLOWER, {"user": carol_id}, near=bob).deliver(gql.tao)
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
    sock.drop()  # bob's client never reads the server's close: its own would wait 10 s for it


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
    gone.drop()  # it is gone: its close would wait 10 s for the server's answer, which it never reads


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


async def test_a_socket_does_not_keep_its_connection_init_payload(gql: GQL) -> None:
    """strawberry keeps the `connection_init` payload in the context for the socket's life, and
    only its token is read (at the handshake). Before, any payload was kept, up to a message's
    2 MiB, anonymous sockets included: 100 sockets (the per-address cap) held ~200 MB of one
    client's junk in each process."""
    token, _ = await gql.sign_up("ada")
    junk = "x" * 1_000_000
    for payload in ({"junk": junk}, {"Authorization": f"Bearer {token}", "junk": junk}):
        sock = await gql.client.ws_connect("/graphql", protocols=["graphql-transport-ws"], autoclose=False)
        client = WSClient(sock)
        await sock.send_json({"type": "connection_init", "payload": payload})
        assert (await client.receive())["type"] == "connection_ack"
        held = [h.context.connection_params for h in gql.client.app[SOCKETS_KEY]]
        assert all(junk not in str(p) for p in held), [str(p)[:80] for p in held]
        assert (await client.execute("q", VIEWER))["data"]["viewer"] == (
            None if "junk" in payload and len(payload) == 1 else {"username": "ada"})
        await client.close()


async def test_an_ipv6_network_s_sockets_count_as_one_address_s(gql_settings) -> None:
    """`realtime.max_sockets_per_address` counted each IPv6 address apart: a client with a /64
    (any residential line) opened sockets from as many of its 2**64 addresses as it liked. Each
    upgrade here comes from another address of one /64 (a middleware sets the peer)."""
    import itertools

    from aiohttp import WSServerHandshakeError, web

    from server import create_app
    from tests.schema.client import running_app

    gql_settings.realtime.max_sockets_per_address = 2
    app = await asyncio.to_thread(create_app, gql_settings)
    hosts = itertools.count(1)

    @web.middleware
    async def from_one_network(request: web.Request, handler):
        return await handler(request.clone(remote=f"2001:db8:5:6:{next(hosts):x}::1"))

    app.middlewares.insert(0, from_one_network)
    async with running_app(gql_settings, app) as g:
        socks = [await WSClient.connect(g.client, "/graphql", None) for _ in range(2)]
        with pytest.raises(WSServerHandshakeError) as refused:
            await WSClient.connect(g.client, "/graphql", None)
        assert refused.value.status == 429
        await socks.pop().close()
        for _ in range(50):  # the closed socket's slot comes back once its handler ends
            try:
                socks.append(await WSClient.connect(g.client, "/graphql", None))
                break
            except WSServerHandshakeError:
                await asyncio.sleep(0.05)
        assert len(socks) == 2
        for s in socks:
            await s.close()


async def test_one_account_s_open_sockets_are_capped(gql: GQL, gql_settings) -> None:
    """Sockets were capped per address only: an account on many addresses (a /48 is 65 536
    /64s) held as many sockets as it liked, each with a session watch (a broker listener, a
    session read every `session_check_seconds`). Now at most `realtime.max_sockets_per_user`
    (over every process, `tao.holds`); one more is closed with 4429 after `connection_init`."""
    gql_settings.realtime.max_sockets_per_user = 2
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    mine = [await WSClient.connect(gql.client, "/graphql", ta) for _ in range(2)]
    third = await WSClient.connect(gql.client, "/graphql", ta, expect_ack=False)
    assert await third.wait_closed() == 4429, third.close_reason
    assert "account" in (third.close_reason or ""), third.close_reason
    others = [await WSClient.connect(gql.client, "/graphql", tb), await WSClient.connect(gql.client, "/graphql", None)]
    await mine.pop().close()  # its slot comes back once its handler ends
    for _ in range(50):
        sock = await WSClient.connect(gql.client, "/graphql", ta, expect_ack=False)
        msg = await sock.receive(timeout=5)
        if msg is not None and msg["type"] == "connection_ack":
            mine.append(sock)
            break
        await asyncio.sleep(0.05)
    assert len(mine) == 2
    for s in [*mine, *others]:
        await s.close()
