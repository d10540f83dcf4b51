"""Relay conventions: global ids, node/nodes, connections with keyset cursors and page limits."""

from __future__ import annotations

import base64
import time

import pytest

from schema.relay import to_global_id
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


# Every field with a `first` argument, and a query that reaches it as `viewer` ($f: the page size).
FIRST_FIELDS = {
    ("Query", "search"): '{ search(query: "ada", first: $f) { edges { cursor } } }',
    ("Query", "recentSearches"): "{ recentSearches(first: $f) { __typename } }",
    ("User", "posts"): "{ viewer { posts(first: $f) { nodes { id } } } }",
    ("User", "feed"): "{ viewer { feed(first: $f) { nodes { id } } } }",
    ("User", "notifications"): "{ viewer { notifications(first: $f) { edges { cursor } } } }",
    ("User", "followers"): "{ viewer { followers(first: $f) { nodes { id } } } }",
    ("User", "following"): "{ viewer { following(first: $f) { nodes { id } } } }",
    ("User", "followRequests"): "{ viewer { followRequests(first: $f) { nodes { id } } } }",
    ("User", "blockedUsers"): "{ viewer { blockedUsers(first: $f) { nodes { id } } } }",
    ("User", "mutedUsers"): "{ viewer { mutedUsers(first: $f) { nodes { id } } } }",
    ("User", "followersYouFollow"): '{ user(username: "star") { followersYouFollow(first: $f) { totalCount } } }',
    ("Post", "likers"): "{ viewer { posts(first: 1) { nodes { likers(first: $f) { nodes { id } } } } } }",
    ("Post", "comments"): "{ viewer { posts(first: 1) { nodes { comments(first: $f) { nodes { id } } } } } }",
    ("Comment", "replies"): "{ viewer { posts(first: 1) { nodes { comments(first: 1) { nodes { replies(first: $f) "
                            "{ nodes { id } } } } } } } }",
    ("Hashtag", "posts"): '{ hashtag(name: "tag") { posts(first: $f) { nodes { id } } } }',
    ("Location", "posts"): "{ node(id: $loc) { ... on Location { posts(first: $f) { nodes { id } } } } }",
    ("Inbox", "threads"): "{ inbox { threads(first: $f) { nodes { id } } } }",
    ("Thread", "messages"): "{ inbox { threads(first: 1) { nodes { messages(first: $f) { nodes { id } } } } } }",
    ("Query", "explore"): "{ explore(first: $f) { nodes { id } } }",
    ("Query", "suggestedUsers"): "{ suggestedUsers(first: $f) { reason } }",
    ("Query", "trendingHashtags"): "{ trendingHashtags(first: $f) { score } }",
    ("User", "storyTray"): "{ viewer { storyTray(first: $f) { nodes { hasUnseen } } } }",
    ("User", "storyArchive"): "{ viewer { storyArchive(first: $f) { nodes { id } } } }",
    ("User", "closeFriends"): "{ viewer { closeFriends(first: $f) { nodes { id } } } }",
    ("User", "restrictedUsers"): "{ viewer { restrictedUsers(first: $f) { nodes { id } } } }",
    ("User", "storyMutedUsers"): "{ viewer { storyMutedUsers(first: $f) { nodes { id } } } }",
    ("Story", "viewers"): "{ viewer { stories { nodes { viewers(first: $f) { nodes { id } } } } } }",
    ("User", "stories"): "{ viewer { stories(first: $f) { nodes { id } } } }",
    ("User", "highlights"): "{ viewer { highlights(first: $f) { nodes { id } } } }",
    ("Highlight", "stories"): "{ viewer { highlights(first: 1) { nodes { stories(first: $f) { nodes { id } } } } } }",
    ("Post", "pendingComments"): "{ viewer { posts(first: 1) { nodes { pendingComments(first: $f) "
                                 "{ nodes { id } } } } } }",
}


