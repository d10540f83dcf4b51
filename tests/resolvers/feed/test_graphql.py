"""The feed through GraphQL on the real app, both backends: P's createPost feeds followers,
cursors page one snapshot, debug scores are developers-only, profile visits are recorded."""

from __future__ import annotations

from schema.relay import from_global_id


def _store_id(gql, global_id: str) -> int:
    return from_global_id(global_id, gql.tao.n_shards)[1]

FEED = """query($first: Int!, $after: String, $mode: FeedMode!) {
  viewer { feed(first: $first, after: $after, feedMode: $mode) {
  edges { cursor node { id caption author { username } } } pageInfo { hasNextPage endCursor } newPostsCount } } }"""


async def _post(gql, token, caption):
    data = await gql.ok("mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }",
                        {"i": {"caption": caption}}, token)
    assert data["createPost"]["errors"] == []
    return data["createPost"]["post"]["id"]


async def test_feed_pages_one_snapshot_through_graphql(gql):
    alice_t, alice = await gql.sign_up("alice")
    bob_t, bob = await gql.sign_up("bob")
    carol_t, _ = await gql.sign_up("carol")
    await gql.mutate("follow", carol_t, alice)
    await gql.mutate("follow", carol_t, bob)
    posted = [await _post(gql, (alice_t, bob_t)[i % 2], f"post {i}") for i in range(5)]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    shown, after = [], None
    while True:
        page = (await gql.ok(FEED, {"first": 2, "after": after, "mode": "CHRONOLOGICAL"}, carol_t))["viewer"]["feed"]
        shown += [e["node"]["id"] for e in page["edges"]]
        if after is None:
            new = await _post(gql, alice_t, "while scrolling")
            await gql.tao.run_jobs_until_idle(include_delayed=False)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert shown == posted[::-1]
    assert page["newPostsCount"] == 1
    fresh = (await gql.ok(FEED, {"first": 1, "after": None, "mode": "RANKED"}, carol_t))["viewer"]["feed"]
    assert fresh["newPostsCount"] == 0
    ranked = (await gql.ok(FEED, {"first": 10, "after": None, "mode": "RANKED"}, carol_t))["viewer"]["feed"]
    assert {e["node"]["id"] for e in ranked["edges"]} == set(posted) | {new}


async def test_feed_is_the_viewers_own_and_debug_is_for_developers(gql):
    alice_t, alice = await gql.sign_up("alice")
    carol_t, carol = await gql.sign_up("carol")
    await gql.mutate("follow", carol_t, alice)
    await _post(gql, alice_t, "hello")
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    body = await gql('query($u: String!) { user(username: $u) { feed(first: 5) { edges { cursor } } } }',
                     {"u": "alice"}, carol_t)
    assert body["data"]["user"]["feed"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    q = "{ viewer { feed(first: 5) { edges { debug { score recency affinity } } } } }"
    body = await gql(q, None, carol_t)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await gql.tao.obj_update(_store_id(gql, carol), {"is_developer": True})
    (edge,) = (await gql.ok(q, None, carol_t))["viewer"]["feed"]["edges"]
    assert edge["debug"]["score"] > 0 and 0 < edge["debug"]["recency"] <= 1


async def test_record_profile_visit(gql):
    alice_t, alice = await gql.sign_up("alice")
    carol_t, carol = await gql.sign_up("carol")
    data = await gql.ok(
        "mutation($i: ProfileVisitRecordInput!) { recordProfileVisit(input: $i) { ok errors { code } } }",
        {"i": {"userId": alice}},
        carol_t,
    )
    assert data["recordProfileVisit"] == {"ok": True, "errors": []}
    visits = await gql.tao.assoc_range(_store_id(gql, carol), "VISITED", 0, 10)
    assert [a.id2 for a in visits] == [_store_id(gql, alice)]


async def test_an_empty_feed_page_has_an_end_cursor_to_page_on_from(gql):
    alice_t, alice = await gql.sign_up("alice")
    carol_t, _ = await gql.sign_up("carol")
    await gql.mutate("follow", carol_t, alice)
    posted = [await _post(gql, alice_t, f"post {i}") for i in range(3)]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    for mode in ("CHRONOLOGICAL", "RANKED"):
        empty = (await gql.ok(FEED, {"first": 0, "after": None, "mode": mode}, carol_t))["viewer"]["feed"]
        assert empty["edges"] == [] and empty["pageInfo"]["endCursor"] and empty["pageInfo"]["hasNextPage"]
        after = empty["pageInfo"]["endCursor"]
        again = (await gql.ok(FEED, {"first": 0, "after": after, "mode": mode}, carol_t))["viewer"]["feed"]
        assert again["edges"] == [] and again["pageInfo"]["endCursor"]
        page = (await gql.ok(FEED, {"first": 10, "after": again["pageInfo"]["endCursor"], "mode": mode},
                             carol_t))["viewer"]["feed"]
        assert {e["node"]["id"] for e in page["edges"]} == set(posted)
        assert page["pageInfo"]["endCursor"] and not page["pageInfo"]["hasNextPage"]
    # an empty feed too
    lone_t, _ = await gql.sign_up("lone")
    lone = (await gql.ok(FEED, {"first": 5, "after": None, "mode": "RANKED"}, lone_t))["viewer"]["feed"]
    assert lone["edges"] == [] and lone["pageInfo"]["endCursor"]
    rest = (await gql.ok(FEED, {"first": 5, "after": lone["pageInfo"]["endCursor"], "mode": "RANKED"}, lone_t))
    assert rest["viewer"]["feed"]["edges"] == []
