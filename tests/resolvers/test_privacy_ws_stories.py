"""Privacy over the WebSocket (`graphql-transport-ws`) on stories: the tray, the story and media
nodes, the profile ring, highlights, viewers, seen marks and replies; and the subscriptions that
carry stories (a story reply's `message.story` in `inboxEvents`, a story mention's notification
in `notificationEvents`).

"Nothing reaches a client that the viewer may not see, on any surface, HTTP or WebSocket": each
read runs over both transports and must give the same answer, and that answer must hold nothing
hidden. A socket keeps one context for its life, so the reads that matter most here run on a
socket opened *before* the relation changed (a block, a close-friends removal, an expiry, going
private): an answer cached by the socket's earlier operations must not outlive the change. Each
test has a control case in which the viewer does see the thing, so it can fail.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.resolvers.stories.helpers import DAY, T0, clock, follow, post_story
from tests.resolvers.transports import PRIVATE, both, mentions
from tests.schema.client import GQL
from tests.wsclient import WSClient

STORY_SURFACES = """query($s: ID!, $m: ID!) {
  story: node(id: $s) { id ... on Story { isLive hashtag link } }
  media: node(id: $m) { id }
  user(username: "ada") { username stories { nodes { id } }
                          highlights { nodes { title stories { nodes { id } } cover { id } } } }
  viewer { storyTray(first: 50) { nodes { user { username } isCloseFriends stories { id } } } }
}"""
VIEWERS = "query($s: ID!) { node(id: $s) { ... on Story { viewerCount viewers { nodes { username } } } } }"
SEEN = """mutation($ids: [ID!]!) { markStorySeen(input: {storyIds: $ids}) { stories { id } errors { code } } }"""
REPLY = """mutation($i: StoryReplyInput!) { replyToStory(input: $i) { message { id story { id } }
  errors { code } } }"""
HIGHLIGHT = """mutation($i: HighlightCreateInput!) { createHighlight(input: $i) {
  highlight { id } errors { code } } }"""
CLOSE_FRIENDS = "mutation($i: CloseFriendsInput!) {{ {verb}CloseFriends(input: $i) {{ errors {{ code }} }} }}"


# ---- stories ------------------------------------------------------------------------------------

async def _close_friends(gql: GQL, token: str, verb: str, user: str) -> None:
    data = await gql.ok(CLOSE_FRIENDS.format(verb=verb), {"i": {"userIds": [user]}}, token)
    assert data[f"{verb}CloseFriends"]["errors"] == []


# change -> what ada does after vic's socket has seen her story (vic follows ada, ada's story is
# for followers, or for close friends with vic on the list); "none" is the control.
CHANGES = ["none", "author_blocks_viewer", "viewer_blocks_author", "removed_from_close_friends", "expired",
           "private_not_followed"]


async def _change(gql: GQL, change: str, ta: str, a: str, tv: str, v: str) -> None:
    if change == "author_blocks_viewer":
        assert (await gql.mutate("block", ta, v))["errors"] == []
    elif change == "viewer_blocks_author":
        assert (await gql.mutate("block", tv, a))["errors"] == []
    elif change == "removed_from_close_friends":
        await _close_friends(gql, ta, "remove", v)
    elif change == "expired":
        gql.tao.clock.set(T0 + DAY)  # type: ignore[attr-defined]  (the test's ManualClock)
    elif change == "private_not_followed":
        assert (await gql.mutate("unfollow", tv, a))["errors"] == []
        assert (await gql.ok(PRIVATE, {"p": True}, ta))["updateProfile"]["errors"] == []
    else:
        assert change == "none", change


@pytest.mark.parametrize("change", CHANGES)
async def test_story_surfaces_over_the_socket_follow_a_change_made_while_it_is_open(gql: GQL, change: str) -> None:
    clock(gql)
    ta, a = await gql.sign_up("ada")
    tv, v = await gql.sign_up("vic")
    await follow(gql, tv, a)
    close_friends = change == "removed_from_close_friends"
    if close_friends:
        await _close_friends(gql, ta, "add", v)
    story = await post_story(gql, ta, "ada", hashtag="#Sun", link="https://example.com/x",
                             audience="CLOSE_FRIENDS" if close_friends else "FOLLOWERS")
    # Not in a highlight: a highlighted story outlives its 24 hours (resolvers/stories/visibility.py);
    # a second story is, and the highlight must not carry the first one out once it may not be seen.
    other = await post_story(gql, ta, "ada", audience="CLOSE_FRIENDS" if close_friends else "FOLLOWERS")
    h = await gql.ok(HIGHLIGHT, {"i": {"title": "best", "storyIds": [other["id"]]}}, ta)
    assert h["createHighlight"]["errors"] == []
    ids = {"s": story["id"], "m": story["media"]["id"]}
    hidden = (story["id"], story["media"]["id"]) if change in ("expired",) else (
        story["id"], story["media"]["id"], other["id"])
    async with both(gql, tv) as vic:
        before = await vic.read(STORY_SURFACES, ids)
        assert before["data"]["story"]["id"] == story["id"] and mentions(before, *hidden)  # the socket has seen it
        # (marked over HTTP: a mutation on the socket would give it fresh loaders, and the point
        # here is that the socket's reads alone do not carry what they cached across the change)
        assert (await gql.ok(SEEN, {"ids": [story["id"]]}, tv))["markStorySeen"]["errors"] == []
        await _change(gql, change, ta, a, tv, v)
        after = await vic.read(STORY_SURFACES, ids)
        if change == "none":
            assert after == before
        else:
            assert after["data"]["story"] is None and after["data"]["media"] is None
            assert not mentions(after, *hidden), after
        # writes over the socket see the change as well: a hidden story is NOT_FOUND, as over HTTP
        seen = (await vic.ws(SEEN, {"ids": [story["id"]]}))["data"]["markStorySeen"]
        reply = (await vic.ws(REPLY, {"i": {"storyId": story["id"], "text": "wow", "clientMessageId": "r1"}}
                              ))["data"]["replyToStory"]
        if change == "none":
            assert seen["errors"] == [] and reply["errors"] == [], (seen, reply)
        else:
            assert seen == {"stories": [], "errors": [{"code": "NOT_FOUND"}]}, seen
            assert reply == {"message": None, "errors": [{"code": "NOT_FOUND"}]}, reply
        # only the author sees who viewed it, over the socket as over HTTP
        denied = await vic.read(VIEWERS, {"s": story["id"]})
        assert denied["data"]["node"] in (None, {"viewerCount": None, "viewers": None}), denied
        assert not mentions(denied["data"], "vic")
    async with both(gql, ta) as ada:  # the author's list: vic is listed unless a block stands between them
        listed = (await ada.read(VIEWERS, {"s": story["id"]}))["data"]["node"]
        names = [n["username"] for n in listed["viewers"]["nodes"]]
        assert names == ([] if change.endswith(("blocks_author", "blocks_viewer")) else ["vic"]), listed


async def test_a_stranger_and_an_anonymous_socket_see_no_private_or_close_friends_story(gql: GQL) -> None:
    clock(gql)
    ta, a = await gql.sign_up("ada")
    tp, p = await gql.sign_up("pia", private=True)
    tv, v = await gql.sign_up("vic")
    tf, f = await gql.sign_up("fay")
    await follow(gql, tv, a)
    await follow(gql, tf, a)
    await _close_friends(gql, ta, "add", f)
    friends_only = await post_story(gql, ta, "ada", audience="CLOSE_FRIENDS")
    private = await post_story(gql, tp, "pia")
    await follow(gql, tv, p)  # a request, not approved: still not a follower
    for token, sees_friends_only in ((tv, False), (None, False), (tf, True)):
        async with both(gql, token) as viewer:
            for s in (friends_only, private):
                got = await viewer.read("query($s: ID!, $m: ID!) { s: node(id: $s) { id } m: node(id: $m) { id } }",
                                        {"s": s["id"], "m": s["media"]["id"]})
                visible = s is friends_only and sees_friends_only
                assert mentions(got, s["id"], s["media"]["id"]) == visible, (token, s, got)
            profiles = await viewer.read('{ ada: user(username: "ada") { stories { nodes { id } } } '
                                         'pia: user(username: "pia") { stories { nodes { id } } '
                                         'highlights { nodes { title } } } }')
            assert mentions(profiles, friends_only["id"]) == sees_friends_only and not mentions(profiles, private["id"])
            if token is not None:
                rings = await viewer.read("{ viewer { storyTray(first: 50) { nodes { user { username } "
                                          "isCloseFriends stories { id } } } } }")
                assert mentions(rings, friends_only["id"]) == sees_friends_only
                assert not mentions(rings, private["id"])


# ---- stories in subscriptions: replies as messages, mentions as notifications --------------------

INBOX_EVENTS = """subscription($after: String) { inboxEvents(after: $after) { __typename cursor
  ... on NewMessageEvent { message { text storyReaction story { id isLive } } } } }"""
THREAD_MESSAGES = """{ inbox { threads(folder: INBOX) { nodes { messages { nodes { text story { id } } } } } } }"""
NOTIFICATION_EVENTS = """subscription($after: String) { notificationEvents(after: $after) { cursor
  notification { type actors { username } target { id } } } }"""
SEND = """mutation($i: MessageSendInput!) { sendMessage(input: $i) { message { id } errors { code } } }"""


async def _next_event(sock: WSClient, op: str, field: str, timeout: float = 10.0) -> dict:
    return (await sock.next_data(op, timeout))[field]


@pytest.mark.parametrize("change", ["none", "removed_from_close_friends", "expired", "author_blocks_viewer"])
async def test_a_story_reply_replayed_over_inbox_events_quotes_the_story_only_while_visible(gql: GQL,
                                                                                           change: str) -> None:
    clock(gql)
    ta, a = await gql.sign_up("ada")
    tv, v = await gql.sign_up("vic")
    await follow(gql, tv, a)
    await follow(gql, ta, v)  # ada follows vic: vic's messages reach her inbox, not her requests
    await _close_friends(gql, ta, "add", v)
    story = await post_story(gql, ta, "ada", audience="CLOSE_FRIENDS")
    sock = await WSClient.connect(gql.client, "/graphql", tv)
    await sock.subscribe("inbox", INBOX_EVENTS)
    await asyncio.sleep(0.3)  # live once the broker acknowledged it
    sent = await gql.ok(SEND, {"i": {"recipientIds": [a], "text": "hi", "clientMessageId": "m0"}}, tv)
    assert sent["sendMessage"]["errors"] == [], sent
    start = await _next_event(sock, "inbox", "inboxEvents")
    await sock.close()
    reply = await gql.ok(REPLY, {"i": {"storyId": story["id"], "text": "wow", "clientMessageId": "r1"}}, tv)
    assert reply["replyToStory"]["errors"] == [] and reply["replyToStory"]["message"]["story"] == {"id": story["id"]}
    await _change(gql, change, ta, a, tv, v)
    http = (await gql.ok(THREAD_MESSAGES, token=tv))["inbox"]["threads"]["nodes"]
    sock = await WSClient.connect(gql.client, "/graphql", tv)
    await sock.subscribe("inbox", INBOX_EVENTS, {"after": start["cursor"]})
    replayed = []
    try:
        while True:
            replayed.append(await _next_event(sock, "inbox", "inboxEvents", timeout=1.5))
    except TimeoutError:
        pass
    finally:
        await sock.close()
    quoted = [e["message"]["story"] for e in replayed if e["__typename"] == "NewMessageEvent"
              and e["message"]["text"] == "wow"]
    over_http = [m["story"] for t in http for m in t["messages"]["nodes"] if m["text"] == "wow"]
    if change == "none":
        assert quoted == [{"id": story["id"], "isLive": True}] and over_http == [{"id": story["id"]}]
    else:
        assert not mentions(replayed, story["id"]), replayed  # the message may show, never the story
        assert all(q is None for q in quoted) and all(q is None for q in over_http), (quoted, over_http)


@pytest.mark.parametrize("case", ["followers_story", "close_friends_story_not_on_the_list", "expired_before_delivery"])
async def test_a_story_mention_reaches_notification_events_only_while_the_story_is_visible(gql: GQL,
                                                                                           case: str) -> None:
    c = clock(gql)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await follow(gql, tb, a)
    sock = await WSClient.connect(gql.client, "/graphql", tb)
    await sock.subscribe("n", NOTIFICATION_EVENTS)
    await asyncio.sleep(0.3)
    audience = "CLOSE_FRIENDS" if case == "close_friends_story_not_on_the_list" else "FOLLOWERS"
    story = await post_story(gql, ta, "ada", audience=audience, mentions=["@bob"])
    if case == "expired_before_delivery":
        c.set(T0 + DAY)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    # A follow is the control that ends the wait: its event comes after the mention's, if any.
    await follow(gql, ta, b)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    got = []
    while not got or got[-1]["notification"]["type"] != "FOLLOW":
        got.append(await _next_event(sock, "n", "notificationEvents"))
    await sock.close()
    http = (await gql.ok("{ viewer { notifications { edges { node { type target { id } } } } } }", token=tb))
    if case == "followers_story":
        assert [e["notification"]["target"] for e in got] == [{"id": story["id"]}, None]
        assert mentions(http, story["id"])
    else:
        assert [e["notification"]["type"] for e in got] == ["FOLLOW"] and not mentions(got, story["id"]), got
        assert not mentions(http, story["id"])
