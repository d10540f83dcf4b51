"""Direct messages: threads, the inbox and its unread counts, idempotent sends, receipts, encryption at rest."""

from __future__ import annotations

import pytest

from tao.testing import TaoTestHooks as hooks
from tao.types import MESSAGE, THREAD
from tests.resolvers.messages_client import DM, store_id


@pytest.fixture
def dm(gql) -> DM:
    return DM(gql)


async def test_direct_message_reaches_the_inbox_with_exact_unread_counts(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)  # bob follows ada: her message lands in his inbox, not requests
    p = await dm.sent(ta, to=[b], text="hello bob")
    thread = p["thread"]["id"]
    assert p["message"]["text"] == "hello bob" and p["thread"]["isGroup"] is False
    await dm.sent(ta, thread=thread, text="are you there?")
    box = await dm.inbox(tb)
    assert box["unreadThreadCount"] == 1 and box["unreadMessageCount"] == 2
    (t,) = box["threads"]["nodes"]
    assert t["id"] == thread and t["unreadCount"] == 2 and t["isRequest"] is False
    assert t["lastMessage"]["text"] == "are you there?"
    assert sorted(m["username"] for m in t["members"]) == ["ada", "bob"]
    # the sender's own messages are never unread for her
    mine = await dm.inbox(ta)
    assert mine["unreadThreadCount"] == 0 and mine["threads"]["nodes"][0]["unreadCount"] == 0
    # the same pair always gets the same direct thread, from either side
    p2 = await dm.sent(tb, to=[a], text="yes")
    assert p2["thread"]["id"] == thread
    msgs = await dm.messages(tb, thread)
    assert [m["text"] for m in msgs] == ["yes", "are you there?", "hello bob"]  # newest first


async def test_mark_read_up_to_a_message_and_seen_by(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    first = (await dm.sent(ta, to=[b], text="one"))
    thread = first["thread"]["id"]
    second = await dm.sent(ta, thread=thread, text="two")
    await dm.sent(ta, thread=thread, text="three")
    p = await dm.mutate("markThreadRead", tb, {"threadId": thread, "upTo": second["message"]["id"]},
                        "thread { unreadCount } errors { code }")
    assert p == {"thread": {"unreadCount": 1}, "errors": []}
    box = await dm.inbox(tb)
    assert box["unreadThreadCount"] == 1 and box["unreadMessageCount"] == 1
    msgs = await dm.messages(ta, thread)
    assert [[u["username"] for u in m["seenBy"]] for m in msgs] == [[], ["bob"], ["bob"]]
    # a read marker never moves back
    await dm.mutate("markThreadRead", tb, {"threadId": thread, "upTo": first["message"]["id"]})
    assert (await dm.inbox(tb))["unreadMessageCount"] == 1
    await dm.mutate("markThreadRead", tb, {"threadId": thread})
    box = await dm.inbox(tb)
    assert box["unreadThreadCount"] == 0 and box["unreadMessageCount"] == 0
    assert await gql.tao.assoc_count(store_id(b), "UNREAD_THREAD") == 0
    await dm.sent(ta, thread=thread, text="four")
    assert (await dm.inbox(tb))["unreadMessageCount"] == 1


async def test_a_retry_may_name_the_conversation_the_other_way(gql, dm):
    """A first message sent by `recipientIds` whose answer was lost, retried by `threadId` (the
    app learned the thread from its inbox events meanwhile), is the same message; and the other
    way round. Naming another conversation, or other content, is still CLIENT_ID_REUSED."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    first = await dm.sent(ta, to=[b], text="hello", cid="lost-1")
    thread = first["thread"]["id"]
    again = await dm.sent(ta, thread=thread, text="hello", cid="lost-1")
    assert again["message"]["id"] == first["message"]["id"] and again["thread"]["id"] == thread
    by_thread = await dm.sent(ta, thread=thread, text="second", cid="lost-2")
    by_people = await dm.sent(ta, to=[b], text="second", cid="lost-2")
    assert by_people["message"]["id"] == by_thread["message"]["id"]
    assert [m["text"] for m in await dm.messages(ta, thread)] == ["second", "hello"]
    other = (await dm.sent(ta, to=[c], text="hi cy"))["thread"]["id"]
    retries = ({"thread": other, "text": "hello"}, {"to": [c], "text": "hello"}, {"thread": thread, "text": "hullo"})
    for retry in retries:
        bad = await dm.send(ta, cid="lost-1", **retry)
        assert [e["code"] for e in bad["errors"]] == ["CLIENT_ID_REUSED"] and bad["message"] is None, retry
    assert await dm.count_objects(MESSAGE.code) == 3


async def test_inbox_is_ordered_by_last_activity(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    for t in (tb, tc):
        await gql.mutate("follow", t, a)
    ab = (await dm.sent(ta, to=[b]))["thread"]["id"]
    ac = (await dm.sent(ta, to=[c]))["thread"]["id"]
    assert [t["id"] for t in (await dm.inbox(ta))["threads"]["nodes"]] == [ac, ab]
    await dm.sent(tb, thread=ab, text="bump")
    assert [t["id"] for t in (await dm.inbox(ta))["threads"]["nodes"]] == [ab, ac]


async def test_retried_send_is_one_message(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    p1 = await dm.sent(ta, to=[b], text="once", cid="c-1")
    p2 = await dm.sent(ta, to=[b], text="once", cid="c-1")
    assert p1["message"]["id"] == p2["message"]["id"] and p2["message"]["clientMessageId"] == "c-1"
    thread = p1["thread"]["id"]
    p3 = await dm.sent(ta, thread=thread, text="twice", cid="c-2")
    p4 = await dm.sent(ta, thread=thread, text="twice", cid="c-2")
    assert p3["message"]["id"] == p4["message"]["id"]
    assert [m["text"] for m in await dm.messages(ta, thread)] == ["twice", "once"]
    assert await dm.count_objects(MESSAGE.code) == 2
    # the same id with other content: a clear error, and nothing stored
    bad = await dm.send(ta, thread=thread, text="something else", cid="c-2")
    assert [e["code"] for e in bad["errors"]] == ["CLIENT_ID_REUSED"] and bad["message"] is None
    assert await dm.count_objects(MESSAGE.code) == 2
    # another sender may use the same client id: ids are per sender
    other = await dm.sent(tb, thread=thread, text="mine", cid="c-2")
    assert other["message"]["id"] != p3["message"]["id"]


async def test_concurrent_retries_store_one_message(gql, dm):
    import asyncio

    ta, a = await gql.sign_up("ada")
    _, b = await gql.sign_up("bob")
    results = await asyncio.gather(*(dm.send(ta, to=[b], text="race", cid="same") for _ in range(4)))
    ids = {r["message"]["id"] for r in results}
    assert len(ids) == 1 and all(r["errors"] == [] for r in results)
    await gql.tao.run_jobs_until_idle()
    assert await dm.count_objects(MESSAGE.code) == 1
    assert await dm.count_objects(THREAD.code) == 1  # racing first messages still make one thread


async def test_concurrent_retries_into_a_thread_store_one_message(gql, dm):
    """Into a thread, a retry finds its twin by the claim of the client key; the loser may find
    the key claimed for a message not stored yet (the winner is between its claim and its
    delivery) and stores it under that id itself: one of the two inserts of the id fails, and
    that try answers with the other's message."""
    import asyncio

    ta, a = await gql.sign_up("ada")
    _, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="first"))["thread"]["id"]
    for round_ in range(3):
        results = await asyncio.gather(*(dm.send(ta, thread=thread, text="race", cid=f"same-{round_}")
                                         for _ in range(4)))
        assert all(r["errors"] == [] for r in results), results
        assert len({r["message"]["id"] for r in results}) == 1, results
    await gql.tao.run_jobs_until_idle()
    assert await dm.count_objects(MESSAGE.code) == 4
    assert len(await dm.messages(ta, thread)) == 4


