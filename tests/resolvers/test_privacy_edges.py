"""Privacy edges, as a matrix of viewers x surfaces: followers-you-follow on a private account,
hashtag and location counts and existence, media outside a visible post.

Each rule is asserted through every surface that exposes it: a root field (`user`, `hashtag`,
`location`), `node(id:)` and `nodes(ids:)`, and counts (`totalCount`, `postCount`)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.no_blocking

FYF = "followersYouFollow { totalCount users { username } }"
# The same field reached three ways: by username, by node id, in a list of nodes.
FYF_SURFACES = {
    "user": ("query($u: String!) { it: user(username: $u) { %s } }", lambda b: b["it"]),
    "node": ("query($id: ID!) { it: node(id: $id) { ... on User { %s } } }", lambda b: b["it"]),
    "nodes": ("query($id: ID!) { it: nodes(ids: [$id]) { ... on User { %s } } }", lambda b: b["it"][0]),
}


@pytest.mark.parametrize("surface", FYF_SURFACES)
@pytest.mark.parametrize("who", ["anonymous", "stranger", "requester", "follower", "self"])
async def test_followers_you_follow_of_a_private_account_follows_the_followers_rule(gql, surface, who):
    tp, p = await gql.sign_up("priv", private=True)
    tf, f = await gql.sign_up("fan")
    await gql.mutate("follow", tf, p)
    await gql.mutate("approveFollowRequest", tp, f)
    tv, _ = await gql.sign_up("viewer")
    await gql.mutate("follow", tv, f)  # the viewer follows priv's follower: the membership to hide
    if who == "requester":
        await gql.mutate("follow", tv, p)
    elif who == "follower":
        await gql.mutate("follow", tv, p)
        await gql.mutate("approveFollowRequest", tp, await _id(gql, "viewer"))
    token = {"anonymous": None, "self": tp}.get(who, tv)
    query, pick = FYF_SURFACES[surface]
    variables = {"u": "priv"} if surface == "user" else {"id": p}
    body = await gql(query % f"followers {{ nodes {{ username }} }} {FYF}", variables, token)
    assert body["data"] is not None, body
    got = pick(body["data"])
    if who in ("anonymous", "stranger", "requester"):
        assert got == {"followers": None, "followersYouFollow": None}
        assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
        assert {tuple(e["path"][-1:]) for e in body["errors"]} == {("followers",), ("followersYouFollow",)}
    else:
        assert "errors" not in body, body["errors"]
        mutual = [{"username": "fan"}] if who == "follower" else []
        assert got["followersYouFollow"] == {"totalCount": len(mutual), "users": mutual}


async def _id(gql, name: str) -> str:
    from schema.relay import to_global_id

    return to_global_id("User", (await gql.tao.key_get_many("username", [name]))[name])
