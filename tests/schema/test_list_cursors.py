"""A keyset cursor is valid only in the list that issued it (`schema.relay.list_cursors`).

Another user's followers, a following list, the story tray: each refuses the other's cursors
with the error a garbage cursor gets (BAD_USER_INPUT, saying what to pass), before any read;
and a list's own cursors page it with no edge shown twice and none skipped. `AFTER_FIELDS` is
every field that takes `after`, checked against the schema, so a new connection cannot be
left with cursors that any list accepts."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from resolvers.errors import BadInputError
from schema.relay import list_cursors
from tests.resolvers.stories.helpers import clock, follow, post_story
from tests.schema.client import GQL

FOLLOWERS = """query($u: String!, $f: Int!, $a: String) { user(username: $u) {
  followers(first: $f, after: $a) { edges { cursor node { username } } pageInfo { hasNextPage endCursor } } } }"""
FOLLOWING = """query($u: String!, $f: Int!, $a: String) { user(username: $u) {
  following(first: $f, after: $a) { edges { cursor node { username } } pageInfo { hasNextPage endCursor } } } }"""
TRAY = """query($f: Int!, $a: String) { viewer { storyTray(first: $f, after: $a) {
  edges { cursor node { user { username } } } pageInfo { hasNextPage endCursor } } } }"""
VIEWERS = """query($s: ID!, $a: String) { node(id: $s) { ... on Story {
  viewers(first: 5, after: $a) { nodes { username } pageInfo { endCursor } } } } }"""


def _refused_as_another_lists(body: dict) -> None:
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT", body
    assert "cursor of another list" in err["message"] and "endCursor" in err["message"], err


async def _followers_page(gql: GQL, user: str, first: int, after: str | None = None) -> dict:
    return (await gql.ok(FOLLOWERS, {"u": user, "f": first, "a": after}))["user"]["followers"]


@pytest.mark.parametrize("gql_settings", ["sqlite"], indirect=True)
async def test_a_users_followers_cursor_is_refused_by_another_users_followers(gql: GQL) -> None:
    _, ada = await gql.sign_up("ada")
    _, bob = await gql.sign_up("bob")
    for i in range(3):
        t, _ = await gql.sign_up(f"fan{i}")
        await follow(gql, t, ada)
        await follow(gql, t, bob)  # the same followers at the same positions' neighbourhood
    ada_page = await _followers_page(gql, "ada", 1)
    assert ada_page["pageInfo"]["hasNextPage"]
    for cursor in (ada_page["edges"][0]["cursor"], ada_page["pageInfo"]["endCursor"],
                   (await _followers_page(gql, "ada", 0))["pageInfo"]["endCursor"]):  # the head, too
        body = await gql(FOLLOWERS, {"u": "bob", "f": 5, "a": cursor})
        assert body["data"] == {"user": {"followers": None}}
        _refused_as_another_lists(body)
        assert len((await _followers_page(gql, "ada", 5, cursor))["edges"]) in (2, 3)  # ada's own: fine
    garbage = await gql(FOLLOWERS, {"u": "bob", "f": 5, "a": "%%%garbage"})
    assert garbage["errors"][0]["extensions"] == body["errors"][0]["extensions"]  # the same coded error


@pytest.mark.parametrize("gql_settings", ["sqlite"], indirect=True)
async def test_a_followers_cursor_is_refused_by_following(gql: GQL) -> None:
    ta, ada = await gql.sign_up("ada")
    for i in range(2):
        t, g = await gql.sign_up(f"friend{i}")
        await follow(gql, t, ada)
        await follow(gql, ta, g)
    cursor = (await _followers_page(gql, "ada", 1))["pageInfo"]["endCursor"]
    body = await gql(FOLLOWING, {"u": "ada", "f": 5, "a": cursor})
    assert body["data"] == {"user": {"following": None}}
    _refused_as_another_lists(body)
    own = (await gql.ok(FOLLOWING, {"u": "ada", "f": 1}))["user"]["following"]["pageInfo"]["endCursor"]
    body = await gql(FOLLOWERS, {"u": "ada", "f": 5, "a": own})
    _refused_as_another_lists(body)


@pytest.mark.parametrize("gql_settings", ["sqlite"], indirect=True)
async def test_a_tray_cursor_is_refused_by_story_viewers(gql: GQL) -> None:
    clock(gql)
    ta, _ = await gql.sign_up("ada")
    tb, bob = await gql.sign_up("bob")
    await follow(gql, ta, bob)
    await post_story(gql, tb, "bob")
    story = (await post_story(gql, ta, "ada"))["id"]
    tray = (await gql.ok(TRAY, {"f": 1}, ta))["viewer"]["storyTray"]
    assert tray["pageInfo"]["hasNextPage"]
    body = await gql(VIEWERS, {"s": story, "a": tray["pageInfo"]["endCursor"]}, ta)
    assert body["data"] == {"node": {"viewers": None}}
    _refused_as_another_lists(body)
    own = (await gql.ok(VIEWERS, {"s": story}, ta))["node"]["viewers"]["pageInfo"]["endCursor"]
    body = await gql(TRAY, {"f": 5, "a": own}, ta)  # and the other way
    _refused_as_another_lists(body)


async def test_followers_page_with_their_own_cursors_each_once(gql: GQL) -> None:
    """Pages of 3 over 8 followers, each page `after` the last one's `endCursor`, then after an
    edge's own `cursor`: the whole list, newest first, no follower twice and none skipped; and
    the cursors stay short (a 6-byte list tag, the sealing key's byte, the 16-byte position and a
    4-byte check, base64)."""
    await gql.sign_up("star")
    _, star = await gql.sign_up("other")  # another list with the same followers, paged in between
    star_gid = (await gql.ok('{ user(username: "star") { id } }'))["user"]["id"]
    for i in range(8):
        t, _ = await gql.sign_up(f"fan{i}")
        await follow(gql, t, star_gid)
        await follow(gql, t, star)
    whole = [e["node"]["username"] for e in (await _followers_page(gql, "star", 50))["edges"]]
    assert whole == [f"fan{i}" for i in reversed(range(8))]
    seen, after, other_after = [], None, None
    while True:
        page = await _followers_page(gql, "star", 3, after)
        other = await _followers_page(gql, "other", 3, other_after)
        seen += [e["node"]["username"] for e in page["edges"]]
        assert all(len(e["cursor"]) <= 36 for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after, other_after = page["pageInfo"]["endCursor"], other["pageInfo"]["endCursor"]
        assert after != other_after  # the same position in two lists: two cursors
    assert seen == whole
    third = (await _followers_page(gql, "star", 50))["edges"][2]["cursor"]
    assert [e["node"]["username"] for e in (await _followers_page(gql, "star", 50, third))["edges"]] == whole[3:]


async def test_the_tray_pages_with_its_own_cursors_each_once(gql: GQL) -> None:
    c = clock(gql)
    tv, _ = await gql.sign_up("viewer")
    for i in range(7):
        t, g = await gql.sign_up(f"u{i}")
        await follow(gql, tv, g)
        c.set(c.now_ms() + 1000)
        await post_story(gql, t, f"u{i}")

    def names(tray: dict) -> list[str]:
        return [e["node"]["user"]["username"] for e in tray["edges"]]
    whole = names((await gql.ok(TRAY, {"f": 50}, tv))["viewer"]["storyTray"])
    assert sorted(whole) == [f"u{i}" for i in range(7)]
    seen, after = [], None
    while True:
        tray = (await gql.ok(TRAY, {"f": 2, "a": after}, tv))["viewer"]["storyTray"]
        seen += names(tray)
        if not tray["pageInfo"]["hasNextPage"]:
            break
        after = tray["pageInfo"]["endCursor"]
    assert seen == whole


# Every field that takes `after`, reached with ada as the viewer ($f: the page size, $a: after).
# `endCursor` is the list's own cursor (an empty first page's: the head of that list).
AFTER_FIELDS: dict[tuple[str, str], str] = {
    ("Query", "search"): '{ search(query: "ada", first: $f, after: $a) { pageInfo { endCursor } } }',
    ("Query", "explore"): "{ explore(first: $f, after: $a) { pageInfo { endCursor } } }",
    ("User", "feed"): "{ viewer { feed(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "notifications"): "{ viewer { notifications(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "posts"): "{ viewer { posts(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "followers"): "{ viewer { followers(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "following"): "{ viewer { following(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "followRequests"): "{ viewer { followRequests(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "blockedUsers"): "{ viewer { blockedUsers(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "mutedUsers"): "{ viewer { mutedUsers(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "storyTray"): "{ viewer { storyTray(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "storyArchive"): "{ viewer { storyArchive(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "closeFriends"): "{ viewer { closeFriends(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "restrictedUsers"): "{ viewer { restrictedUsers(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "storyMutedUsers"): "{ viewer { storyMutedUsers(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("Story", "viewers"): "{ viewer { stories { nodes { viewers(first: $f, after: $a) "
                          "{ pageInfo { endCursor } } } } } }",
    ("User", "stories"): "{ viewer { stories(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("User", "highlights"): "{ viewer { highlights(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("Highlight", "stories"): "{ viewer { highlights(first: 1) { nodes { stories(first: $f, after: $a) "
                              "{ pageInfo { endCursor } } } } } }",
    ("Post", "likers"): "{ viewer { posts(first: 1) { nodes { likers(first: $f, after: $a) "
                        "{ pageInfo { endCursor } } } } } }",
    ("Post", "comments"): "{ viewer { posts(first: 1) { nodes { comments(first: $f, after: $a) "
                          "{ pageInfo { endCursor } } } } } }",
    ("Post", "pendingComments"): "{ viewer { posts(first: 1) { nodes { pendingComments(first: $f, after: $a) "
                                 "{ pageInfo { endCursor } } } } } }",
    ("Comment", "replies"): "{ viewer { posts(first: 1) { nodes { comments(first: 1) { nodes { "
                            "replies(first: $f, after: $a) { pageInfo { endCursor } } } } } } } }",
    ("Hashtag", "posts"): '{ hashtag(name: "tag") { posts(first: $f, after: $a) { pageInfo { endCursor } } } }',
    ("Location", "posts"): "{ node(id: $loc) { ... on Location { posts(first: $f, after: $a) "
                           "{ pageInfo { endCursor } } } } }",
    ("Inbox", "threads"): "{ inbox { threads(first: $f, after: $a) { pageInfo { endCursor } } } }",
    ("Thread", "messages"): "{ inbox { threads(first: 1) { nodes { messages(first: $f, after: $a) "
                            "{ pageInfo { endCursor } } } } } }",
}


def _end_cursor(data: Any) -> str | None:
    if isinstance(data, dict):
        if "endCursor" in data:
            return data["endCursor"]
        return next((c for v in data.values() if (c := _end_cursor(v)) is not None), None)
    if isinstance(data, list):
        return next((c for v in data if (c := _end_cursor(v)) is not None), None)
    return None


@pytest.mark.parametrize("gql_settings", ["sqlite"], indirect=True)
async def test_every_field_with_after_refuses_another_lists_cursor_and_takes_its_own(gql: GQL) -> None:
    types = (await gql.ok("{ __schema { types { name fields { name args { name } } } } }"))["__schema"]["types"]
    # (a subscription's `after` is a position in an event stream, of a shape of its own: not a list's)
    with_after = {(t["name"], f["name"]) for t in types if not t["name"].startswith("__")
                  and t["name"] != "Subscription"
                  for f in t["fields"] or () if any(a["name"] == "after" for a in f["args"])}
    assert with_after == set(AFTER_FIELDS)  # a new field with `after`: add it above
    clock(gql)
    token, ada = await gql.sign_up("ada")
    tb, bob = await gql.sign_up("bob")
    await follow(gql, token, bob)
    await follow(gql, tb, ada)  # a follower of ada, and a notification for her
    await gql.ok('mutation($s: ID!) { sendMessage(input: {clientMessageId: "m1", recipientIds: [$s], text: "hi"}) '
                 "{ errors { code } } }", {"s": bob}, token)
    post = (await gql.ok('mutation { createPost(input: {caption: "#tag", location: {name: "Here"}}) '
                         "{ post { id location { id } } } }", token=token))["createPost"]["post"]
    await gql.ok('mutation($p: ID!) { addComment(input: {postId: $p, text: "hi"}) { errors { code } } }',
                 {"p": post["id"]}, token)
    story = await post_story(gql, token, "ada")
    highlight = await gql.ok('mutation($s: ID!) { createHighlight(input: {title: "t", storyIds: [$s]}) '
                             "{ errors { code } } }", {"s": story["id"]}, token)
    assert highlight["createHighlight"]["errors"] == []  # (Highlight.stories)
    await gql.tao.run_jobs_until_idle()
    loc = post["location"]["id"]
    # Other lists' cursors: bob's followers after its first edge (ada), and that list's head.
    bob_followers = (await gql.ok(FOLLOWERS, {"u": "bob", "f": 1}))["user"]["followers"]
    assert bob_followers["edges"]
    foreign = [bob_followers["pageInfo"]["endCursor"],
               (await gql.ok(FOLLOWERS, {"u": "bob", "f": 0}))["user"]["followers"]["pageInfo"]["endCursor"]]
    for (typename, field), selection in AFTER_FIELDS.items():
        query = ("query($f: Int!, $a: String, $loc: ID!) " if "$loc" in selection
                 else "query($f: Int!, $a: String) ") + selection
        own = _end_cursor(await gql.ok(query, {"f": 0, "a": None, "loc": loc}, token))
        assert own and own not in foreign, (typename, field, own)
        assert "errors" not in await gql(query, {"f": 5, "a": own, "loc": loc}, token), (typename, field)
        for cursor in foreign:
            body = await gql(query, {"f": 5, "a": cursor, "loc": loc}, token)
            codes = {e["extensions"]["code"] for e in body.get("errors", [])}
            assert codes == {"BAD_USER_INPUT"}, (typename, field, body)
            assert "cursor" in body["errors"][0]["message"], (typename, field, body)
    # `markNotificationsRead(upTo:)` takes a cursor of the viewer's notifications alone, and a
    # refused one marks nothing read.
    unread = (await gql.ok("{ viewer { unreadNotificationCount } }", token=token))["viewer"]
    assert unread == {"unreadNotificationCount": 1}
    mark = ("mutation($c: String) { markNotificationsRead(input: {upTo: $c}) { unreadCount "
            "errors { code } } }")
    for cursor in foreign:
        _refused_as_another_lists(await gql(mark, {"c": cursor}, token))
    assert (await gql.ok("{ viewer { unreadNotificationCount } }", token=token))["viewer"] == unread
    notes = (await gql.ok("{ viewer { notifications(first: 5) { edges { cursor } } } }", token=token)
             )["viewer"]["notifications"]["edges"]
    assert (await gql.ok(mark, {"c": notes[0]["cursor"]}, token))["markNotificationsRead"]["unreadCount"] == 0


def test_a_cursor_issued_before_cursors_were_tied_to_lists_is_refused() -> None:
    """Cursors from before the list tag (`base64("cursor:<time>:<id2>")`, and the old head) are
    refused like garbage: a client starts that list again from the top (docs/api.md)."""
    old = [base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
           for text in ("cursor:1800000000000:123456789", "cursor:head")]
    for cursor in old:
        with pytest.raises(BadInputError, match="not a valid cursor"):
            list_cursors("User.followers", 1).decode(cursor)


K1 = base64.b64encode(b"k1" * 16).decode()
K2 = base64.b64encode(b"k2" * 16).decode()


@pytest.fixture
def restore_cursor_keys():
    from config import ServerSettings
    from schema.relay import seal_cursors

    yield seal_cursors
    default = ServerSettings()
    seal_cursors(default.cursor_keys, default.cursor_key)


def test_a_cursor_opens_its_own_position_under_either_key_of_a_rotation_or_is_refused(restore_cursor_keys) -> None:
    """Cursors were sealed under a key derived from `messages`' active key, and nothing in a
    cursor named its key: while that key rotated, a cursor made by a process on the other key
    opened as another position of the same list (a wrong page, silently). Cursors now have their
    own keys (`server.cursor_keys`, `server.cursor_key` the one that seals), a cursor names its
    key and carries a check: it opens at its own position under any configured key, and one this
    server cannot open (its key retired or not yet configured, or altered) is CURSOR_EXPIRED."""
    seal = restore_cursor_keys
    cursors, pos = list_cursors("User.followers", 1), (1_800_000_000_000, 123456789)
    seal({"k1": K1}, "k1")
    old = cursors.encode(pos)
    seal({"k1": K1, "k2": K2}, "k2")  # step 2 of a rotation: k2 seals, k1 still opens
    new = cursors.encode(pos)
    assert new != old and cursors.decode(old) == pos and cursors.decode(new) == pos
    seal({"k1": K1, "k2": K2}, "k1")  # a process not yet moved to k2 opens k2's cursors too
    assert cursors.decode(new) == pos
    seal({"k1": K1}, "k1")  # a process that does not know k2 (step 1 skipped): an error, not a page
    with pytest.raises(BadInputError, match="^CURSOR_EXPIRED: `after`"):
        cursors.decode(new)
    seal({"k2": K2}, "k2")  # k1 retired
    with pytest.raises(BadInputError, match="^CURSOR_EXPIRED: `upTo`.*leave `upTo` out"):
        cursors.decode(old, "upTo")
    raw = bytearray(base64.urlsafe_b64decode(new + "=" * (-len(new) % 4)))
    for i in range(6, len(raw)):  # any altered byte after the list's tag
        altered = raw.copy()
        altered[i] ^= 1
        with pytest.raises(BadInputError):
            cursors.decode(base64.urlsafe_b64encode(bytes(altered)).decode().rstrip("="))
    assert cursors.decode(new) == pos and cursors.decode(cursors.encode(None)) is None


def test_cursor_keys_are_checked_when_the_server_starts() -> None:
    from config import ConfigError, Settings
    from server import create_app

    for server, messages, match in (
        ({"cursor_keys": {"a": K1}, "cursor_key": "b"}, {}, "server.cursor_key 'b' is not in server.cursor_keys"),
        ({"cursor_keys": {"a": "c2hvcnQ="}, "cursor_key": "a"}, {}, "at least 16 bytes"),
        ({"cursor_keys": {"a": "not base64!"}, "cursor_key": "a"}, {}, "base64"),
        # a deployment with its own message keys must not seal cursors with the public dev key
        ({}, {"encryption_keys": {"m": K1}, "active_key": "m"}, "built-in development key"),
    ):
        with pytest.raises(ConfigError, match=match):
            create_app(Settings.model_validate({"server": server, "messages": messages}))


async def test_a_cursor_from_before_cursor_keys_is_refused_not_read_as_a_page(gql: GQL) -> None:
    """A cursor sealed before cursors named their key (22 bytes) cannot say which key sealed it:
    CURSOR_EXPIRED, never some page."""
    await gql.sign_up("ada")
    head = (await _followers_page(gql, "ada", 0))["pageInfo"]["endCursor"]  # the list's tag alone
    tag = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
    old = base64.urlsafe_b64encode(tag + b"\x01" * 16).decode().rstrip("=")
    body = await gql(FOLLOWERS, {"u": "ada", "f": 1, "a": old})
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and err["message"].startswith("CURSOR_EXPIRED:"), body
