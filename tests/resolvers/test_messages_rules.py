"""Direct messages' rules: requests folder, declines, blocks, shared posts' privacy, groups, bad input, spam limits."""

from __future__ import annotations

import pytest

from tao.types import MESSAGE, THREAD
from tests.resolvers.messages_client import DM, global_id, store_id

THREAD_Q = "query($t: ID!) { thread(id: $t) { id name isGroup members { username } } }"


@pytest.fixture
def dm(gql) -> DM:
    return DM(gql)


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def test_first_message_from_a_stranger_is_a_request_until_accepted(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="hi stranger"))["thread"]["id"]
    assert (await dm.inbox(tb))["threads"]["nodes"] == []
    req = (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"]
    assert [t["id"] for t in req] == [thread] and req[0]["isRequest"] is True and req[0]["unreadCount"] == 1
    # the sender's own thread is in her inbox
    assert [t["id"] for t in (await dm.inbox(ta))["threads"]["nodes"]] == [thread]
    p = await dm.mutate("acceptMessageRequest", tb, {"threadId": thread}, "thread { isRequest } errors { code }")
    assert p == {"thread": {"isRequest": False}, "errors": []}
    assert [t["id"] for t in (await dm.inbox(tb))["threads"]["nodes"]] == [thread]
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []
    await dm.sent(ta, thread=thread, text="thanks")
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []  # accepted stays accepted
    assert codes(await dm.mutate("acceptMessageRequest", tb, {"threadId": thread})) == ["REQUEST_NOT_FOUND"]


async def test_replying_to_a_request_accepts_it(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b]))["thread"]["id"]
    await dm.sent(tb, thread=thread, text="hello back")
    assert [t["id"] for t in (await dm.inbox(tb))["threads"]["nodes"]] == [thread]
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []


