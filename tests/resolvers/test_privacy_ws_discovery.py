"""Privacy over the WebSocket (`graphql-transport-ws`) on search (`search`, `recentSearches`) and
Explore (`explore`, `suggestedUsers`, `trendingHashtags`), signed in and anonymous.

"Nothing reaches a client that the viewer may not see, on any surface, HTTP or WebSocket": each
read runs over both transports and must give the same answer, and that answer must hold nothing
hidden. A socket keeps one context for its life, so the reads that matter most here run on a
socket opened *before* the relation changed (a block either way, going private): an answer
cached by the socket's earlier operations must not outlive the change. Each test has a control
case in which the viewer does see the thing, so it can fail.
"""

from __future__ import annotations

import pytest

from resolvers.explore import trends
from tests.resolvers.stories.helpers import clock, post_story
from tests.resolvers.transports import PRIVATE, both, mentions
from tests.schema.client import GQL

VIEWERS = "query($s: ID!) { node(id: $s) { ... on Story { viewerCount viewers { nodes { username } } } } }"


# ---- search -------------------------------------------------------------------------------------

SEARCH = """query($q: String!) { search(query: $q, first: 20) { edges { node { __typename
  ... on User { username } ... on Hashtag { name postCount } ... on Post { caption } } } } }"""
RECENT = "{ recentSearches { __typename ... on User { username } ... on Hashtag { name } } }"
ADD_RECENT = "mutation($i: RecentSearchAddInput!) { addRecentSearch(input: $i) { errors { code } } }"
CREATE_POST = "mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }"


async def _post(gql: GQL, token: str, caption: str) -> str:
    data = (await gql.ok(CREATE_POST, {"i": {"caption": caption}}, token))["createPost"]
    assert data["errors"] == [], data
    return data["post"]["id"]


@pytest.mark.parametrize("change", ["none", "viewer_blocks", "blocked_by_them", "they_go_private"])
async def test_search_and_recent_searches_over_the_socket_follow_a_block_or_going_private(gql: GQL,
                                                                                         change: str) -> None:
    tv, v = await gql.sign_up("viewer")
    tz, z = await gql.sign_up("zephyr")
    await _post(gql, tz, "zephyr over the lagoon #lagoonlight")
    await gql.tao.run_jobs_until_idle()  # the index jobs, as the partition's writer would run them
    assert (await gql.ok(ADD_RECENT, {"i": {"id": z}}, tv))["addRecentSearch"]["errors"] == []
    async with both(gql, tv) as viewer:
        before = [await viewer.read(SEARCH, {"q": q}) for q in ("zephyr", "lagoon")] + [await viewer.read(RECENT)]
        assert all(mentions(r, "zephyr") for r in before), before  # the control: the socket found them
        if change == "viewer_blocks":
            assert (await gql.mutate("block", tv, z))["errors"] == []
        elif change == "blocked_by_them":
            assert (await gql.mutate("block", tz, v))["errors"] == []
        elif change == "they_go_private":
            assert (await gql.ok(PRIVATE, {"p": True}, tz))["updateProfile"]["errors"] == []
        await gql.tao.run_jobs_until_idle()
        profile, posts, recent = ([await viewer.read(SEARCH, {"q": q}) for q in ("zephyr", "lagoon")]
                                  + [await viewer.read(RECENT)])
    if change == "none":
        assert [profile, posts, recent] == before
    elif change == "they_go_private":  # the profile stays findable, the posts do not
        assert mentions(profile, '"username": "zephyr"') and mentions(recent, "zephyr")
        assert not mentions(posts, "zephyr over the lagoon"), posts
    else:
        assert not any(mentions(r, "zephyr") for r in (profile, posts, recent)), (profile, posts, recent)


# ---- Explore ------------------------------------------------------------------------------------

EXPLORE = """query($first: Int!, $after: String) { explore(first: $first, after: $after) {
  edges { node { id author { username } } } pageInfo { hasNextPage endCursor } } }"""
SUGGESTED = "{ suggestedUsers(first: 20) { user { username } reason } }"
TRENDING = "{ trendingHashtags(first: 10) { hashtag { name postCount } accounts } }"


