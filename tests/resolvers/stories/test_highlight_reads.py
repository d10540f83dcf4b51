"""A profile's highlights and their covers read what they show, not every story they list.

Before the seventeenth session `Highlight.cover` read every story of its highlight (up to 100)
for 1 point, and `User.highlights` for anyone but the owner read each listed highlight's stories
to decide whether it had one they may see (a page of 20: up to 2 000 stories). The highlight now
keeps which of its stories are for close friends (`cf`), so neither reads a story it does not show."""

from __future__ import annotations

from resolvers.stories.highlights import record_audiences
from schema.relay import from_global_id
from tests.resolvers.stories.helpers import clock, post_story

HL_CREATE = """mutation($i: HighlightCreateInput!) { createHighlight(input: $i) {
  highlight { id } errors { code field } } }"""
PROFILE = """{ user(username: "ada") { highlights(first: 20) { nodes { title cover { id } } } } }"""
N = 12  # stories in the highlight: all but the last for close friends


async def _profile(gql) -> tuple[str, str, list[str]]:
    clock(gql)
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    ids = [(await post_story(gql, ta, "ada", audience="CLOSE_FRIENDS"))["id"] for _ in range(N - 1)]
    ids.append((await post_story(gql, ta, "ada"))["id"])
    p = (await gql.ok(HL_CREATE, {"i": {"title": "trip", "storyIds": ids}}, ta))["createHighlight"]
    assert p["errors"] == [], p
    return tb, p["highlight"]["id"], ids


async def _reads(gql, token: str) -> tuple[dict, int]:
    await gql.ok(PROFILE, token=token)  # warm
    data, stats = await gql.measure_warm(PROFILE, token=token)
    return data, stats["cache_hits"] + stats["cache_misses"] + stats["sql_queries"]


async def test_a_page_of_highlights_and_covers_reads_no_story_it_does_not_show(gql):
    tb, _, ids = await _profile(gql)
    data, keys = await _reads(gql, tb)
    # bob is not a close friend: the highlight shows, with the one story he may see as its cover
    assert data["user"]["highlights"]["nodes"] == [{"title": "trip", "cover": {"id": ids[-1]}}]
    assert keys < N, keys  # was every story of the highlight, and more (N + the page's own reads)
    body = await gql(PROFILE, None, tb)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 20 * (1 + 2)  # the cover: two stories


async def test_a_highlight_from_before_the_audience_was_kept_is_upgraded(gql):
    """A highlight without `cf` (written before) is still judged right, by reading its stories, until
    `python -m resolvers highlights-audience` records them; then it reads no more than a new one."""
    tb, hid, ids = await _profile(gql)
    raw = from_global_id(hid, gql.tao.n_shards)[1]
    await gql.tao.obj_update(raw, {"cf": None})  # as written before the seventeenth session
    old, old_keys = await _reads(gql, tb)
    assert old["user"]["highlights"]["nodes"] == [{"title": "trip", "cover": {"id": ids[-1]}}]
    assert old_keys >= N
    assert [h async for h in record_audiences(gql.tao)] == [raw]
    new, keys = await _reads(gql, tb)
    assert new == old and keys < N
    assert [h async for h in record_audiences(gql.tao)] == []
