"""Relay conventions: global ids, node/nodes, connections with keyset cursors and page limits."""

from __future__ import annotations

import base64
import time

import pytest

pytestmark = pytest.mark.no_blocking

from tao.ids import make_id

NODE = "query($id: ID!) { node(id: $id) { __typename id ... on User { username } } }"
PAGE = """query($first: Int!, $after: String) { user(username: "star") {
  followers(first: $first, after: $after) {
    edges { cursor node { username } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } } }"""


def gid(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_node_round_trips_global_ids(gql):
    token, uid = await gql.sign_up("ada")
    raw = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)).decode() == f"User:{raw}"
    assert (await gql.ok(NODE, {"id": uid}))["node"] == {"__typename": "User", "id": uid, "username": "ada"}
    missing = gid(f"User:{make_id(int(time.time() * 1000), 0, 1)}")
    data = await gql.ok("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [uid, missing, uid]})
    assert data["nodes"] == [{"id": uid}, None, {"id": uid}]


@pytest.mark.parametrize("bad", ["garbage!", gid("User:abc"), gid("Nope:1"), gid("User:-5"), gid("User:0"),
                                 gid(f"User:{make_id(1_800_000_000_000, 4000, 1)}"), "x" * 300])
async def test_invalid_ids_are_bad_input(gql, bad):
    body = await gql(NODE, {"id": bad})
    assert body["data"] == {"node": None}
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "valid id" in err["message"]
    body = await gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [bad]})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_mutation_with_an_invalid_id_changes_nothing(gql):
    token, _ = await gql.sign_up("ada")
    body = await gql('mutation { follow(input: {userId: "nonsense"}) { status } }', token=token)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(ada, "FOLLOWS") == 0


async def test_too_many_nodes(gql):
    body = await gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["x"] * 101})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_keyset_pages_cover_the_list_once_and_stay_stable(gql):
    await gql.sign_up("star")
    star_gid = (await gql.ok('{ user(username: "star") { id } }'))["user"]["id"]
    tokens = []
    for i in range(25):
        t, _ = await gql.sign_up(f"fan{i:02d}")
        tokens.append(t)
        await gql.mutate("follow", t, star_gid)
    seen, after, pages = [], None, 0
    while True:
        conn = (await gql.ok(PAGE, {"first": 10, "after": after}))["user"]["followers"]
        pages += 1
        seen += [e["node"]["username"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if conn["edges"]:
            assert conn["pageInfo"]["startCursor"] == conn["edges"][0]["cursor"]
            assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        if pages == 1:
            # a new follower arriving while the client pages does not shift later pages
            t, _ = await gql.sign_up("latecomer")
            await gql.mutate("follow", t, star_gid)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == [f"fan{i:02d}" for i in reversed(range(25))]  # newest first, each exactly once


@pytest.mark.parametrize("first", [101, -1, 1000])
async def test_page_size_limit(gql, first):
    await gql.sign_up("star")
    body = await gql(PAGE, {"first": first})
    assert body["data"]["user"]["followers"] is None
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and "between 0 and 100" in err["message"]


@pytest.mark.parametrize("after", ["nonsense", gid("cursor:x:1"), gid("User:1"), gid("cursor:1")])
async def test_bad_cursor(gql, after):
    await gql.sign_up("star")
    body = await gql(PAGE, {"first": 5, "after": after})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "cursor" in body["errors"][0]["message"]


async def test_first_zero_is_an_empty_page(gql):
    await gql.sign_up("star")
    conn = (await gql.ok(PAGE, {"first": 0}))["user"]["followers"]
    assert conn["edges"] == [] and conn["pageInfo"]["hasNextPage"] is False