async def test_every_first_argument_shares_one_range_check(gql):
    """-5 and 1 000 001 are BAD_USER_INPUT on every field that takes `first`; 0 and 100 are fine."""
    types = (await gql.ok("{ __schema { types { name fields { name args { name } } } } }"))["__schema"]["types"]
    with_first = {(t["name"], f["name"]) for t in types if not t["name"].startswith("__")
                  for f in t["fields"] or () if any(a["name"] == "first" for a in f["args"])}
    assert with_first == set(FIRST_FIELDS)  # a new field with `first`: add it above
    token, _ = await gql.sign_up("ada")
    _, star = await gql.sign_up("star")
    await gql.ok('mutation($s: ID!) { sendMessage(input: {clientMessageId: "m1", recipientIds: [$s], text: "hi"}) '
                 "{ errors { code } } }", {"s": star}, token)  # ada's inbox holds a thread
    post = (await gql.ok('mutation { createPost(input: {caption: "#tag", location: {name: "Here"}}) '
                         "{ post { id location { id } } } }", token=token))["createPost"]["post"]
    await gql.ok('mutation($p: ID!) { addComment(input: {postId: $p, text: "hi"}) { errors { code } } }',
                 {"p": post["id"]}, token)
    loc = post["location"]["id"]
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]  # a story of hers (Story.viewers)
    media = await gql.tao.obj_add("MEDIA", {"kind": "image", "status": "ready", "owner": ada}, owner=ada)
    await gql.tao.assoc_add(ada, "UPLOADED", media)
    made = await gql.ok('mutation($m: ID!) { createStory(input: {mediaId: $m}) { story { id } errors { code } } }',
                        {"m": to_global_id("Media", media)}, token)
    assert made["createStory"]["errors"] == []
    highlight = await gql.ok('mutation($s: ID!) { createHighlight(input: {title: "t", storyIds: [$s]}) '
                             "{ errors { code } } }", {"s": made["createStory"]["story"]["id"]}, token)
    assert highlight["createHighlight"]["errors"] == []  # (Highlight.stories)
    for (typename, field), selection in FIRST_FIELDS.items():
        query = ("query($f: Int!, $loc: ID!) " if "$loc" in selection else "query($f: Int!) ") + selection
        for bad in (-5, 1_000_001):
            body = await gql(query, {"f": bad, "loc": loc}, token)
            codes = [e["extensions"]["code"] for e in body.get("errors", [])]
            assert codes and set(codes) == {"BAD_USER_INPUT"}, (typename, field, bad, body)
            assert f"between 0 and 100 (got {bad})" in body["errors"][0]["message"], (typename, field)
        for fine in (0, 100):
            assert "errors" not in await gql(query, {"f": fine, "loc": loc}, token), (typename, field, fine)


async def test_end_cursor_is_set_on_an_empty_first_page_and_pages_from_the_head(gql):
    await gql.sign_up("star")
    fans = [await gql.sign_up(f"fan{i}") for i in range(3)]
    for token, _ in fans:
        await gql.mutate("follow", token, (await gql.ok(NODE_BY_NAME))["user"]["id"])
    empty = (await gql.ok(PAGE, {"first": 0}))["user"]["followers"]
    assert empty["edges"] == [] and empty["pageInfo"]["endCursor"]
    page = (await gql.ok(PAGE, {"first": 10, "after": empty["pageInfo"]["endCursor"]}))["user"]["followers"]
    assert [e["node"]["username"] for e in page["edges"]] == ["fan2", "fan1", "fan0"]
    # an empty list has an end cursor too, and paging on from it is empty
    await gql.sign_up("loner")
    q = PAGE.replace('"star"', '"loner"')
    none = (await gql.ok(q, {"first": 5}))["user"]["followers"]
    assert none["edges"] == [] and none["pageInfo"]["endCursor"]
    assert (await gql.ok(q, {"first": 5, "after": none["pageInfo"]["endCursor"]}))["user"]["followers"]["edges"] == []


NODE_BY_NAME = '{ user(username: "star") { id } }'
