"""The follow graph: follow, requests, unfollow, block, mute, and the lists they form."""

from __future__ import annotations

REL = """query($u: String!) { user(username: $u) {
  viewerFollowStatus viewerFollows followsViewer viewerBlocks viewerMutes hasRequestedToFollowViewer
} }"""
LISTS = """query($u: String!) { user(username: $u) {
  followers { nodes { username } } following { nodes { username } }
} }"""


def names(conn):
    return [n["username"] for n in conn["nodes"]]


async def test_follow_public_account_at_once(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    p = await gql.mutate("follow", ta, b, "user { username followerCount } status errors { code }")
    assert p == {"user": {"username": "bob", "followerCount": 1}, "status": "FOLLOWING", "errors": []}
    # idempotent
    assert (await gql.mutate("follow", ta, b))["status"] == "FOLLOWING"
    rel = (await gql.ok(REL, {"u": "bob"}, ta))["user"]
    assert rel["viewerFollows"] and rel["viewerFollowStatus"] == "FOLLOWING" and not rel["followsViewer"]
    assert (await gql.ok(REL, {"u": "ada"}, tb))["user"]["followsViewer"] is True
    lists = (await gql.ok(LISTS, {"u": "bob"}))["user"]
    assert names(lists["followers"]) == ["ada"] and names(lists["following"]) == []
    assert names((await gql.ok(LISTS, {"u": "ada"}))["user"]["following"]) == ["bob"]


async def test_private_account_gets_a_request_then_approves(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob", private=True)
    assert (await gql.mutate("follow", ta, b))["status"] == "REQUESTED"
    assert (await gql.mutate("follow", ta, b))["status"] == "REQUESTED"  # idempotent
    assert (await gql.ok(REL, {"u": "ada"}, tb))["user"]["hasRequestedToFollowViewer"] is True
    reqs = (await gql.ok("{ viewer { followRequests { nodes { username } } followerCount } }", token=tb))["viewer"]
    assert names(reqs["followRequests"]) == ["ada"] and reqs["followerCount"] == 0
    # until approved, ada sees no lists
    body = await gql(LISTS, {"u": "bob"}, ta)
    assert body["data"]["user"]["followers"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
    p = await gql.mutate("approveFollowRequest", tb, a, "user { username } errors { code }")
    assert p == {"user": {"username": "ada"}, "errors": []}
    assert (await gql.ok(REL, {"u": "bob"}, ta))["user"]["viewerFollowStatus"] == "FOLLOWING"
    assert names((await gql.ok(LISTS, {"u": "bob"}, ta))["user"]["followers"]) == ["ada"]
    reqs = (await gql.ok("{ viewer { followRequests { nodes { username } } followerCount } }", token=tb))["viewer"]
    assert names(reqs["followRequests"]) == [] and reqs["followerCount"] == 1
    # approving again: no such request
    assert [e["code"] for e in (await gql.mutate("approveFollowRequest", tb, a, "errors { code }"))["errors"]] == [
        "REQUEST_NOT_FOUND"
    ]


async def test_reject_and_withdraw_requests(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob", private=True)
    await gql.mutate("follow", ta, b)
    p = await gql.mutate("rejectFollowRequest", tb, a, "errors { code }")
    assert p["errors"] == []
    assert (await gql.ok(REL, {"u": "bob"}, ta))["user"]["viewerFollowStatus"] == "NONE"
    await gql.mutate("follow", ta, b)
    assert (await gql.mutate("unfollow", ta, b))["status"] == "NONE"  # withdraws the request
    reqs = (await gql.ok("{ viewer { followRequests { nodes { username } } } }", token=tb))["viewer"]
    assert names(reqs["followRequests"]) == []
    assert (
        await gql.tao.assoc_count((await gql.tao.key_get_many("username", ["bob"]))["bob"], "FOLLOW_REQUESTED_BY") == 0
    )


async def test_follow_requests_are_private_to_the_account(gql):
    ta, _ = await gql.sign_up("ada")
    await gql.sign_up("bob", private=True)
    body = await gql("{ user(username: \"bob\") { followRequests { nodes { username } } } }", token=ta)
    assert body["data"]["user"]["followRequests"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_unfollow(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", ta, b)
    assert (await gql.mutate("unfollow", ta, b))["status"] == "NONE"
    assert (await gql.mutate("unfollow", ta, b))["status"] == "NONE"  # idempotent
    assert names((await gql.ok(LISTS, {"u": "bob"}))["user"]["followers"]) == []


async def test_cannot_target_self(gql):
    ta, a = await gql.sign_up("ada")
    for m in ("follow", "block", "mute"):
        p = await gql.mutate(m, ta, a, "errors { code field }")
        assert p["errors"] == [{"code": "CANNOT_TARGET_SELF", "field": "userId"}]
    assert await gql.tao.assoc_count((await gql.tao.key_get_many("username", ["ada"]))["ada"], "FOLLOWS") == 0


async def test_going_public_accepts_pending_requests(gql):
    ta, a = await gql.sign_up("ada")
    tc, c = await gql.sign_up("cy")
    tb, b = await gql.sign_up("bob", private=True)
    await gql.mutate("follow", ta, b)
    await gql.mutate("follow", tc, b)
    await gql.ok("mutation { updateProfile(input: {isPrivate: false}) { errors { code } } }", token=tb)
    await gql.tao.run_jobs_until_idle()
    me = (
        await gql.ok(
            "{ viewer { followerCount followRequests { nodes { username } } followers { nodes { username } } } }",
            token=tb,
        )
    )["viewer"]
    assert me["followerCount"] == 2 and names(me["followRequests"]) == []
    assert sorted(names(me["followers"])) == ["ada", "cy"]


async def test_mute_and_unmute(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", ta, b)
    p = await gql.mutate("mute", ta, b, "user { viewerMutes viewerFollows } errors { code }")
    assert p == {"user": {"viewerMutes": True, "viewerFollows": True}, "errors": []}  # a mute keeps the follow
    assert names(
        (await gql.ok("{ viewer { mutedUsers { nodes { username } } } }", token=ta))["viewer"]["mutedUsers"]
    ) == ["bob"]
    p = await gql.mutate("unmute", ta, b, "user { viewerMutes } errors { code }")
    assert p == {"user": {"viewerMutes": False}, "errors": []}


async def test_followers_you_follow(gql):
    tv, v = await gql.sign_up("viewer")
    ts, s = await gql.sign_up("star")
    friends = []
    for name in ["f1", "f2", "f3", "f4", "f5"]:
        t, uid = await gql.sign_up(name)
        friends.append((t, uid))
        await gql.mutate("follow", t, s)
    for _, uid in friends[:4]:
        await gql.mutate("follow", tv, uid)
    _, stranger = await gql.sign_up("stranger")
    q = '{ user(username: "star") { followersYouFollow(first: 2) { totalCount users { username } } } }'
    got = (await gql.ok(q, token=tv))["user"]["followersYouFollow"]
    assert got["totalCount"] == 4
    assert [u["username"] for u in got["users"]] == ["f4", "f3"]  # the viewer's newest followings first
    # anonymous and self: nothing
    assert (await gql.ok(q))["user"]["followersYouFollow"] == {"totalCount": 0, "users": []}
    assert (await gql.ok(q, token=ts))["user"]["followersYouFollow"]["totalCount"] == 0
