"""Direct messages across two real `server.py` processes (MariaDB, memcached, Redis): a send on
one reaches the recipient subscribed on the other, a killed Redis loses no message, and resume
by cursor replays exactly what was missed."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from tests.harness import Services
from tests.test_realtime_processes import Api, rt_settings, two_servers  # noqa: F401  (fixtures)
from tests.wsclient import WSClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

INBOX_EVENTS = """subscription($after: String) { inboxEvents(after: $after) { __typename cursor eventId
  ... on NewMessageEvent { message { id text } } } }"""
SEND = """mutation($i: MessageSendInput!) { sendMessage(input: $i) { message { id } thread { id } errors { code } } }"""


async def send(api: Api, token: str, text: str, *, to: str | None = None, thread: str | None = None) -> dict:
    i = {"clientMessageId": uuid.uuid4().hex, "text": text, **({"recipientIds": [to]} if to else {"threadId": thread})}
    p = (await api.ok(SEND, {"i": i}, token))["sendMessage"]
    assert p["errors"] == [], p
    return p


async def messages(sock: WSClient, n: int, timeout: float = 10.0) -> list[dict]:
    out = []
    while len(out) < n:
        e = (await sock.next_data("1", timeout))["inboxEvents"]
        if e["__typename"] == "NewMessageEvent":
            out.append(e)
    return out


async def test_send_on_one_process_reaches_the_other_through_a_redis_outage(two_servers, services: Services) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        api_a, api_b = Api(http, a), Api(http, b)
        ta, ida = await api_a.sign_up("ada")
        tb, idb = await api_a.sign_up("bob")
        await api_b.follow(tb, ida)
        thread = (await send(api_a, ta, "m0", to=idb))["thread"]["id"]
        sock = await api_b.ws(tb)
        await sock.subscribe("1", INBOX_EVENTS)
        await asyncio.sleep(0.5)
        await send(api_a, ta, "m1", thread=thread)
        (first,) = await messages(sock, 1)
        assert first["message"]["text"] == "m1"
        await asyncio.to_thread(services.kill_redis)
        await send(api_a, ta, "m2", thread=thread)  # acknowledged while Redis is down: stored
        await send(api_a, ta, "m3", thread=thread)
        await asyncio.to_thread(services.start_redis)
        missed = await messages(sock, 2, timeout=20)
        assert [m["message"]["text"] for m in missed] == ["m2", "m3"]
        await asyncio.sleep(0.5)
        await send(api_a, ta, "m4", thread=thread)
        (live,) = await messages(sock, 1, timeout=20)
        assert live["message"]["text"] == "m4"
        await sock.close()
        # offline, then resume by cursor on the other process: each message once, in order
        await send(api_b, ta, "m5", thread=thread)
        sock = await api_a.ws(tb)
        await sock.subscribe("1", INBOX_EVENTS, {"after": first["cursor"]})
        again = await messages(sock, 4)
        assert [e["message"]["text"] for e in again] == ["m2", "m3", "m4", "m5"]
        assert len({e["eventId"] for e in again}) == 4
        with pytest.raises(TimeoutError):
            await sock.next_data("1", timeout=1.0)
        await sock.close()


async def test_two_devices_on_two_processes_reply_and_mark_read_at_once(two_servers) -> None:
    """Bob's phone and laptop, connected to different server processes, answer ada's message
    request with a burst of replies and mark the thread read at once. Every reply lands (each
    accepts the request: 3 of 4 quick replies were INTERNAL_SERVER_ERROR when the accepts
    raced), and his read marker ends at the newest message whatever order the marks commit
    in (an older mark could move it back)."""
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        api_a, api_b = Api(http, a), Api(http, b)
        ta, ida = await api_a.sign_up("ada")
        tb, idb = await api_a.sign_up("bob")
        thread = (await send(api_a, ta, "m0", to=idb))["thread"]["id"]
        ids = [(await send(api_a, ta, f"m{i}", thread=thread))["message"]["id"] for i in range(1, 5)]
        replies = [api.ok(SEND, {"i": {"clientMessageId": uuid.uuid4().hex, "text": f"r{i}", "threadId": thread}}, tb)
                   for i, api in enumerate([api_a, api_b] * 3)]
        mark = "mutation($i: ThreadMarkReadInput!) { markThreadRead(input: $i) { errors { code } } }"
        marks = [api.ok(mark, {"i": {"threadId": thread, "upTo": m}}, tb)
                 for api, m in zip([api_a, api_b] * 2, reversed(ids))]
        results = await asyncio.gather(*replies, *marks)
        assert [r["sendMessage"]["errors"] for r in results[:6]] == [[]] * 6, results
        assert [r["markThreadRead"]["errors"] for r in results[6:]] == [[]] * 4, results
        box = await api_b.ok("""{ inbox { unreadMessageCount threads(folder: INBOX) { nodes { id } }
          requests: threads(folder: REQUESTS) { nodes { id } } } }""", None, tb)
        assert box["inbox"]["unreadMessageCount"] == 0, box
        assert box["inbox"]["threads"]["nodes"] == [{"id": thread}] and box["inbox"]["requests"]["nodes"] == []
        seen = await api_a.ok("query($t: ID!) { thread(id: $t) { messages(first: 20) { nodes { text "
                              "seenBy { username } } } } }", {"t": thread}, ta)
        by_text = {m["text"]: m["seenBy"] for m in seen["thread"]["messages"]["nodes"]}
        assert by_text["m4"] == [{"username": "bob"}], by_text
