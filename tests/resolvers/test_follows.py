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


PAGE = """query($u: String!) { user(username: $u) { followerCount followers(first: 20) { nodes { username } }
  followingCount following(first: 20) { nodes { username } } } }"""
DELETE_ACCOUNT = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"
LOGIN = "mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p}) { token errors { code } } }"


async def _counts_and_lists(gql, name: str, token: str) -> tuple:
    u = (await gql.ok(PAGE, {"u": name}, token))["user"]
    return (u["followerCount"], sorted(n["username"] for n in u["followers"]["nodes"]),
            u["followingCount"], sorted(n["username"] for n in u["following"]["nodes"]))


async def test_follow_counts_leave_out_an_account_pending_deletion_as_lists_do(gql):
    """An account that asked to be deleted is hidden at once, from `followers` and `following`
    too; `followerCount` and `followingCount` kept counting it until the purge (2 followers
    over a list of one). They now drop with the lists while the deletion is pending (tallies,
    as likes and comments have: resolvers/dormant.py), come back if it is cancelled, and the
    tallies go with the purge."""
    import asyncio

    from tests.resolvers.messages_client import store_id

    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    for t, other in ((tb, a), (tc, a), (ta, b), (ta, c)):
        assert (await gql.mutate("follow", t, other))["errors"] == []
    before = (2, ["bob", "cy"], 2, ["bob", "cy"])
    assert await _counts_and_lists(gql, "ada", ta) == before
    assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": "password-bob"}}, tb))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    hidden = (1, ["cy"], 1, ["cy"])
    for token in (ta, tc, None):
        assert await _counts_and_lists(gql, "ada", token) == hidden
    # a log-in within the grace period cancels the deletion: everything counts again
    assert (await gql.ok(LOGIN, {"u": "bob", "p": "password-bob"}))["logIn"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await _counts_and_lists(gql, "ada", ta) == before
    # deleted again, and purged: the tallies go, and the counts stay right
    gql.tao.settings.account_data.deletion_grace_seconds = 1
    tb = (await gql.ok(LOGIN, {"u": "bob", "p": "password-bob"}))["logIn"]["token"]
    assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": "password-bob"}}, tb))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await _counts_and_lists(gql, "ada", ta) == hidden
    await asyncio.sleep(1.2)
    await gql.tao.run_jobs_until_idle()
    assert await _counts_and_lists(gql, "ada", ta) == hidden
    tallies = [(store_id(a), "DORMANT_FOLLOWER"), (store_id(a), "DORMANT_FOLLOWEE")]
    assert set((await gql.tao.assoc_count_many(tallies)).values()) == {0}


async def test_an_account_pending_deletion_before_the_upgrade_is_tallied_by_the_resync(gql):
    """An account whose deletion was requested before follows were tallied has none: the
    one-off `python -m resolvers dormant-resync` (`dormant.resync_pending`) tallies them."""
    from resolvers.dormant import resync_pending
    from tests.resolvers.messages_client import store_id

    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    assert (await gql.mutate("follow", tb, a))["errors"] == []
    assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": "password-bob"}}, tb))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    await gql.tao.assoc_delete(store_id(a), "DORMANT_FOLLOWER", store_id(b))  # as before the upgrade
    assert (await _counts_and_lists(gql, "ada", ta))[:2] == (1, [])
    assert [u async for u in resync_pending(gql.tao)] == [store_id(b)]
    assert (await _counts_and_lists(gql, "ada", ta))[:2] == (0, [])


async def test_a_follow_racing_a_block_does_not_survive_it(gql, monkeypatch):
    """Bob follows ada while she blocks him: his follow read no block, her block committed and
    severed the follows (none yet), then his follow committed and stayed, across the block: her
    `followerCount` counted him (the list hid him), and her unblock later brought the follow back
    unasked. The interleaving is made certain by running her block right after his follow's
    reads (real writes, real store). Now the follow reads the blocks again once written."""
    from resolvers import follows
    from resolvers.follows import do_block_user
    from tests.resolvers.messages_client import store_id

    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    real, raced = follows._edges, []

    async def reads_then_block(ctx, x, y, *atypes):
        found = await real(ctx, x, y, *atypes)
        if "FOLLOW_REQUESTED" in atypes and not raced:  # the follow's reads: the block lands now
            raced.append(True)
            await do_block_user(gql.tao, store_id(a), store_id(b))
        return found

    monkeypatch.setattr(follows, "_edges", reads_then_block)
    answer = await gql.mutate("follow", tb, a)
    assert raced and await gql.tao.assoc_get(store_id(b), "FOLLOWS", [store_id(a)]) == {}
    assert (await gql.tao.assoc_count(store_id(a), "FOLLOWED_BY"), await gql.tao.assoc_count(store_id(b), "FOLLOWS")) \
        == (0, 0)
    assert answer["errors"] == [{"code": "USER_NOT_FOUND", "field": "userId", "message": "No such user: check the id."}]
    assert (await gql.mutate("unblock", ta, b))["errors"] == []
    assert (await _counts_and_lists(gql, "ada", ta))[:2] == (0, [])  # the unblock restores nothing
