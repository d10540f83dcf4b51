"""Notifications delivered live (`notificationEvents`), resumable by cursor, and message requests."""

from __future__ import annotations

import asyncio

import pytest

from tests.resolvers.messages_client import DM
from tests.resolvers.test_likes import LIKE, new_post
from tests.resolvers.test_notifications import listed, nodes

pytestmark = pytest.mark.no_blocking

WS_PROTOCOL = "graphql-transport-ws"
EVENTS = """subscription($after: String) { notificationEvents(after: $after) {
  cursor eventId notification { type actorCount actors { username } } } }"""


async def _subscribe(ws, token, after=None):
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS, "variables": {"after": after}}})
    await asyncio.sleep(0.3)  # listening before the test writes


async def _next(ws) -> dict:
    msg = await ws.receive_json(timeout=10)
    assert msg["type"] == "next" and "errors" not in msg["payload"], msg
    return msg["payload"]["data"]["notificationEvents"]


async def test_live_events_then_resume_by_cursor(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await _subscribe(ws, ta)
        await gql.ok(LIKE, {"i": {"postId": post}}, tb)
        await gql.tao.run_jobs_until_idle()
        first = await _next(ws)
        assert first["notification"] == {"type": "LIKE", "actorCount": 1, "actors": [{"username": "bob"}]}
    # Missed while away: replayed from the cursor, with the group's state now.
    await gql.ok(LIKE, {"i": {"postId": post}}, tc)
    await gql.tao.run_jobs_until_idle()
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await _subscribe(ws, ta, first["cursor"])
        again = await _next(ws)
        assert again["notification"]["actorCount"] == 2 and again["eventId"] != first["eventId"]
        assert again["notification"]["actors"][0] == {"username": "cy"}


async def test_a_message_request_notifies_its_recipient_once(gql):
    dm = DM(gql)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    await dm.sent(ta, to=[b])
    await dm.sent(ta, to=[b], text="again")
    [n] = nodes(await listed(gql, tb))
    assert n["type"] == "MESSAGE_REQUEST" and n["actors"][0]["username"] == "ada"
    assert n["target"]["__typename"] == "Thread"
    await gql.mutate("follow", tc, a)
    await gql.tao.run_jobs_until_idle()
    await dm.sent(ta, to=[c])  # cy follows ada: not a request
    assert [n["type"] for n in nodes(await listed(gql, tc))] == []