async def test_a_refused_reply_leaves_the_request_where_it_was(gql, dm):
    """A reply into a request with a client id already spent on other content is refused and
    changes nothing: the thread stays a request. (A send into a thread finds an earlier try of
    itself only when its claim of the key fails, after its writes began; replying to a request
    looks first, since accepting the request is one of those writes.)"""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    await dm.sent(tb, to=[c], text="hi cy", cid="spent")
    thread = (await dm.sent(ta, to=[b], text="hi stranger"))["thread"]["id"]
    bad = await dm.send(tb, thread=thread, text="hello back", cid="spent")
    assert codes(bad) == ["CLIENT_ID_REUSED"] and bad["message"] is None
    assert [t["id"] for t in (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"]] == [thread]
    assert (await dm.inbox(tb))["threads"]["nodes"][0]["id"] != thread
    assert await dm.count_objects(MESSAGE.code) == 2
    ok = await dm.sent(tb, thread=thread, text="hello back", cid="fresh")  # a good reply still accepts it
    assert ok["message"] is not None and (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == []


async def test_declined_request_vanishes_and_the_sender_is_not_told(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b], text="buy my course"))["thread"]["id"]
    sender_view = await dm.inbox(ta)
    p = await dm.mutate("declineMessageRequest", tb, {"threadId": thread}, "thread { id } errors { code }")
    assert p == {"thread": None, "errors": []}
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == [] and (await dm.inbox(tb))["unreadThreadCount"] == 0
    assert (await gql.ok(THREAD_Q, {"t": thread}, tb))["thread"] is None
    # the sender sees exactly what she saw before, and can still send (it reaches no one)
    assert await dm.inbox(ta) == sender_view
    more = await dm.sent(ta, thread=thread, text="hello??")
    assert more["message"]["seenBy"] == []
    assert (await dm.inbox(tb, "REQUESTS"))["threads"]["nodes"] == [] and (await dm.inbox(tb))["threads"]["nodes"] == []


async def test_decline_and_block(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    thread = (await dm.sent(ta, to=[b]))["thread"]["id"]
    await dm.mutate("declineMessageRequest", tb, {"threadId": thread, "block": True})
    assert (await gql.ok('{ user(username: "bob") { id } }', token=ta))["user"] is None
    # a blocked user cannot message: the direct thread is gone for her too
    p = await dm.send(ta, thread=thread, text="let me in")
    assert codes(p) == ["THREAD_NOT_FOUND"] and p["message"] is None
    assert codes(await dm.send(ta, to=[b], text="new thread?")) == ["USER_NOT_FOUND"]
    assert await dm.count_objects(MESSAGE.code) == 1


async def test_block_hides_a_direct_thread_both_ways_until_unblocked(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="before"))["thread"]["id"]
    await gql.mutate("block", tb, a)
    for t in (ta, tb):
        assert (await dm.inbox(t))["threads"]["nodes"] == []
        assert (await gql.ok(THREAD_Q, {"t": thread}, t))["thread"] is None
    assert codes(await dm.send(ta, thread=thread, text="after")) == ["THREAD_NOT_FOUND"]
    await gql.mutate("unblock", tb, a)
    assert [m["text"] for m in await dm.messages(tb, thread)] == ["before"]


async def test_shared_post_follows_the_posts_privacy_for_each_reader(gql, dm):
    ta, a = await gql.sign_up("ada", private=True)
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    await gql.mutate("follow", tb, a)
    await gql.mutate("approveFollowRequest", ta, b)
    post = (await gql.ok('mutation { createPost(input: {caption: "private life"}) { post { id } } }', token=ta))
    post_id = post["createPost"]["post"]["id"]
    # bob (a follower) shares ada's private post with cy (who does not follow her)
    p = await dm.sent(tb, to=[c], text=None, postId=post_id)
    q = "query($t: ID!) { thread(id: $t) { messages { nodes { kind post { caption } } } } }"
    as_bob = (await gql.ok(q, {"t": p["thread"]["id"]}, tb))["thread"]["messages"]["nodes"]
    as_cy = (await gql.ok(q, {"t": p["thread"]["id"]}, tc))["thread"]["messages"]["nodes"]
    assert as_bob == [{"kind": "POST", "post": {"caption": "private life"}}]
    assert as_cy == [{"kind": "POST", "post": None}]
    # a post the sender cannot see cannot be shared at all
    assert codes(await dm.send(tc, to=[b], text=None, postId=post_id)) == ["POST_NOT_FOUND"]


async def test_group_threads_add_leave_rename_and_the_member_cap(gql, dm, gql_settings):
    gql_settings.messages.max_members = 4
    ta, a = await gql.sign_up("ada")
    people = [await gql.sign_up(f"u{i}") for i in range(4)]
    ids = [u for _, u in people]
    p = await dm.mutate("createGroupThread", ta, {"userIds": ids[:2], "name": "  book club "},
                        "thread { id name isGroup members { username } } errors { code }")
    assert p["errors"] == [] and p["thread"]["name"] == "book club" and p["thread"]["isGroup"]
    group = p["thread"]["id"]
    assert sorted(m["username"] for m in p["thread"]["members"]) == ["ada", "u0", "u1"]
    assert codes(await dm.mutate("createGroupThread", ta, {"userIds": ids})) == ["TOO_MANY_MEMBERS"]
    assert codes(await dm.mutate("addThreadMembers", ta, {"threadId": group, "userIds": ids[2:]})) == [
        "TOO_MANY_MEMBERS"
    ]
    ok = await dm.mutate("addThreadMembers", ta, {"threadId": group, "userIds": [ids[2]]},
                         "thread { members { username } } errors { code }")
    assert len(ok["thread"]["members"]) == 4
    await dm.sent(ta, thread=group, text="welcome")
    t2 = people[2][0]
    assert (await dm.messages(t2, group))[0]["text"] == "welcome"
    r = await dm.mutate("renameThread", t2, {"threadId": group, "name": "x" * 101})
    assert codes(r) == ["NAME_INVALID"]
    # a name that shows as nothing, or holds a control or a text-direction override: refused, unchanged
    for bad in ("\u200b", "\u200b \u2060", "pals\u0007", "pals\u202eslap", "two\u2028lines"):
        assert codes(await dm.mutate("renameThread", t2, {"threadId": group, "name": bad})) == ["NAME_INVALID"], bad
    assert codes(await dm.mutate("createGroupThread", ta, {"userIds": ids[:2], "name": "\u200b"})) == ["NAME_INVALID"]
    assert (await dm.mutate("renameThread", t2, {"threadId": group, "name": "pals \u200d\U0001F600"}))["errors"] == []
    await dm.mutate("leaveThread", t2, {"threadId": group})
    assert (await gql.ok(THREAD_Q, {"t": group}, t2))["thread"] is None
    assert codes(await dm.send(t2, thread=group, text="still here?")) == ["THREAD_NOT_FOUND"]
    # a direct thread has no members to add
    d = (await dm.sent(ta, to=[ids[3]]))["thread"]["id"]
    assert codes(await dm.mutate("addThreadMembers", ta, {"threadId": d, "userIds": [ids[0]]})) == ["NOT_A_GROUP"]


async def test_reactions_replies_and_mute(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    p = await dm.sent(ta, to=[b], text="question?")
    thread, mid = p["thread"]["id"], p["message"]["id"]
    r = await dm.mutate(
        "reactToMessage",
        tb,
        {"messageId": mid, "emoji": "❤️"},
        "message { reactions { emoji user { username } } } errors { code }",
    )
    assert r == {"message": {"reactions": [{"emoji": "❤️", "user": {"username": "bob"}}]}, "errors": []}
    assert codes(await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": "lol"})) == ["EMOJI_INVALID"]
    await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": None})
    reply = await dm.sent(tb, thread=thread, text="answer", replyToId=mid)
    msgs = await dm.messages(ta, thread)
    assert msgs[0]["text"] == "answer" and msgs[0]["replyTo"] == {"text": "question?"} and msgs[1]["reactions"] == []
    other = (await dm.sent(ta, to=[(await gql.sign_up("cy"))[1]]))["message"]["id"]
    assert codes(await dm.send(tb, thread=thread, text="x", replyToId=other)) == ["MESSAGE_NOT_FOUND"]
    m = await dm.mutate("muteThread", tb, {"threadId": thread, "muted": True}, "thread { isMuted } errors { code }")
    assert m == {"thread": {"isMuted": True}, "errors": []}
    assert reply["errors"] == []


async def test_a_reaction_is_an_emoji_not_only_its_modifiers(gql, dm):
    """A reaction needs a symbol: modifiers, joiners and format characters alone ("^", a
    zero-width space, a combining accent, a skin tone) were stored as a reaction that shows as
    nothing or as punctuation. Real emoji, with their modifiers and joiners, still pass."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    mid = (await dm.sent(ta, to=[b], text="question?"))["message"]["id"]
    for bad in ("^", "`", "\u200b", "\u0301", "\ufe0f", "\U0001f3fd", "\u200d\u200d"):
        assert codes(await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": bad})) == ["EMOJI_INVALID"], bad
    assert await gql.tao.assoc_count(store_id(mid), "REACTED_BY") == 0
    for good in ("\u2764\ufe0f", "\U0001f44d\U0001f3fd", "\U0001f1fa\U0001f1f8",
                 "\U0001f468\u200d\U0001f469\u200d\U0001f467"):
        assert codes(await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": good})) == [], good


async def test_a_reaction_is_exactly_one_emoji(gql, dm):
    """"One emoji per member per message": two or more ("👍👍", a flag and a heart, a symbol with
    a stray "^") were stored as one reaction. Joined sequences (a family, a person at a laptop),
    flags (two regional letters, or a tag sequence) and skin tones are one emoji and pass."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    mid = (await dm.sent(ta, to=[b], text="question?"))["message"]["id"]
    for bad in ("👍👍", "🔥❤️", "🇺🇸🇫",
                "🇺🇸❤", "👍^", "👍‍", "❤️❤️",
                "👨‍👩‍👧👍"):
        assert codes(await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": bad})) == ["EMOJI_INVALID"], bad
    assert await gql.tao.assoc_count(store_id(mid), "REACTED_BY") == 0
    for good in ("👩‍💻", "🏴󠁧󠁢󠁳󠁣󠁴"
                 "󠁿", "👋🏿", "©️"):
        assert codes(await dm.mutate("reactToMessage", tb, {"messageId": mid, "emoji": good})) == [], good


async def test_groups_of_strangers_count_as_message_requests(gql, dm):
    """Making a group puts it (its name, its members) in the requests of everyone in it who
    does not follow the creator, as a first message does, and adding people does the same; the
    message-request limits did not apply to either: a new account (5 requests an hour) put
    155 named groups in strangers' requests in five calls. Now both count as requests."""
    ta, a = await gql.sign_up("spammer")  # a new account: 5 requests an hour
    strangers = [(await gql.sign_up(f"s{i}"))[1] for i in range(8)]
    fans = [await gql.sign_up(f"f{i}") for i in range(3)]
    for t, _ in fans:
        await gql.mutate("follow", t, a)  # people who follow her: no request for them
    made = await dm.mutate("createGroupThread", ta, {"userIds": strangers[:3] + [f for _, f in fans],
                                                     "name": "cheap pills"}, "thread { id } errors { code }")
    assert made["errors"] == []
    group = made["thread"]["id"]
    too_many = await dm.mutate("createGroupThread", ta, {"userIds": strangers[3:6], "name": "cheap pills 2"},
                               "thread { id } errors { code message field retryAfter }")
    assert [(e["code"], e["field"]) for e in too_many["errors"]] == [("RATE_LIMITED", "userIds")], too_many
    assert too_many["errors"][0]["retryAfter"] > 0 and too_many["thread"] is None
    assert codes(await dm.mutate("addThreadMembers", ta, {"threadId": group, "userIds": strangers[3:6]})) == [
        "RATE_LIMITED"]
    assert codes(await dm.mutate("addThreadMembers", ta, {"threadId": group, "userIds": strangers[3:5]})) == []
    assert codes(await dm.mutate("addThreadMembers", ta, {"threadId": group, "userIds": strangers[5:6]})) == [
        "RATE_LIMITED"]
    assert await gql.tao.assoc_count(store_id(group), "HAS_MEMBER") == 1 + 3 + 3 + 2


async def test_bad_input_is_refused_and_stores_nothing(gql, dm):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    thread = (await dm.sent(ta, to=[b]))["thread"]["id"]
    before = (await dm.count_objects(MESSAGE.code), await dm.count_objects(THREAD.code))
    assert codes(await dm.send(ta, thread=thread, text="x" * 1001)) == ["TOO_LONG"]
    assert (await dm.send(ta, thread=thread, text="x" * 1000))["errors"] == []
    assert codes(await dm.send(ta, to=[a])) == ["CANNOT_MESSAGE_SELF"]
    assert codes(await dm.send(ta, thread=thread, text="   ")) == ["EMPTY"]
    assert codes(await dm.send(ta, thread=thread, cid="not a valid id!")) == ["CLIENT_ID_INVALID"]
    # a thread one is not in answers exactly like one that does not exist
    not_member = await dm.send(tc, thread=thread, text="let me in")
    unknown = await dm.send(tc, thread=global_id("Thread", store_id(thread) + 1), text="let me in")
    assert not_member["errors"] == unknown["errors"] and codes(unknown) == ["THREAD_NOT_FOUND"]
    assert (await gql.ok(THREAD_Q, {"t": thread}, tc))["thread"] is None
    assert await dm.messages(tc, thread) is None
    assert codes(await dm.mutate("markThreadRead", tc, {"threadId": thread})) == ["THREAD_NOT_FOUND"]
    body = await gql(
        'mutation { sendMessage(input: {clientMessageId: "a", threadId: "nope", text: "x"}) '
        "{ errors { code } } }",
        token=ta,
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    anon = await gql(
        f'mutation {{ sendMessage(input: {{clientMessageId: "a", threadId: "{thread}", text: "x"}}) '
        "{ errors { code } } }"
    )
    assert anon["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gql("{ inbox { unreadThreadCount } }"))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    after = (await dm.count_objects(MESSAGE.code), await dm.count_objects(THREAD.code))
    assert after == (before[0] + 1, before[1])  # only the 1000-character message was stored


async def test_spam_limits_on_requests_and_new_recipients(gql, dm, gql_settings):
    cfg = gql_settings.messages
    cfg.new_account_requests_per_hour, cfg.new_account_new_recipients_per_day = 2, 3
    ta, a = await gql.sign_up("ada")  # a new account: the stricter limits
    others = [await gql.sign_up(f"p{i}") for i in range(4)]
    await gql.mutate("follow", others[2][0], a)  # p2 and p3 follow ada: no request for them
    await gql.mutate("follow", others[3][0], a)
    for _, u in others[:2]:
        await dm.sent(ta, to=[u])
    limited = await dm.send(ta, to=[others[2][1]])  # not a request, but a third... fine
    assert limited["errors"] == []
    p = await dm.send(ta, to=[others[3][1]])
    assert codes(p) == ["RATE_LIMITED"] and "new people a day" in p["errors"][0]["message"]
    assert 86_000 < p["errors"][0]["retryAfter"] <= 86_400  # when the first of the day's three leaves the window
    # a conversation already going is not limited
    assert (await dm.send(ta, to=[others[0][1]]))["errors"] == []
    cfg.new_account_new_recipients_per_day = 100
    stranger = (await gql.sign_up("zed"))[1]
    p = await dm.send(ta, to=[stranger])
    assert codes(p) == ["RATE_LIMITED"] and "message requests an hour" in p["errors"][0]["message"]
    assert 3000 < p["errors"][0]["retryAfter"] <= 3600 and "try again in" in p["errors"][0]["message"]
    cfg.new_account_days = 0  # an established account: the normal limits
    assert (await dm.send(ta, to=[stranger]))["errors"] == []


async def test_reactions_edits_and_renames_are_throttled_like_the_actions_they_are(gql, dm, gql_settings):
    """Each stores an event in every member's stream, and none was throttled: a member could
    store ~900 a minute (the cost budget alone) in every other member's stream, past
    `realtime.max_replay` in about a minute (their next reconnect: CURSOR_EXPIRED). Sends were
    limited to 300 an hour. A reaction now counts as a like, an edit and a rename as a message."""
    gql_settings.throttle.likes_per_hour, gql_settings.throttle.likes_per_day = 2, 3
    gql_settings.throttle.messages_per_hour, gql_settings.throttle.messages_per_day = 3, 4
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    group = (await dm.mutate("createGroupThread", ta, {"userIds": [b], "name": "g"},
                             "thread { id } errors { code }"))["thread"]["id"]
    mid = (await dm.sent(ta, thread=group, text="hello"))["message"]["id"]  # a message: 1 of 3
    react = "mutation($i: MessageReactInput!) { reactToMessage(input: $i) { errors { code } } }"
    for emoji in ("👍", "❤️"):
        assert (await gql.ok(react, {"i": {"messageId": mid, "emoji": emoji}}, ta))["reactToMessage"]["errors"] == []
    body = await gql(react, {"i": {"messageId": mid, "emoji": "👍"}}, ta)
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED", body
    edit = "mutation($i: MessageEditInput!) { editMessage(input: $i) { errors { code } } }"
    rename = "mutation($i: ThreadRenameInput!) { renameThread(input: $i) { errors { code } } }"
    assert (await gql.ok(edit, {"i": {"messageId": mid, "text": "hello!"}}, ta))["editMessage"]["errors"] == []
    assert (await gql.ok(rename, {"i": {"threadId": group, "name": "h"}}, ta))["renameThread"]["errors"] == []
    for mutation, i in ((edit, {"messageId": mid, "text": "hello?"}), (rename, {"threadId": group, "name": "k"})):
        body = await gql(mutation, {"i": i}, ta)
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED", body