async def test_a_send_that_died_after_claiming_its_key_is_finished_by_its_retry(gql, dm):
    """A send claims its client key under its message's planned id, then stores the message in
    its delivery: a writer that died in between left the key naming nothing. Its retry stores
    the message under that id (not CLIENT_ID_REUSED, which would tell the app its own retry was
    another message)."""
    from resolvers.messages.model import CLIENT_KEYS, client_key

    ta, a = await gql.sign_up("ada")
    _, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="first"))["thread"]["id"]
    planned = gql.tao.obj_plan("MESSAGE", {}, owner=store_id(thread))
    assert await gql.tao.key_claim(CLIENT_KEYS, client_key(store_id(a), "died-1"), planned.obj.id)
    retry = await dm.sent(ta, thread=thread, text="after a crash", cid="died-1")
    assert store_id(retry["message"]["id"]) == planned.obj.id
    assert [m["text"] for m in await dm.messages(ta, thread)] == ["after a crash", "first"]
    again = await dm.sent(ta, thread=thread, text="after a crash", cid="died-1")
    assert again["message"]["id"] == retry["message"]["id"]
    assert await dm.count_objects(MESSAGE.code) == 2


async def test_an_unsent_message_stays_unsent_when_its_send_is_retried(gql, dm):
    """Unsend moves the client key from the message to its thread before the message goes:
    a retry of its send (from the device whose answer was lost) is CLIENT_ID_REUSED, never the
    message back (a key naming no stored message reads as a send that died before storing it)."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="first"))["thread"]["id"]
    sent = await dm.sent(ta, thread=thread, text="oops", cid="gone-1")
    assert (await dm.mutate("unsendMessage", ta, {"messageId": sent["message"]["id"]}))["errors"] == []
    retry = await dm.send(ta, thread=thread, text="oops", cid="gone-1")
    assert [e["code"] for e in retry["errors"]] == ["CLIENT_ID_REUSED"] and retry["message"] is None
    assert [m["text"] for m in await dm.messages(tb, thread)] == ["first"]
    assert await dm.count_objects(MESSAGE.code) == 1


async def test_bodies_are_encrypted_at_rest(gql, dm):
    ta, a = await gql.sign_up("ada")
    _, b = await gql.sign_up("bob")
    secret = "the launch code is swordfish-4711"
    p = await dm.sent(ta, to=[b], text=secret)
    raw = await dm.raw_object_data(store_id(p["message"]["id"]))
    assert raw is not None and "swordfish" not in raw and "launch" not in raw
    assert '"k":"dev"' in raw.replace(" ", "")  # the key id is stored beside the ciphertext
    # nothing else in the store holds it either: outbox rows and edges carry ids only
    for s in range(gql.tao.n_shards):
        async with hooks(gql.tao).backend.connection(s) as conn:
            for table, col in (("outbox", "payload"), ("assocs", "data"), ("objects", "data")):
                rows = await conn.fetchall(f"SELECT {col} FROM {{{table}}}")
                assert not any("swordfish" in str(r[0]) for r in rows), table
    assert (await dm.messages(ta, p["thread"]["id"]))[0]["text"] == secret


async def test_rotated_key_still_opens_old_bodies(gql, dm, gql_settings):
    ta, a = await gql.sign_up("ada")
    _, b = await gql.sign_up("bob")
    p = await dm.sent(ta, to=[b], text="sealed under dev")
    gql_settings.messages.encryption_keys = {**gql_settings.messages.encryption_keys,
                                             "k2": "MjAyNi1yb3RhdGlvbi1rZXktMzItYnl0ZXMtbG9uZyE="}
    gql_settings.messages.active_key = "k2"
    q = await dm.sent(ta, thread=p["thread"]["id"], text="sealed under k2")
    assert '"k":"k2"' in (await dm.raw_object_data(store_id(q["message"]["id"]))).replace(" ", "")
    texts = [m["text"] for m in await dm.messages(ta, p["thread"]["id"])]
    assert texts == ["sealed under k2", "sealed under dev"]


async def test_reseal_moves_old_bodies_to_the_active_key(gql, dm, gql_settings):
    from resolvers.messages.reseal import reseal_thread

    ta, a = await gql.sign_up("ada")
    _, b = await gql.sign_up("bob")
    p = await dm.sent(ta, to=[b], text="old key", cid="before-rotation")
    thread = p["thread"]["id"]
    cfg = gql_settings.messages
    cfg.encryption_keys = {**cfg.encryption_keys, "k2": "MjAyNi1yb3RhdGlvbi1rZXktMzItYnl0ZXMtbG9uZyE="}
    cfg.active_key = "k2"
    await dm.sent(ta, thread=thread, text="new key")
    assert await reseal_thread(gql.tao, cfg, store_id(thread)) == 1
    assert await reseal_thread(gql.tao, cfg, store_id(thread)) == 0  # idempotent
    assert '"k":"k2"' in (await dm.raw_object_data(store_id(p["message"]["id"]))).replace(" ", "")
    # a retry of a send made before the rotation is still the same message
    again = await dm.sent(ta, to=[b], text="old key", cid="before-rotation")
    assert again["message"]["id"] == p["message"]["id"]
    cfg.encryption_keys = {"k2": cfg.encryption_keys["k2"]}  # the old key retired
    assert [m["text"] for m in await dm.messages(ta, thread)] == ["new key", "old key"]


def test_the_app_refuses_to_start_with_unusable_message_keys(gql_settings):
    from config import ConfigError
    from server import create_app

    gql_settings.messages.active_key = "2026-12"  # the production example before its keys are set
    with pytest.raises(ConfigError, match="active_key"):
        create_app(gql_settings)
    gql_settings.messages.encryption_keys = {"2026-12": "c2hvcnQ="}
    with pytest.raises(ConfigError, match="32 bytes"):
        create_app(gql_settings)


async def test_quick_sends_by_one_sender_into_one_thread_all_land(gql, dm):
    """A burst of sends into one thread by its sender (a photo batch, two devices): each send's
    delivery moves the sender's read marker, which the others' deliveries check under the member
    list's lock. A read marker another send moved is not a change of who is in the thread: every
    send is answered and delivered at once, and the marker ends at the newest message, never
    moved back by a slower send of an older one."""
    import asyncio

    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="first"))["thread"]["id"]
    results = await asyncio.gather(*(dm.send(ta, thread=thread, text=f"burst {i}") for i in range(8)))
    assert [r["errors"] for r in results] == [[]] * 8, results
    # delivered by the sends themselves, not by their repair jobs (none is run here)
    box = await dm.inbox(tb)
    assert box["unreadMessageCount"] == 9 and box["threads"]["nodes"][0]["unreadCount"] == 9
    mine = await dm.inbox(ta)
    assert mine["unreadMessageCount"] == 0, mine  # her read marker is at her newest message
    texts = [m["text"] for m in await dm.messages(tb, thread)]
    assert sorted(texts) == sorted(["first", *(f"burst {i}" for i in range(8))])
