"""Explore through GraphQL on the real app (MariaDB + memcached): the grid pages one snapshot,
suggestions come with reasons and can be dismissed, trending hashtags are public, bad input is
a clear error."""

from __future__ import annotations

from resolvers.explore import trends
from tests.resolvers.explore.conftest import one_trend_bucket

EXPLORE = """query($first: Int!, $after: String) { explore(first: $first, after: $after) {
  edges { cursor node { id caption author { username } } } pageInfo { hasNextPage endCursor } } }"""
SUGGESTED = "{ suggestedUsers(first: 10) { user { id username } reason mutualCount followsYou } }"


async def _post(gql, token, caption):
    data = await gql.ok("mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }",
                        {"i": {"caption": caption}}, token)
    assert data["createPost"]["errors"] == []
    return data["createPost"]["post"]["id"]


async def test_explore_suggestions_and_trends(gql):
    one_trend_bucket(gql.tao.settings.explore)
    viewer_t, _ = await gql.sign_up("viewer")
    ada_t, ada = await gql.sign_up("ada")
    await gql.mutate("follow", viewer_t, ada)
    posters = [await gql.sign_up(f"poster{i}") for i in range(6)]
    for _, uid in posters:
        await gql.mutate("follow", ada_t, uid)
    posted = [await _post(gql, t, f"hello #sunset {i}") for i, (t, _) in enumerate(posters)]
    own = await _post(gql, viewer_t, "mine #sunset")
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    await trends.refresh(gql.tao, gql.tao.settings.explore)

    shown, after = [], None
    while True:
        page = (await gql.ok(EXPLORE, {"first": 4, "after": after}, viewer_t))["explore"]
        shown += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(shown) == sorted(posted) and own not in shown  # cold start: the trending posts
    await gql.tao.run_jobs_until_idle(include_delayed=False)  # the viewer's pool, enqueued by that read

    got = (await gql.ok(SUGGESTED, None, viewer_t))["suggestedUsers"]
    assert {s["user"]["username"] for s in got} == {f"poster{i}" for i in range(6)}
    assert {s["reason"] for s in got} == {"followed by ada"}
    dismissed = got[0]["user"]["id"]
    data = await gql.mutate("dismissSuggestion", viewer_t, dismissed, "ok errors { code }")
    assert data == {"ok": True, "errors": []}
    got = (await gql.ok(SUGGESTED, None, viewer_t))["suggestedUsers"]
    assert dismissed not in {s["user"]["id"] for s in got} and len(got) == 5

    tags = (await gql.ok("{ trendingHashtags(first: 5) { hashtag { name postCount } score accounts } }"))
    assert [(t["hashtag"]["name"], t["accounts"]) for t in tags["trendingHashtags"]] == [("sunset", 7)]


async def test_explore_needs_a_viewer_and_good_cursors(gql):
    token, _ = await gql.sign_up("viewer")
    body = await gql(EXPLORE, {"first": 4, "after": None})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for bad in ("nonsense", "ZXhwbG9yZToxOjI", "x" * 300):
        body = await gql(EXPLORE, {"first": 4, "after": bad}, token)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", bad
    body = await gql(EXPLORE, {"first": 1000, "after": None}, token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
