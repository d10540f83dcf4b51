"""A send races a change of its thread's members: the delivery goes to the members as they are
when it commits, not as the request read them.

Each test holds the send between its read of the members and its delivery, for real: a
transaction of the test's own inserts the send's client key row (`dm_client`) and keeps it
uncommitted, so the send's claim of that key waits on MariaDB's row lock. While it waits, a
member leaves, one is added, or the sender leaves; then the test rolls its transaction back and
the send goes on. Before the delivery checked its members in its own transaction, all three
tests failed: the leaver got the thread back in their inbox with an unread mark and the event,
the new member got neither, and a sender who had left delivered anyway (and was made a member
again by the read marker the delivery wrote).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from resolvers.messages.model import CLIENT_KEYS
from resolvers.messages.send import do_send_message
from resolvers.realtime.events import STREAM_ATYPE
from tao.testing import TaoTestHooks as hooks
from tao.types import MESSAGE
from tests.resolvers.messages_client import DM, store_id
from tests.row_locks import held_by_a_transaction

pytestmark = pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)  # row locks are MariaDB's


@asynccontextmanager
async def client_key_held(tao, sender: str, cid: str) -> AsyncIterator[tuple[int, str]]:
    """The row of the sender's client key `cid`, inserted by another transaction and held
    uncommitted until the block ends (then rolled back): a send with that client id stops on it,
    after it has read the thread's members. Yields (the key's shard, the key)."""
    key = f"{store_id(sender)}:{cid}"
    shard = hooks(tao).key_shard(CLIENT_KEYS, key)
    # rolled back at the end: the send's insert goes through
    async with held_by_a_transaction(tao, shard, "INSERT INTO {unique_keys} (ns, k, id, version) "
                                     "VALUES (%s, %s, 0, 1)", (CLIENT_KEYS, key)):
        yield shard, key


@asynccontextmanager
async def send_held(gql, sender_token: str, sender: str, thread: str) -> AsyncIterator[asyncio.Task]:
    """A send into `thread`, started and held on its client key's row lock until the block ends
    (after it read the thread's members); yields its task."""
    cid = uuid.uuid4().hex
    async with client_key_held(gql.tao, sender, cid) as (shard, key):
        send = asyncio.create_task(DM(gql).send(sender_token, thread=thread, text="raced", cid=cid))
        await _until_waiting_on(hooks(gql.tao), shard, send, key)
        yield send


async def _until_waiting_on(h, shard: int, send: asyncio.Task, key: str) -> None:
    """Until the send's claim of `key` waits on the held row (it has read the members by then)."""
    for _ in range(200):
        assert not send.done(), send.result()
        async with h.read(shard) as conn:
            rows = await conn.fetchall("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
                                       "AND INFO LIKE %s", (f"INSERT INTO %unique_keys%{key}%",))
        if rows[0][0]:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the send never waited on the held client key")


async def _group(gql, dm: DM, n: int) -> tuple[list[tuple[str, str]], str]:
    users = [await gql.sign_up(f"u{i}") for i in range(n)]
    for t, _ in users[1:]:
        await gql.mutate("follow", t, users[0][1])  # the group lands in everyone's inbox
    group = (await dm.mutate("createGroupThread", users[0][0], {"userIds": [u for _, u in users[1:]]},
                             "thread { id } errors { code }"))["thread"]["id"]
    return users, group


async def _reached(gql, user: str, thread: str, message: int | None) -> dict[str, bool]:
    """What of a delivery the user has: the thread in a folder, marked unread, the message's event."""
    tao, u, t = gql.tao, store_id(user), store_id(thread)
    folders = {a: bool(await tao.assoc_get(u, a, [t])) for a in ("INBOX", "DM_REQUESTS", "UNREAD_THREAD")}
    stream = await tao.assoc_range(u, STREAM_ATYPE, 0, 100)
    event = any(e.data.get("k") == "message.new" and e.data.get("i", {}).get("message") == message for e in stream)
    return {"folder": folders["INBOX"] or folders["DM_REQUESTS"], "unread": folders["UNREAD_THREAD"], "event": event}


async def test_a_member_who_leaves_before_the_delivery_commits_gets_nothing_of_it(gql):
    dm = DM(gql)
    users, group = await _group(gql, dm, 4)
    (ta, a), (tb, b), (tc, c), (_, d) = users
    async with send_held(gql, ta, a, group) as send:
        await dm.mutate("leaveThread", tc, {"threadId": group})
    sent = await send
    assert sent["errors"] == [], sent
    message = store_id(sent["message"]["id"])
    assert await _reached(gql, c, group, message) == {"folder": False, "unread": False, "event": False}
    for member in (b, d):
        assert await _reached(gql, member, group, message) == {"folder": True, "unread": True, "event": True}
    assert [m["text"] for m in await dm.messages(tb, group)] == ["raced"]


async def test_a_member_added_before_the_delivery_commits_gets_it(gql):
    dm = DM(gql)
    users, group = await _group(gql, dm, 3)
    (ta, a), (tb, b), (_, c) = users
    te, e = await gql.sign_up("eve")
    await gql.mutate("follow", te, b)
    async with send_held(gql, ta, a, group) as send:
        added = await dm.mutate("addThreadMembers", tb, {"threadId": group, "userIds": [e]})
        assert added["errors"] == [], added
    sent = await send
    assert sent["errors"] == [], sent
    message = store_id(sent["message"]["id"])
    for member in (b, c, e):
        assert await _reached(gql, member, group, message) == {"folder": True, "unread": True, "event": True}, member
    inbox = await dm.inbox(te)
    assert inbox["unreadThreadCount"] == 1 and inbox["threads"]["nodes"][0]["lastMessage"]["text"] == "raced"


async def test_a_sender_who_left_before_the_delivery_commits_delivers_nothing(gql):
    dm = DM(gql)
    users, group = await _group(gql, dm, 3)
    (ta, a), (tb, b), (_, c) = users
    async with send_held(gql, ta, a, group) as send:
        await dm.mutate("leaveThread", ta, {"threadId": group})  # the sender, from another device
    sent = await send
    assert [x["code"] for x in sent["errors"]] == ["THREAD_NOT_FOUND"] and sent["message"] is None, sent
    assert await dm.messages(tb, group) == []
    for member in (b, c):
        assert (await _reached(gql, member, group, None))["unread"] is False
        stream = await gql.tao.assoc_range(store_id(member), STREAM_ATYPE, 0, 100)
        assert not [ev for ev in stream if ev.data.get("k") == "message.new"], member
    # and the sender stays out: the delivery did not write their read marker back
    assert not await gql.tao.assoc_get(store_id(group), "HAS_MEMBER", [store_id(a)])
    assert await dm.messages(ta, group) is None


@asynccontextmanager
async def member_lists_held(tao, member: int) -> AsyncIterator[None]:
    """Every list row of `member` (`assoc_counts`) locked by a transaction of the test's own
    until the block ends (then rolled back): a delivery transaction on the member's shard waits."""
    async with held_by_a_transaction(tao, tao.shard(member), "SELECT id1 FROM {assoc_counts} WHERE id1 = %s FOR UPDATE",
                                     (member,)):
        yield


async def test_the_repair_of_a_send_whose_writer_died_reaches_the_members_of_its_own_time(gql):
    """The writer stops after the message committed (in the thread's transaction, with its job
    and the delivery to the members on the thread's shard: its task is cancelled while its
    delivery to a member on another shard waits), that member leaves and one is added, then the
    outbox repairs the send: the event goes to the members the repair finds, like the folders
    and unread marks (the event used to have a job of its own, holding the members the request
    had read)."""
    dm = DM(gql)
    tao = gql.tao
    for _ in range(20):  # a member on another shard than the thread's: its delivery is a transaction of its own
        users, group = await _group(gql, dm, 3)
        (ta, a), *others = users
        away = [(t, m) for t, m in others if tao.shard(store_id(m)) != tao.shard(store_id(group))]
        if away:
            break
    else:
        pytest.fail("every group landed on its members' shard")
    tl, leaver = away[0]
    ts, stayer = next((t, m) for t, m in others if m != leaver)
    te, e = await gql.sign_up("eve")
    await gql.mutate("follow", te, stayer)
    async with member_lists_held(tao, store_id(leaver)):
        writer = asyncio.create_task(do_send_message(tao, store_id(a), client_id=uuid.uuid4().hex,
                                                     thread_id=store_id(group), text="orphaned"))
        for _ in range(500):  # until the thread's transaction committed the message
            async with hooks(tao).read(tao.shard(store_id(group))) as conn:
                if (await conn.fetchall("SELECT COUNT(*) FROM {objects} WHERE otype = %s", (MESSAGE.code,)))[0][0]:
                    break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert not writer.done()
        writer.cancel()  # the process dies here, as far as this send is concerned: the message is stored
    with pytest.raises(asyncio.CancelledError):
        await writer
    await dm.mutate("leaveThread", tl, {"threadId": group})
    assert (await dm.mutate("addThreadMembers", ts, {"threadId": group, "userIds": [e]}))["errors"] == []
    await tao.run_jobs_until_idle(include_delayed=True)
    listed = await tao.assoc_range(store_id(group), "HAS_MESSAGE", 0, 10)
    assert len(listed) == 1
    message = listed[0].id2
    assert await _reached(gql, leaver, group, message) == {"folder": False, "unread": False, "event": False}
    for member in (stayer, e):
        assert await _reached(gql, member, group, message) == {"folder": True, "unread": True, "event": True}, member
