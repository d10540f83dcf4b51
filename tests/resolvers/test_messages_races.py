"""Direct messages under concurrency: what a real app does at once (two devices, several members)
must end as if the requests had run one after another, with no error a client could not act on.

Each test fails on the code before its fix (named in the test's docstring)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from resolvers.edge_data import MemberState
from tao.testing import TaoTestHooks as hooks
from tests.resolvers.messages_client import DM, store_id
from tests.row_locks import held_by_a_transaction


@asynccontextmanager
async def member_list_locked(tao, thread: str) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """The thread's member list locked (its `assoc_counts` row, the lock every writer of the list
    takes) by a transaction of the test's own until the block ends; yields `waiting`: `await
    waiting(n)` returns once `n` writers wait on that lock."""
    h = hooks(tao)
    shard, t = tao.shard(store_id(thread)), store_id(thread)

    async def waiting(n: int) -> None:
        for _ in range(300):
            async with h.read(shard) as conn:
                rows = await conn.fetchall("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = "
                                           "'Query' AND INFO LIKE %s AND INFO LIKE %s",
                                           ("INSERT INTO %assoc_counts%", f"%{t}%"))  # the lock
            if rows[0][0] >= n:
                return
            await asyncio.sleep(0.02)
        pytest.fail(f"fewer than {n} writers waited on the member list")

    async with held_by_a_transaction(tao, shard, "SELECT version FROM {assoc_counts} WHERE id1 = %s AND atype = %s "
                                     "FOR UPDATE", (t, h.atype("HAS_MEMBER").code)):
        yield waiting


@pytest.fixture
def dm(gql) -> DM:
    return DM(gql)


async def _marker(gql, thread: str, user: str) -> MemberState:
    edge = (await gql.tao.assoc_get(store_id(thread), "HAS_MEMBER", [store_id(user)]))[store_id(user)]
    return MemberState.decode(edge.data)


async def test_a_decline_is_not_undone_by_a_mark_read_racing_it(gql, dm):
    """Bob declines a request on his phone while his laptop marks it read. Each wrote the member
    edge's data it had read with its own change (a read, then an `assoc_add`): the mark, last,
    wrote `declined` away, and the declined request was back (`thread(id:)`, the next message
    in his requests). Now each change is compared with the edge under the member list's lock."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hello?"))["thread"]["id"]
    results = await asyncio.gather(dm.mutate("declineMessageRequest", tb, {"threadId": thread}),
                                   *(dm.mutate("markThreadRead", tb, {"threadId": thread}) for _ in range(3)))
    assert results[0] == {"errors": []}
    assert (await _marker(gql, thread, b)).declined
    assert (await gql.ok("query($t: ID!) { thread(id: $t) { id } }", {"t": thread}, tb))["thread"] is None
    await dm.sent(ta, thread=thread, text="hello??")
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []


@pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)  # row locks are MariaDB's
async def test_a_decline_and_a_mark_read_held_together_both_hold(gql, dm):
    """The same race made certain: both writes read bob's member edge, then wait on the member
    list's lock (held by the test) and go on together. One of the two changes was lost either
    way (the declined flag or the read marker); now the second is computed again."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hello?"))["thread"]["id"]
    newest = (await dm.sent(ta, thread=thread, text="anyone?"))["message"]["id"]
    async with member_list_locked(gql.tao, thread) as waiting:
        mark = asyncio.create_task(dm.mutate("markThreadRead", tb, {"threadId": thread}))
        await waiting(1)
        decline = asyncio.create_task(dm.mutate("declineMessageRequest", tb, {"threadId": thread}))
        await waiting(2)
    assert await mark == {"errors": []} and await decline == {"errors": []}
    state = await _marker(gql, thread, b)
    assert state.declined and state.read[1] == store_id(newest), state


@pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)
async def test_two_marks_held_together_never_move_the_marker_back(gql, dm):
    """Two devices' marks, the newer first, both read the marker and then wait on the member
    list's lock together: the older one, last, moved the marker back."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="one"))["thread"]["id"]
    older = (await dm.sent(ta, thread=thread, text="two"))["message"]["id"]
    newest = (await dm.sent(ta, thread=thread, text="three"))["message"]["id"]
    async with member_list_locked(gql.tao, thread) as waiting:
        first = asyncio.create_task(dm.mutate("markThreadRead", tb, {"threadId": thread, "upTo": newest}))
        await waiting(1)
        second = asyncio.create_task(dm.mutate("markThreadRead", tb, {"threadId": thread, "upTo": older}))
        await waiting(2)
    assert await first == {"errors": []} and await second == {"errors": []}
    assert (await _marker(gql, thread, b)).read[1] == store_id(newest)
    box = await dm.inbox(tb)
    assert box["unreadMessageCount"] == 0 and box["threads"]["nodes"][0]["unreadCount"] == 0


async def test_read_markers_never_move_back_when_marks_race(gql, dm):
    """Two devices mark a thread read up to different messages at once (the newest first here):
    each compared its `upTo` with the marker it had read, then wrote it, so the older mark, last,
    moved the marker back; the thread counted unread again while the inbox said it was read.
    The sender's own mark of an older message racing their sends did the same to their marker."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="m0"))["thread"]["id"]
    ids = [(await dm.sent(ta, thread=thread, text=f"m{i}"))["message"]["id"] for i in range(1, 7)]
    results = await asyncio.gather(*(dm.mutate("markThreadRead", tb, {"threadId": thread, "upTo": m})
                                     for m in reversed(ids)))
    assert results == [{"errors": []}] * len(ids)
    assert (await _marker(gql, thread, b)).read[1] == store_id(ids[-1])
    box = await dm.inbox(tb)
    assert box["unreadMessageCount"] == 0 and box["threads"]["nodes"][0]["unreadCount"] == 0
    # ada marks an older message read on one device while she sends from another
    sent = await asyncio.gather(dm.mutate("markThreadRead", ta, {"threadId": thread, "upTo": ids[0]}),
                                *(dm.send(ta, thread=thread, text=f"n{i}") for i in range(3)),
                                dm.mutate("markThreadRead", ta, {"threadId": thread, "upTo": ids[1]}))
    newest = max(store_id(p["message"]["id"]) for p in sent[1:4])
    assert (await _marker(gql, thread, a)).read[1] == newest


def _no_request_limits(settings) -> None:
    """Room for a test that adds many strangers to groups (adds count as message requests)."""
    m = settings.messages
    m.requests_per_hour = m.new_account_requests_per_hour = 1000
    m.new_recipients_per_day = m.new_account_new_recipients_per_day = 1000


async def test_adds_racing_keep_a_group_within_its_limit(gql, dm, gql_settings):
    """Two members add people to a 2-member group at once, 20 each: each add compared the limit
    (32) with the member list it had read, so both passed and the group held 42 (and with more
    adds at once, past the 64 member edges every member-list read takes, cutting its oldest
    members, the creator first, out of deliveries). Now the limit is checked in the add's
    transaction under the member list's lock: one add lands, the other is TOO_MANY_MEMBERS."""
    _no_request_limits(gql_settings)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    users = [(await gql.sign_up(f"u{i}"))[1] for i in range(40)]
    made = await dm.mutate("createGroupThread", ta, {"userIds": [b]}, "thread { id } errors { code }")
    thread = made["thread"]["id"]
    results = await asyncio.gather(dm.mutate("addThreadMembers", ta, {"threadId": thread, "userIds": users[:20]}),
                                   dm.mutate("addThreadMembers", tb, {"threadId": thread, "userIds": users[20:]}))
    codes = sorted(e["code"] for r in results for e in r["errors"])
    assert codes == ["TOO_MANY_MEMBERS"], results
    assert await gql.tao.assoc_count(store_id(thread), "HAS_MEMBER") == 22
    # the same people added by two members at once are added once (one event each)
    more = users[:20] if results[0]["errors"] else users[20:]
    more = more[:5]
    results = await asyncio.gather(dm.mutate("addThreadMembers", ta, {"threadId": thread, "userIds": more}),
                                   dm.mutate("addThreadMembers", tb, {"threadId": thread, "userIds": more}))
    assert list(results) == [{"errors": []}] * 2
    assert await gql.tao.assoc_count(store_id(thread), "HAS_MEMBER") == 27
    from resolvers.realtime.events import STREAM_ATYPE
    for u in more:
        stream = await gql.tao.assoc_range(store_id(u), STREAM_ATYPE, 0, 100)
        assert [e.data["k"] for e in stream].count("thread.added") == 1


@asynccontextmanager
async def before_store_call(gql, verb: str, match: Callable[..., bool], run: Callable[[], Awaitable[object]]):
    """While open, the first call of the store's `verb` whose arguments `match` first awaits
    `run()` (another request, through the API), then goes on: that request lands exactly
    between the call's caller's reads and its write. The store itself is the real one."""
    tao = gql.tao
    real = getattr(tao, verb)
    done: list[object] = []

    async def wrapped(*args, **kwargs):
        if not done and match(*args, **kwargs):
            done.append(await run())
        return await real(*args, **kwargs)
    setattr(tao, verb, wrapped)
    try:
        yield done
    finally:
        setattr(tao, verb, real)


async def _thread_with_message(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    p = await dm.sent(ta, to=[b], text="oops")
    return ta, tb, p["thread"]["id"], p["message"]["id"]


async def test_an_edit_racing_an_unsend_is_message_not_found(gql, dm):
    """Ada edits a message on one device while unsending it on another, and the unsend lands
    between the edit's read of the message and its write: the write found no object and the
    edit answered INTERNAL_SERVER_ERROR. Now it answers MESSAGE_NOT_FOUND, as an edit after
    the unsend does, and stores nothing."""
    ta, tb, thread, mid = await _thread_with_message(gql, dm)
    unsend = lambda: dm.mutate("unsendMessage", ta, {"messageId": mid})  # noqa: E731
    async with before_store_call(gql, "obj_update", lambda id_, *a, **k: id_ == store_id(mid), unsend) as done:
        body = await gql("mutation($i: MessageEditInput!) { editMessage(input: $i) { message { id } "
                         "errors { code } } }", {"i": {"messageId": mid, "text": "fixed"}}, ta)
    assert done == [{"errors": []}]
    assert "errors" not in body, body
    assert body["data"]["editMessage"] == {"message": None, "errors": [{"code": "MESSAGE_NOT_FOUND"}]}
    assert await gql.tao.obj_get([store_id(mid)]) == {}


async def test_a_reaction_racing_an_unsend_leaves_nothing_behind(gql, dm):
    """Bob reacts to a message while ada unsends it, the unsend landing between the reaction's
    read of the message and its write: the unsend had swept the reactions already, so bob's
    REACTED_BY edge stayed in the store on a message that no longer exists (unsend promises
    its reactions are deleted from the store), and the reaction answered as if it had landed.
    Now the unsend deletes the object before it sweeps, and a reaction that finds the message
    gone after its write takes the edge back: MESSAGE_NOT_FOUND."""
    ta, tb, thread, mid = await _thread_with_message(gql, dm)
    unsend = lambda: dm.mutate("unsendMessage", ta, {"messageId": mid})  # noqa: E731

    def reaction(id1, atype, *a, **k) -> bool:
        return id1 == store_id(mid) and atype == "REACTED_BY"
    async with before_store_call(gql, "assoc_add", reaction, unsend) as done:
        p = await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": "\u2764"})
    assert done == [{"errors": []}]
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("MESSAGE_NOT_FOUND", "messageId")], p
    assert await gql.tao.assoc_range(store_id(mid), "REACTED_BY", 0, 10) == []
    assert await gql.tao.assoc_count(store_id(mid), "REACTED_BY") == 0


async def test_quick_replies_to_a_message_request_all_land(gql, dm):
    """Bob answers ada's message request with a burst of replies. Each reply accepts the request
    (moves the thread from his requests to his inbox); each read the request, then moved it, and
    every one but the first found no edge to move: 3 of 4 replies failed with
    INTERNAL_SERVER_ERROR. Two accepts at once (two devices) did the same."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hi, we met at the conference"))["thread"]["id"]
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"][0]["id"] == thread
    results = await asyncio.gather(*(dm.send(tb, thread=thread, text=f"reply {i}") for i in range(4)))
    assert [r["errors"] for r in results] == [[]] * 4, results
    assert [t["id"] for t in (await dm.inbox(tb))["threads"]["nodes"]] == [thread]
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []
    assert await gql.tao.assoc_count(store_id(b), "DM_REQUESTS") == 0
    assert (await dm.inbox(ta))["unreadMessageCount"] == 4

    tc, _ = await gql.sign_up("cy")
    request = (await dm.sent(tc, to=[b], text="hello"))["thread"]["id"]
    accepts = await asyncio.gather(*(dm.mutate("acceptMessageRequest", tb, {"threadId": request}, "errors { code }")
                                     for _ in range(3)))
    # each is accepted, or (when another finished before it read) already in the inbox
    assert all(r["errors"] in ([], [{"code": "REQUEST_NOT_FOUND"}]) for r in accepts), accepts
    assert [t["id"] for t in (await dm.inbox(tb))["threads"]["nodes"]][0] == request
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []


async def test_a_retried_send_racing_an_unsend_leaves_no_ghost_message(gql, dm):
    """Ada's phone retries a send whose answer it lost (same clientMessageId) while her laptop,
    which got the message live, unsends it; the unsend lands between the retry's read of the
    message and its re-delivery (a retry finishes what the first try began). The re-delivery
    listed the message in the thread again after the unsend had unlisted it: a message edge
    with no message, counted unread for bob (unreadCount 1, nothing to read) for good. Now the
    unsend deletes the object before it unlists it, and a re-delivery looks for the object
    after its write and unlists the message if it is gone."""
    ta, tb, thread, mid = await _thread_with_message(gql, dm)
    await dm.mutate("markThreadRead", tb, {"threadId": thread})
    p = await dm.sent(ta, thread=thread, text="sent twice", cid="retry-me")
    unsend = lambda: dm.mutate("unsendMessage", ta, {"messageId": p["message"]["id"]})  # noqa: E731

    def redelivery(edges, appends, *, check=None, **kw) -> bool:
        return check is not None and any(e[1] == "HAS_MESSAGE" for e in edges)
    async with before_store_call(gql, "assoc_add_and_append", redelivery, unsend) as done:
        await dm.send(ta, thread=thread, text="sent twice", cid="retry-me")
    assert done == [{"errors": []}]
    assert [a.id2 for a in await gql.tao.assoc_range(store_id(thread), "HAS_MESSAGE", 0, 10)] == [store_id(mid)]
    box = await dm.inbox(tb)
    assert box["unreadMessageCount"] == 0 and box["threads"]["nodes"][0]["unreadCount"] == 0, box


async def _kinds(gql, user: str) -> list[str]:
    from resolvers.realtime.events import STREAM_ATYPE
    return [e.data["k"] for e in await gql.tao.assoc_range(store_id(user), STREAM_ATYPE, 0, 100)]


async def test_a_double_tapped_leave_or_decline_tells_each_member_once(gql, dm):
    """A leave (or decline) sent twice at once, a double tap: the second found nothing to
    delete, so its events' jobs were not committed (an event exists when its cause committed),
    yet it delivered them anyway: the leaver got thread.removed twice and every other member
    thread.updated twice (two event ids: a client shows both). Now a write that changed nothing
    delivers nothing."""
    (ta, a), (tb, b), (tc, c) = [await gql.sign_up(n) for n in ("ada", "bob", "cy")]
    made = await dm.mutate("createGroupThread", ta, {"userIds": [b, c]}, "thread { id } errors { code }")
    group = made["thread"]["id"]
    before = {u: (await _kinds(gql, u)).count("thread.updated") for u in (a, c)}
    results = await asyncio.gather(*(dm.mutate("leaveThread", tb, {"threadId": group}) for _ in range(2)))
    assert all([e["code"] for e in r["errors"]] in ([], ["THREAD_NOT_FOUND"]) for r in results), results
    assert (await _kinds(gql, b)).count("thread.removed") == 1
    for u in (a, c):
        assert (await _kinds(gql, u)).count("thread.updated") == before[u] + 1
    # a request declined twice at once: one thread.removed
    td, d = await gql.sign_up("dee")
    request = (await dm.sent(ta, to=[d], text="hi"))["thread"]["id"]
    results = await asyncio.gather(*(dm.mutate("declineMessageRequest", td, {"threadId": request}) for _ in range(2)))
    assert (await _kinds(gql, d)).count("thread.removed") == 1, results


async def test_a_mute_racing_a_leave_does_not_outlive_the_membership(gql, dm):
    """Bob mutes a group on one device while leaving it on another, the leave landing between
    the mute's check and its write: the leave had cleared his folders (MUTED_THREAD among them)
    before the mute wrote its edge, which stayed; added back later, he found the group muted
    (`isMuted: true`) though he never muted it as a member. Now a mute looks for the
    membership after its write and takes the edge back if it is gone (THREAD_NOT_FOUND)."""
    (ta, a), (tb, b), (tc, c) = [await gql.sign_up(n) for n in ("ada", "bob", "cy")]
    made = await dm.mutate("createGroupThread", ta, {"userIds": [b, c]}, "thread { id } errors { code }")
    group = made["thread"]["id"]
    leave = lambda: dm.mutate("leaveThread", tb, {"threadId": group})  # noqa: E731

    def mute(id1, atype, *a, **k) -> bool:
        return atype == "MUTED_THREAD"
    async with before_store_call(gql, "assoc_add", mute, leave) as done:
        p = await dm.mutate("muteThread", tb, {"threadId": group, "muted": True})
    assert done == [{"errors": []}]
    assert [e["code"] for e in p["errors"]] == ["THREAD_NOT_FOUND"], p
    assert not await gql.tao.assoc_get(store_id(b), "MUTED_THREAD", [store_id(group)])
    await dm.mutate("addThreadMembers", ta, {"threadId": group, "userIds": [b]})
    t = await gql.ok("query($t: ID!) { thread(id: $t) { isMuted } }", {"t": group}, tb)
    assert t["thread"] == {"isMuted": False}


async def test_an_unsend_deletes_every_reaction_however_many(gql, dm):
    """A message in a group with turnover can gather more reactions than the 100 the unsend
    swept (members who left keep theirs, new ones add more): the rest stayed in the store on
    a deleted message. Now the unsend sweeps until none is left. (The reactions are written
    through the store here: 150 members passing through a group is slow to stage.)"""
    ta, tb, thread, mid = await _thread_with_message(gql, dm)
    m = store_id(mid)
    users = [gql.tao.ids.next_id(i % gql.tao.n_shards) for i in range(150)]  # ids of no one: only edges
    await gql.tao.assoc_add_many([(m, "REACTED_BY", u, None, {"e": "\u2764"}) for u in users])
    assert await gql.tao.assoc_count(m, "REACTED_BY") == 150
    assert (await dm.mutate("unsendMessage", ta, {"messageId": mid}))["errors"] == []
    assert await gql.tao.assoc_count(m, "REACTED_BY") == 0
    assert await gql.tao.assoc_range(m, "REACTED_BY", 0, 200) == []
