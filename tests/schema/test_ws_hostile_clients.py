"""The WebSocket surface against careless and hostile clients, on the real app, store and broker:
malformed messages, clients that go away without a word, clients that never read. What each
test counts (operations, listeners, sockets, tasks) is what such a client could make grow."""

from __future__ import annotations

from server_ws import CLOSE_BAD_MESSAGE, SOCKETS_KEY
from tests.schema.client import GQL
from tests.wsclient import WSClient

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
