"""Direct messages over subscriptions: inboxEvents/threadEvents, resume by cursor, typing, unsend, privacy."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from resolvers.realtime.stream import DAY_MS
from tao.models import now_ms
from tao.testing import TaoTestHooks as hooks
from tests.resolvers.messages_client import DM, CacheReads, CacheRounds, store_id

WS_PROTOCOL = "graphql-transport-ws"
EVENT_FIELDS = """__typename cursor eventId
  ... on NewMessageEvent { message { id text sender { username } } thread { id } }
  ... on MessageUnsentEvent { messageId thread { id } }
  ... on MessageEditedEvent { message { id text editedAt } }
  ... on MessageReactionEvent { message { id } user { username } }
  ... on ReadReceiptEvent { user { username } upToMessageId }
  ... on TypingEvent { user { username } typing }
  ... on ThreadChangedEvent { thread { id } added }
  ... on ThreadRemovedEvent { threadId }"""


@pytest.fixture
def dm(gql) -> DM:
    return DM(gql)


class Sub:
    def __init__(self, ws) -> None:
        self.ws = ws

    async def next(self, timeout: float = 10) -> dict:
        msg = await self.ws.receive_json(timeout=timeout)
        assert msg["type"] == "next", msg
        assert "errors" not in msg["payload"], msg["payload"]
        return next(iter(msg["payload"]["data"].values()))

    async def nothing(self, wait: float = 0.5) -> None:
        with pytest.raises(asyncio.TimeoutError):
            msg = await self.ws.receive_json(timeout=wait)
            pytest.fail(f"unexpected message {msg}")


@asynccontextmanager
async def subscribed(gql, token: str | None, field: str = "inboxEvents", args: str = "", variables: dict | None = None):
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}}
        )
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        arguments = "(" + ", ".join(f"{k}: ${k}" for k in variables) + ")" if variables else ""
        q = f"subscription{args} {{ {field}{arguments} {{ {EVENT_FIELDS} }} }}"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": q, "variables": variables or {}}})
        await asyncio.sleep(0.3)  # the subscription is listening before the test writes
        yield Sub(ws)


async def test_new_message_is_pushed_to_every_member(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    async with subscribed(gql, tb) as bob, subscribed(gql, ta) as ada:
        p = await dm.sent(ta, to=[b], text="live hello")
        events = [await bob.next(), await bob.next()]
        assert [e["__typename"] for e in events] == ["ThreadChangedEvent", "NewMessageEvent"]
        new = events[1]
        assert new["message"]["text"] == "live hello" and new["cursor"] and new["eventId"]
        assert new["message"]["id"] == p["message"]["id"] and new["thread"]["id"] == p["thread"]["id"]
        # the sender's other devices get it too
        assert (await ada.next())["__typename"] == "ThreadChangedEvent"
        assert (await ada.next())["message"]["text"] == "live hello"


async def test_resume_after_cursor_replays_what_was_missed_once(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="m1"))["thread"]["id"]
    async with subscribed(gql, tb, args="($after: String)", variables={"after": None}) as bob:
        await dm.sent(ta, thread=thread, text="m2")
        seen = await bob.next()
        assert seen["message"]["text"] == "m2"
    cursor = seen["cursor"]
    # offline: three more messages and a reaction
    for text in ("m3", "m4", "m5"):
        await dm.sent(ta, thread=thread, text=text)
    async with subscribed(gql, tb, args="($after: String)", variables={"after": cursor}) as bob:
        replayed = [await bob.next() for _ in range(3)]
        assert [e["message"]["text"] for e in replayed] == ["m3", "m4", "m5"]
        await dm.sent(ta, thread=thread, text="m6")  # then live, across the seam
        live = await bob.next()
        assert live["message"]["text"] == "m6"
        ids = [e["eventId"] for e in [*replayed, live]]
        assert len(set(ids)) == 4 and seen["eventId"] not in ids
        await bob.nothing()


async def test_thread_events_only_for_that_thread_and_members_only(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    ab = (await dm.sent(ta, to=[b], text="ab"))["thread"]["id"]
    ac = (await dm.sent(ta, to=[c], text="ac"))["thread"]["id"]
    async with subscribed(gql, ta, "threadEvents", "($threadId: ID!)", {"threadId": ab}) as ada:
        await dm.sent(tc, thread=ac, text="other thread")
        await dm.sent(tb, thread=ab, text="this thread")
        assert (await ada.next())["message"]["text"] == "this thread"
        await ada.nothing()
    # a thread the viewer is not in answers like an unknown one: an error, no events
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {tc}"}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($t: ID!) { threadEvents(threadId: $t) { cursor } }", "variables": {"t": ab}}})
        msg = await ws.receive_json(timeout=10)
        assert msg["type"] == "error" or msg["payload"].get("errors"), msg
        text = str(msg["payload"])
        assert "No such conversation" in text and "bob" not in text


async def test_thread_events_complete_once_the_viewer_is_out_of_the_thread(gql, dm):
    """Leaving a group (or being removed) ends its threadEvents: the ThreadRemovedEvent, then
    `complete`, rather than a subscription left open that can never carry anything again."""
    users = [await gql.sign_up(n) for n in ("ada", "bob", "cy")]
    group = (await dm.mutate("createGroupThread", users[0][0], {"userIds": [u for _, u in users[1:]]},
                             "thread { id } errors { code }"))["thread"]["id"]
    tc = users[2][0]
    async with subscribed(gql, tc, "threadEvents", "($threadId: ID!)", {"threadId": group}) as cy:
        assert (await dm.mutate("leaveThread", tc, {"threadId": group}))["errors"] == []
        assert (await cy.next())["__typename"] == "ThreadRemovedEvent"
        assert await cy.ws.receive_json(timeout=10) == {"id": "1", "type": "complete"}
        await dm.sent(users[0][0], thread=group, text="after cy left")
        await cy.nothing()


async def test_subscriptions_need_a_session(gql):
    token, _ = await gql.sign_up("ada")
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        await ws.send_json(
            {"id": "1", "type": "subscribe", "payload": {"query": "subscription { inboxEvents { cursor } }"}}
        )
        msg = await ws.receive_json(timeout=10)
        assert "logged in" in str(msg["payload"]), msg
    # after logout: the socket is refused
    await gql.ok("mutation { logOut { errors { code } } }", token=token)
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        msg = await ws.receive(timeout=10)
        if msg.type.name == "TEXT":
            msg = await ws.receive(timeout=10)
        assert ws.close_code == 4403


async def test_typing_is_pushed_and_never_stored(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hi"))["thread"]["id"]
    await gql.tao.run_jobs_until_idle()
    before = await _store_rows(gql)
    async with subscribed(gql, tb) as bob:
        p = await dm.mutate("setTyping", ta, {"threadId": thread, "typing": True})
        assert p["errors"] == []
        ev = await bob.next()
        assert ev == {"__typename": "TypingEvent", "cursor": None, "eventId": None, "user": {"username": "ada"},
                      "typing": True}
    await gql.tao.run_jobs_until_idle()
    assert await _store_rows(gql) == before  # no stream event, no outbox row, no edge, no object


async def _store_rows(gql) -> tuple:
    counts = []
    for s in range(gql.tao.n_shards):
        async with hooks(gql.tao).backend.connection(s) as conn:
            for table in ("objects", "assocs", "outbox"):
                counts.append((await conn.fetchall(f"SELECT COUNT(*) FROM {{{table}}}"))[0][0])
    return tuple(counts)


async def test_unsend_reaches_live_clients_and_leaves_the_store(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    p = await dm.sent(ta, to=[b], text="oops")
    thread, mid = p["thread"]["id"], p["message"]["id"]
    async with subscribed(gql, tb) as bob:
        u = await dm.mutate("unsendMessage", ta, {"messageId": mid}, "unsentMessageId errors { code }")
        assert u == {"unsentMessageId": mid, "errors": []}
        ev = await bob.next()
        assert ev["__typename"] == "MessageUnsentEvent" and ev["messageId"] == mid
    assert await dm.raw_object_data(store_id(mid)) is None
    assert await dm.messages(tb, thread) == []
    box = await dm.inbox(tb)
    assert box["unreadMessageCount"] == 0 and box["threads"]["nodes"][0]["lastMessage"] is None
    # only the sender may unsend
    q = await dm.sent(ta, thread=thread, text="mine")
    e = await dm.mutate("unsendMessage", tb, {"messageId": q["message"]["id"]})
    assert [x["code"] for x in e["errors"]] == ["NOT_SENDER"]


async def test_blocked_member_gets_no_new_activity_live(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    group = (await dm.mutate("createGroupThread", ta, {"userIds": [b, c], "name": "trio"},
                             "thread { id } errors { code }"))["thread"]["id"]
    await gql.mutate("block", ta, b)  # ada blocks bob: he sees nothing new of hers
    async with subscribed(gql, tb) as bob:
        await dm.sent(ta, thread=group, text="bob must not see this")
        await dm.mutate("setTyping", ta, {"threadId": group})
        await dm.sent(tc, thread=group, text="from cy")
        ev = await bob.next()
        assert ev["__typename"] == "NewMessageEvent" and ev["message"]["text"] == "from cy"
        await bob.nothing()
    texts = [m["text"] for m in await dm.messages(tb, group)]
    assert texts == ["from cy"]


async def test_edit_reaches_live_clients_stays_sealed_and_keeps_retries_idempotent(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    p = await dm.sent(ta, to=[b], text="see you at 5", cid="c-edit")
    thread, mid = p["thread"]["id"], p["message"]["id"]
    async with subscribed(gql, tb) as bob:
        e = await dm.mutate("editMessage", ta, {"messageId": mid, "text": "see you at 6"},
                            "message { text editedAt } errors { code }")
        assert e["errors"] == [] and e["message"]["text"] == "see you at 6" and e["message"]["editedAt"]
        ev = await bob.next()
        assert ev["__typename"] == "MessageEditedEvent" and ev["message"]["text"] == "see you at 6"
    raw = await dm.raw_object_data(store_id(mid))
    assert "see you" not in raw
    assert (await dm.messages(tb, thread))[0]["text"] == "see you at 6"
    # a retry of the original send answers with the (edited) message, not a new one
    again = await dm.sent(ta, to=[b], text="see you at 5", cid="c-edit")
    assert again["message"]["id"] == mid
    # only the sender, only text, within the limit
    assert [x["code"] for x in (await dm.mutate("editMessage", tb, {"messageId": mid, "text": "x"}))["errors"]] == [
        "NOT_SENDER"
    ]
    bad = await dm.mutate("editMessage", ta, {"messageId": mid, "text": "y" * 1001})
    assert [x["code"] for x in bad["errors"]] == ["TOO_LONG"]
    assert (await dm.messages(tb, thread))[0]["text"] == "see you at 6"



async def _replay_cost(gql, token: str, cursor: str, n: int) -> int:
    """Cache reads (calls of the tier's `get_many`, whatever servers each reaches) of a
    subscription that replays `n` stored events after `cursor`."""
    with CacheReads(gql) as counted:
        async with subscribed(gql, token, args="($after: String)", variables={"after": cursor}) as sub:
            assert len([await sub.next() for _ in range(n)]) == n
            return counted.count


async def _delivered_live(gql, dm, n: int) -> tuple[str, list[str]]:
    """ada sends bob (who follows her) `n` messages, each delivered live to his subscription
    (so the cache is warm): bob's token and the events' cursors."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="m0"))["thread"]["id"]
    cursors = []
    async with subscribed(gql, tb, args="($after: String)", variables={"after": None}) as bob:
        for i in range(n):
            await dm.sent(ta, thread=thread, text=f"m{i + 1}")
            cursors.append((await bob.next())["cursor"])
    return tb, cursors


async def test_a_delivered_event_reads_its_session_with_its_objects(gql, dm):
    """Each delivered event re-reads the session and rebuilds the event through fresh loaders;
    the session's read rides in the same loader batch as the event's message and thread (one
    cache read for the three), not one of its own."""
    tb, cursors = await _delivered_live(gql, dm, 8)
    four = await _replay_cost(gql, tb, cursors[3], 4)
    seven = await _replay_cost(gql, tb, cursors[0], 7)
    per_event = (seven - four) / 3
    print(f"replay: 4 events {four}, 7 events {seven} cache reads: {per_event:.2f} an event")
    # Measured (memcached and the embedded cache): 3 calls an event (the session with the
    # message, the thread and the sender; the member list; the viewer's block lists), which
    # share one round (below); 4 before the event named its sender, 5 when the session was
    # read alone.
    assert per_event <= 3, (four, seven)


async def test_a_delivered_message_costs_one_round_of_cache_reads(gql, dm):
    """A NewMessageEvent's reads (the session, the message, the thread, the thread's members,
    the sender and the viewer's block lists that their privacy rules read) go out together:
    the event names its sender, and what the rules read after the objects is queued with
    them. It took four rounds, one after the other, each waiting for the one before."""
    tb, cursors = await _delivered_live(gql, dm, 4)
    with CacheRounds(gql) as rounds:
        async with subscribed(gql, tb, args="($after: String)", variables={"after": cursors[0]}) as sub:
            got = [await sub.next() for _ in range(3)]
    assert [e["message"]["text"] for e in got] == ["m2", "m3", "m4"]
    if rounds.count is not None:  # memcached (the embedded cache has no network rounds)
        # the subscription's own set-up (its session, the viewer) and one round an event
        assert rounds.count <= 2 + 3, rounds.count


async def test_read_receipts_of_someone_who_restricts_you_are_not_pushed(gql, dm):
    """Ada restricts rex: her read receipts are not shown to him (`seenBy`, docs/stories.md,
    "Restrict"). The ReadReceiptEvent of her markThreadRead was still pushed to his live
    subscriptions, and replayed by cursor, telling him she had read his message; now it is
    built through the same rule as `seenBy` and skipped."""
    ta, a = await gql.sign_up("ada")
    tr, r = await gql.sign_up("rex")
    await gql.mutate("restrict", ta, r, "errors { code }")
    p = await dm.sent(tr, to=[a], text="did you read this?")
    thread = p["thread"]["id"]
    async with subscribed(gql, tr, args="($after: String)", variables={"after": None}) as rex:
        await dm.mutate("markThreadRead", ta, {"threadId": thread})
        await dm.sent(ta, thread=thread, text="hm")  # something he may see, after the receipt
        ev = await rex.next()
        assert ev["__typename"] == "NewMessageEvent" and ev["message"]["text"] == "hm", ev
        await rex.nothing()
    assert (await dm.messages(tr, thread))[1]["seenBy"] == []  # the rule the event now follows
    # nor by cursor (from before the receipt) ...
    stream = await gql.tao.assoc_range(store_id(r), "STREAM_EVENT", 0, 10)
    before = min(e.time for e in stream if e.data["k"] == "receipt.read") - 1
    async with subscribed(gql, tr, args="($after: String)", variables={"after": f"s{before}"}) as rex:
        assert (await rex.next())["__typename"] == "NewMessageEvent"
        await rex.nothing()
    # ... and once she lifts the restriction, her receipts reach him again
    await gql.mutate("unrestrict", ta, r, "errors { code }")
    async with subscribed(gql, tr) as rex:
        await dm.sent(tr, thread=thread, text="and now?")
        assert (await rex.next())["__typename"] == "NewMessageEvent"
        await dm.mutate("markThreadRead", ta, {"threadId": thread})
        ev = await rex.next()
        assert ev["__typename"] == "ReadReceiptEvent" and ev["user"]["username"] == "ada", ev


async def test_typing_of_someone_who_restricts_you_is_not_pushed(gql, dm):
    """Ada restricts rex: her activity is hidden from him, read receipts (above) and typing
    alike (docs/stories.md, "Restrict"). Her `setTyping` in a group they share was pushed to
    his subscriptions (inboxEvents and threadEvents) as to anyone. Dee, the control, is told;
    rex's own typing still reaches ada; once she lifts the restriction he is told again."""
    ta, a = await gql.sign_up("ada")
    tr, r = await gql.sign_up("rex")
    td, d = await gql.sign_up("dee")
    for t in (tr, td):  # the group lands in their inboxes (a request's reader shows no activity)
        assert (await gql.mutate("follow", t, a))["errors"] == []
    group = (await dm.mutate("createGroupThread", ta, {"userIds": [r, d], "name": "three"},
                             "thread { id } errors { code }"))["thread"]["id"]
    assert (await gql.mutate("restrict", ta, r, "errors { code }"))["errors"] == []
    async with subscribed(gql, tr) as rex, subscribed(gql, td) as dee, \
            subscribed(gql, tr, "threadEvents", "($threadId: ID!)", {"threadId": group}) as rex_thread, \
            subscribed(gql, ta) as ada:
        assert (await dm.mutate("setTyping", ta, {"threadId": group, "typing": True}))["errors"] == []
        ev = await dee.next()
        assert (ev["__typename"], ev["user"]["username"]) == ("TypingEvent", "ada"), ev
        await dm.mutate("setTyping", tr, {"threadId": group, "typing": True})  # the other way: shown
        ev = await ada.next()
        assert (ev["__typename"], ev["user"]["username"]) == ("TypingEvent", "rex"), ev
        await dm.sent(td, thread=group, text="from dee")  # something rex may see, after the typing
        for sub in (rex, rex_thread):
            ev = await sub.next()
            assert ev["__typename"] == "NewMessageEvent" and ev["message"]["text"] == "from dee", ev
            await sub.nothing()
    assert (await gql.mutate("unrestrict", ta, r, "errors { code }"))["errors"] == []
    async with subscribed(gql, tr) as rex:
        await dm.mutate("setTyping", ta, {"threadId": group, "typing": False})
        ev = await rex.next()
        assert (ev["__typename"], ev["user"]["username"], ev["typing"]) == ("TypingEvent", "ada", False), ev


async def test_reading_a_message_request_tells_its_sender_nothing_until_accepted(gql, dm):
    """Rex, a stranger, writes to ada: the thread is in her requests. She opens it (marks it
    read, starts typing): as on Instagram, rex is not told until she accepts. He was, live (a
    ReadReceiptEvent, a TypingEvent) and in `seenBy`: a stranger learned when, and whether, his
    request was read. Once she accepts, her reads show as anyone's."""
    ta, a = await gql.sign_up("ada")
    tr, r = await gql.sign_up("rex")
    p = await dm.sent(tr, to=[a], text="hi, remember me?")
    thread = p["thread"]["id"]
    async with subscribed(gql, tr) as rex:
        assert (await dm.mutate("markThreadRead", ta, {"threadId": thread}))["errors"] == []
        await dm.mutate("setTyping", ta, {"threadId": thread, "typing": True})  # nor her typing
        await dm.sent(tr, thread=thread, text="hello?")  # something he is told of, after the read
        ev = await rex.next()
        assert ev["__typename"] == "NewMessageEvent" and ev["message"]["text"] == "hello?", ev
        await rex.nothing()
    assert [m["seenBy"] for m in await dm.messages(tr, thread)] == [[], []]
    assert (await dm.mutate("acceptMessageRequest", ta, {"threadId": thread}))["errors"] == []
    assert [m["seenBy"] for m in await dm.messages(tr, thread)][1] == [{"username": "ada"}]
    async with subscribed(gql, tr) as rex:
        await dm.sent(tr, thread=thread, text="thanks")
        assert (await rex.next())["__typename"] == "NewMessageEvent"
        assert (await dm.mutate("markThreadRead", ta, {"threadId": thread}))["errors"] == []
        ev = await rex.next()
        assert ev["__typename"] == "ReadReceiptEvent" and ev["user"]["username"] == "ada", ev


async def test_a_cursor_past_every_event_is_refused(gql, dm):
    """A cursor no stream gave (past the clock by more than a day, or past a 64-bit integer):
    SQLite's store failed on it (INTERNAL_SERVER_ERROR) and MariaDB's read past every event, so
    the subscription stayed silent until the clock reached it. Now it is a BAD_USER_INPUT
    error on both, and a real cursor still resumes."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await dm.sent(ta, to=[b], text="m0")
    for cursor in ("s9223372036854775807", "s9999999999999999999", f"s{now_ms() + 3 * DAY_MS}"):
        async with subscribed(gql, tb, args="($after: String)", variables={"after": cursor}) as bob:
            msg = await bob.ws.receive_json(timeout=10)
            assert msg["type"] == "next" and msg["payload"]["data"] is None, (cursor, msg)
            (error,) = msg["payload"]["errors"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT", (cursor, error)
            assert "not a cursor of your stream" in error["message"]
    stream = await gql.tao.assoc_range(store_id(b), "STREAM_EVENT", 0, 10)
    async with subscribed(gql, tb, args="($after: String)", variables={"after": f"s{stream[-1].time}"}) as bob:
        assert (await bob.next())["message"]["text"] == "m0"


async def test_a_write_that_changes_nothing_delivers_nothing(gql, dm):
    """docs/messages.md: "a write that changed nothing (... a double tap) delivers nothing". A
    reaction repeated with the same emoji, a rename to the same name and an edit to the same
    text each stored one more event in every member's stream before (and reactions are not
    throttled: a member tapping one emoji ~1 000 times a minute pushed every other member's
    resume cursor past `realtime.max_replay`, so each reconnect answered CURSOR_EXPIRED)."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    p = await dm.sent(ta, to=[b], text="hello")
    thread, mid = p["thread"]["id"], p["message"]["id"]
    group = (await dm.mutate("createGroupThread", ta, {"userIds": [b], "name": "pair"},
                             "thread { id } errors { code }"))["thread"]["id"]
    await gql.tao.run_jobs_until_idle()
    stream = await gql.tao.assoc_count(store_id(b), "STREAM_EVENT")
    async with subscribed(gql, tb) as bob:
        for _ in range(3):
            r = await dm.mutate("reactToMessage", ta, {"messageId": mid, "emoji": "👍"},
                                "message { reactions { emoji } } errors { code }")
            assert r == {"message": {"reactions": [{"emoji": "👍"}]}, "errors": []}
        assert (await bob.next())["__typename"] == "MessageReactionEvent"
        for _ in range(2):
            assert (await dm.mutate("renameThread", ta, {"threadId": group, "name": "pair"}))["errors"] == []
        for _ in range(2):
            assert (await dm.mutate("editMessage", ta, {"messageId": mid, "text": "hello"}))["errors"] == []
        await bob.nothing()
    await gql.tao.run_jobs_until_idle()
    assert await gql.tao.assoc_count(store_id(b), "STREAM_EVENT") == stream + 1
    assert [m["text"] for m in await dm.messages(tb, thread)] == ["hello"]