@pytest.mark.parametrize("change", ["none", "viewer_blocks", "blocked_by_them", "they_go_private"])
async def test_explore_suggestions_and_trends_over_the_socket_follow_a_change_mid_scroll(gql: GQL,
                                                                                        change: str) -> None:
    # A tag trends from 5 accounts in one bucket of `trend_bucket_minutes` (an hour): posts made
    # on both sides of an hour fell short in either bucket, and the first page came back empty
    # (a run crossing midnight, seventeenth session). A week's bucket keeps them in one.
    gql.tao.settings.explore.trend_bucket_minutes = 7 * 24 * 60
    tv, _ = await gql.sign_up("viewer")
    ta, a = await gql.sign_up("ada")
    await gql.mutate("follow", tv, a)
    posters = [await gql.sign_up(f"poster{i}") for i in range(6)]  # a tag trends from 5 accounts on
    for _, uid in posters:
        await gql.mutate("follow", ta, uid)
    for i, (t, _) in enumerate(posters):
        await _post(gql, t, f"hello #sunset {i}")
    tp, _ = await gql.sign_up("pia", private=True)
    await _post(gql, tp, "only mine #hushhush")  # a tag only a private account used: never listed
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    await trends.refresh(gql.tao, gql.tao.settings.explore)
    async with both(gql, tv) as viewer:
        first = (await viewer.ws(EXPLORE, {"first": 1}))["data"]["explore"]  # the session starts on the socket
        shown = first["edges"][0]["node"]["author"]["username"]
        others = [(t, u) for i, (t, u) in enumerate(posters) if f"poster{i}" != shown]
        await gql.tao.run_jobs_until_idle(include_delayed=False)  # the viewer's pool, enqueued by that read
        suggested_before = await viewer.read(SUGGESTED)
        assert all(mentions(suggested_before, f"poster{i}") for i in range(6))  # the control
        trending = await viewer.read(TRENDING)
        assert mentions(trending, "sunset") and not mentions(trending, "hushhush"), trending
        for t, u in others:
            if change == "viewer_blocks":
                assert (await gql.mutate("block", tv, u))["errors"] == []
            elif change == "blocked_by_them":
                assert (await gql.mutate("block", t, (await gql.ok("{ viewer { id } }", token=tv))["viewer"]["id"]
                                         ))["errors"] == []
            elif change == "they_go_private":
                assert (await gql.mutate("unfollow", ta, u))["errors"] == []  # ada no longer follows them ...
                assert (await gql.ok(PRIVATE, {"p": True}, t))["updateProfile"]["errors"] == []  # ... and they hide
        # The same page of the same session is served again (a retry): HTTP and the socket agree.
        rest = await viewer.read(EXPLORE, {"first": 10, "after": first["pageInfo"]["endCursor"]})
        suggested = await viewer.read(SUGGESTED)
        trending_after = await viewer.read(TRENDING)
    hidden = [f"poster{i}" for i, (_, u) in enumerate(posters) if (_, u) in others]
    if change == "none":
        assert all(mentions(rest, name) for name in hidden), rest
        assert suggested == suggested_before
    elif change == "they_go_private":
        # A private account may be suggested (its profile is LIMITED, not hidden) but its posts are
        # not served, and ada, who no longer follows it, is not named as following it.
        assert not any(mentions(rest, name) for name in hidden), rest
        reasons = {s["user"]["username"]: s["reason"] for s in suggested["data"]["suggestedUsers"]}
        assert all("ada" not in reasons.get(name, "") for name in hidden), reasons
    else:
        assert not any(mentions(rest, name) for name in hidden), rest
        assert not any(mentions(suggested, name) for name in hidden), suggested
    assert not mentions(trending_after, "hushhush"), trending_after


async def test_an_anonymous_socket_gets_what_anonymous_http_gets(gql: GQL) -> None:
    clock(gql)
    tp, _ = await gql.sign_up("pia", private=True)
    tz, _ = await gql.sign_up("zephyr")
    await _post(gql, tp, "pia by the lagoon #hushhush")
    await _post(gql, tz, "zephyr over the lagoon")
    story = await post_story(gql, tz, "zephyr")
    await gql.tao.run_jobs_until_idle()
    async with both(gql, None) as anonymous:
        found = await anonymous.read(SEARCH, {"q": "lagoon"})
        assert mentions(found, "zephyr over the lagoon") and not mentions(found, "pia by the lagoon"), found
        assert not mentions(await anonymous.read(SEARCH, {"q": "hushhush"}), "hushhush")
        assert not mentions(await anonymous.read(TRENDING), "hushhush")
        for viewer_only in (RECENT, SUGGESTED, "{ explore(first: 5) { edges { node { id } } } }"):
            refused = await anonymous.read(viewer_only)
            assert refused["errors"] and {c for c, _ in refused["errors"]} == {"UNAUTHENTICATED"}, refused
        # a public account's story is public; the viewer list never is
        assert (await anonymous.read(VIEWERS, {"s": story["id"]}))["errors"]
