"""Privacy on every surface: blocks hide each user from the other everywhere; private accounts
show their lists only to approved followers; deleted users vanish; mutations on hidden users
fail the same way as on missing ones and change nothing."""

from __future__ import annotations

import pytest

USER = "query($u: String!) { user(username: $u) { username } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on User { username } } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"


async def _uid(gql, name):
    return (await gql.tao.key_get_many("username", [name]))[name]


async def test_block_hides_both_ways_everywhere(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    # a and b follow each other; both follow c; viewer a follows c so b appears in c's followers-you-follow
    for t, target in ((ta, b), (tb, a), (ta, c), (tb, c)):
        await gql.mutate("follow", t, target)
    await gql.mutate("follow", tb, c)
    p = await gql.mutate("block", ta, b, "user { username } errors { code }")
    assert p == {"user": None, "errors": []}  # the blocked user is no longer visible to the blocker
    for token, other_name, other_id in ((ta, "bob", b), (tb, "ada", a)):
        assert (await gql.ok(USER, {"u": other_name}, token))["user"] is None
        assert (await gql.ok(NODE, {"id": other_id}, token))["node"] is None
        assert (await gql.ok(NODES, {"ids": [other_id]}, token))["nodes"] == [None]
        followers = (await gql.ok('{ user(username: "cy") { followers { nodes { username } } } }', token=token))
        assert other_name not in [n["username"] for n in followers["user"]["followers"]["nodes"]]
    # follows both ways are gone, counts too
    for uid in (await _uid(gql, "ada"), await _uid(gql, "bob")):
        assert await gql.tao.assoc_count(uid, "FOLLOWS") == 1  # only cy remains
        assert await gql.tao.assoc_count(uid, "FOLLOWED_BY") == 0
    # the blocked cannot follow (and is not told why); the blocker is told to unblock first
    p = await gql.mutate("follow", tb, a, "errors { code }")
    assert p["errors"] == [{"code": "USER_NOT_FOUND"}]
    p = await gql.mutate("follow", ta, b, "errors { code }")
    assert p["errors"] == [{"code": "BLOCKED"}]
    assert await gql.tao.assoc_count(await _uid(gql, "bob"), "FOLLOWS") == 1
    # still visible to third parties
    assert (await gql.ok(USER, {"u": "bob"}, tc))["user"] == {"username": "bob"}
    # the blocker sees the block list; unblocking restores visibility (not the follows)
    blocked = (await gql.ok("{ viewer { blockedUsers { nodes { username } } } }", token=ta))["viewer"]["blockedUsers"]
    assert [n["username"] for n in blocked["nodes"]] == ["bob"]
    p = await gql.mutate("unblock", ta, b, "user { username viewerFollows } errors { code }")
    assert p == {"user": {"username": "bob", "viewerFollows": False}, "errors": []}
    assert (await gql.ok(USER, {"u": "ada"}, tb))["user"] == {"username": "ada"}


async def test_block_list_is_private(gql):
    ta, _ = await gql.sign_up("ada")
    await gql.sign_up("bob")
    body = await gql(
        '{ user(username: "bob") { blockedUsers { nodes { username } } mutedUsers { nodes { username } } } }', token=ta
    )
    assert body["data"]["user"] == {"blockedUsers": None, "mutedUsers": None}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}


async def test_blocked_user_hidden_from_followers_you_follow(gql):
    tv, v = await gql.sign_up("viewer")
    _, s = await gql.sign_up("star")
    tf, f = await gql.sign_up("friend")
    await gql.mutate("follow", tf, s)
    await gql.mutate("follow", tv, f)
    q = '{ user(username: "star") { followersYouFollow { totalCount users { username } } } }'
    assert (await gql.ok(q, token=tv))["user"]["followersYouFollow"]["users"] == [{"username": "friend"}]
    await gql.mutate("block", tf, v)  # the friend blocks the viewer: the follow ends, the friend vanishes
    assert (await gql.ok(q, token=tv))["user"]["followersYouFollow"] == {"totalCount": 0, "users": []}