async def test_a_member_repeating_typing_true_tells_the_others_once_a_while(gql, dm, gql_settings):
    """A client that sends `typing: true` at every keystroke (100 calls delivered 100 events to
    every other member's subscriptions before) tells them at most once every
    `messages.typing_repeat_seconds`; a stop, and a start after a stop, always go out."""
    gql_settings.messages.typing_repeat_seconds = 30.0  # longer than the test: no refill in between
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hi"))["thread"]["id"]
    async with subscribed(gql, tb) as bob:
        while True:  # what the send delivered
            try:
                await bob.next(timeout=0.5)
            except TimeoutError:
                break
        for _ in range(20):
            assert (await dm.mutate("setTyping", ta, {"threadId": thread, "typing": True}))["errors"] == []
        assert (await bob.next())["typing"] is True
        await bob.nothing(0.3)
        await dm.mutate("setTyping", ta, {"threadId": thread, "typing": False})
        assert (await bob.next())["typing"] is False
        await dm.mutate("setTyping", ta, {"threadId": thread, "typing": True})
        assert (await bob.next())["typing"] is True
        await bob.nothing(0.3)


async def test_typing_alternating_between_two_threads_is_suppressed_in_each(gql, dm, gql_settings):
    """The repeat suppression is per member and thread: a member typing in two conversations
    in turn (A, B, A, B, ...) tells each thread's others once per `messages.typing_repeat_seconds`,
    not once per call."""
    gql_settings.messages.typing_repeat_seconds = 30.0
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    one = (await dm.sent(ta, to=[b], text="hi"))["thread"]["id"]
    group = (await dm.mutate("createGroupThread", ta, {"userIds": [b, c], "name": "trio"},
                             "thread { id } errors { code }"))["thread"]["id"]
    async with subscribed(gql, tb) as bob:
        while True:  # what the send and the group's creation delivered
            try:
                await bob.next(timeout=0.5)
            except TimeoutError:
                break
        for _ in range(10):
            for thread in (one, group):
                assert (await dm.mutate("setTyping", ta, {"threadId": thread, "typing": True}))["errors"] == []
        got = []
        while True:
            try:
                got.append(await bob.next(timeout=0.7))
            except TimeoutError:
                break
    assert [e["typing"] for e in got] == [True, True], got


async def test_a_member_toggling_typing_is_published_at_most_typing_changes_per_minute(gql, dm, gql_settings):
    """A stop resets the repeat suppression so the next start goes out: a client alternating
    `typing: true` and `false` had every call published to every other member's subscriptions
    (31 in a full group, each built through their loaders and privacy), for one cheap mutation
    each. A member's typing changes are now published at most `messages.typing_changes_per_minute`
    times a minute over all their threads; past it a change is accepted and not published."""
    gql_settings.messages.typing_changes_per_minute = 6
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hi"))["thread"]["id"]
    async with subscribed(gql, tb) as bob:
        while True:  # what the send delivered
            try:
                await bob.next(timeout=0.5)
            except TimeoutError:
                break
        for _ in range(10):
            for typing in (True, False):
                assert (await dm.mutate("setTyping", ta, {"threadId": thread, "typing": typing}))["errors"] == []
        got = []
        while True:
            try:
                got.append(await bob.next(timeout=0.7))
            except TimeoutError:
                break
    assert [e["typing"] for e in got] == [True, False] * 3, got