@pytest.mark.parametrize("who", ["anonymous", "stranger", "requester"])
async def test_private_lists_hidden_from_non_followers(gql, who):
    tp, p = await gql.sign_up("priv", private=True)
    tf, f = await gql.sign_up("fan")
    await gql.mutate("follow", tf, p)
    await gql.mutate("approveFollowRequest", tp, f)
    token = None
    if who != "anonymous":
        token, _ = await gql.sign_up("other")
        if who == "requester":
            await gql.mutate("follow", token, p)
    q = ('{ user(username: "priv") { username isPrivate followerCount '
         "followers { nodes { username } } following { nodes { username } } } }")
    body = await gql(q, token=token)
    # the profile header is visible, the lists are not
    assert body["data"]["user"] == {"username": "priv", "isPrivate": True, "followerCount": 1,
                                    "followers": None, "following": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN", "FORBIDDEN"]
    assert "private" in body["errors"][0]["message"]
    # the approved follower and the account itself see them
    for t in (tf, tp):
        data = await gql.ok(q, token=t)
        assert [n["username"] for n in data["user"]["followers"]["nodes"]] == ["fan"]


async def test_deleted_user_vanishes_and_mutations_on_it_change_nothing(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    bob = await _uid(gql, "bob")
    ada = await _uid(gql, "ada")
    await gql.tao.obj_delete(bob)
    assert (await gql.ok(NODE, {"id": b}, ta))["node"] is None
    assert (await gql.ok(USER, {"u": "bob"}, ta))["user"] is None
    assert (await gql.ok('{ viewer { followers { nodes { username } } } }', token=ta))["viewer"]["followers"][
        "nodes"
    ] == []
    before = await gql.tao.assoc_count(ada, "FOLLOWS")
    for m in ("follow", "block"):
        p = await gql.mutate(m, ta, b, "user { id } errors { code field }")
        assert p == {"user": None, "errors": [{"code": "USER_NOT_FOUND", "field": "userId"}]}
    assert await gql.tao.assoc_count(ada, "FOLLOWS") == before
    assert await gql.tao.assoc_count(ada, "BLOCKS") == 0
    # the deleted account's token no longer works
    status, body = await gql.post("{ viewer { username } }", token=tb)
    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_mutations_need_a_viewer(gql):
    _, b = await gql.sign_up("bob")
    for m in (
        "follow",
        "unfollow",
        "block",
        "unblock",
        "mute",
        "unmute",
        "approveFollowRequest",
        "rejectFollowRequest",
    ):
        body = await gql(f"mutation($i: ID!) {{ {m}(input: {{userId: $i}}) {{ status }} }}", {"i": b})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", m
    assert await gql.tao.assoc_count(await _uid(gql, "bob"), "FOLLOWED_BY") == 0


@pytest.mark.parametrize("scan", [100, 2])
async def test_visibility_reads_block_lists_whole_or_edge_by_edge(gql, monkeypatch, scan):
    """A page of users decides blocks from the viewer's block lists read whole (the common
    case) or, past `BLOCK_LIST_SCAN` entries, from the edges to those users: the same answers.
    Private accounts need the viewer's follow; public ones do not."""
    from resolvers import privacy

    monkeypatch.setattr(privacy, "BLOCK_LIST_SCAN", scan)
    tv, _ = await gql.sign_up("viv")
    names = ["blk1", "blk2", "blk3", "blkby", "pub", "priv", "privf"]
    ids = {}
    tokens = {}
    for n in names:
        tokens[n], ids[n] = await gql.sign_up(n, private=n.startswith("priv"))
    for n in ("blk1", "blk2", "blk3"):
        await gql.mutate("block", tv, ids[n])
    viv = (await gql.ok("{ viewer { id } }", token=tv))["viewer"]["id"]
    await gql.mutate("block", tokens["blkby"], viv)
    await gql.mutate("follow", tv, ids["privf"])
    await gql.mutate("approveFollowRequest", tokens["privf"], viv)
    seen = (await gql.ok(NODES, {"ids": [ids[n] for n in names]}, tv))["nodes"]
    assert [s is not None for s in seen] == [False, False, False, False, True, True, True]
    posts_of = "query($u: String!) { user(username: $u) { posts(first: 1) { nodes { id } } } }"
    status, body = await gql.post(posts_of, {"u": "priv"}, tv)
    assert body["data"]["user"]["posts"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql.ok(posts_of, {"u": "privf"}, tv))["user"]["posts"] == {"nodes": []}
