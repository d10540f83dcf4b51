"""Concurrent changes to one highlight: its story list and the IN_HIGHLIGHT edges that keep
stories alive agree once they settle, and no change is lost."""

from __future__ import annotations

import asyncio

from tests.resolvers.messages_client import store_id
from tests.resolvers.stories.helpers import clock, post_story

HL = "highlight { id stories(first: 100) { nodes { id } } } errors { code field }"
CREATE = f"mutation($i: HighlightCreateInput!) {{ createHighlight(input: $i) {{ {HL} }} }}"
ADD = f"mutation($i: HighlightStoriesInput!) {{ addToHighlight(input: $i) {{ {HL} }} }}"
REMOVE = f"mutation($i: HighlightStoriesInput!) {{ removeFromHighlight(input: $i) {{ {HL} }} }}"


async def _state(gql, hid: int) -> tuple[set[int], set[int]]:
    """(the stories the highlight lists, the stories whose IN_HIGHLIGHT edge names it)."""
    obj = (await gql.tao.obj_get([hid]))[hid]
    edges = await gql.tao.assoc_range(hid, "HIGHLIGHT_OF", 0, 1000)
    return {int(s) for s in obj.data["stories"]}, {e.id2 for e in edges}


async def test_concurrent_adds_lose_nothing_and_keep_edges_and_list_in_step(gql):
    """Two addToHighlight at once both read the list, and the later write dropped the other's
    story: its IN_HIGHLIGHT edge then kept it alive past 24 hours in a highlight that does not
    list it. Each add is now a compare-and-set of the list; the edges follow the list."""
    clock(gql)
    ta, _ = await gql.sign_up("ada")
    ids = [(await post_story(gql, ta, "ada"))["id"] for _ in range(7)]
    stories = [store_id(i) for i in ids]
    h = (await gql.ok(CREATE, {"i": {"title": "h", "storyIds": [ids[0]]}}, ta))["createHighlight"]
    assert h["errors"] == [], h
    hid = store_id(h["highlight"]["id"])
    answers = await asyncio.gather(
        *(gql.ok(ADD, {"i": {"highlightId": h["highlight"]["id"], "storyIds": [i]}}, ta) for i in ids[1:])
    )
    assert all(a["addToHighlight"]["errors"] == [] for a in answers), answers
    await gql.tao.run_jobs_until_idle()
    listed, kept = await _state(gql, hid)
    assert listed == kept == set(stories), (listed, kept)
    # adds racing removes: whatever the order, the list and the edges agree
    half = ids[1:4]
    await asyncio.gather(
        gql.ok(REMOVE, {"i": {"highlightId": h["highlight"]["id"], "storyIds": half}}, ta),
        *(gql.ok(ADD, {"i": {"highlightId": h["highlight"]["id"], "storyIds": [i]}}, ta) for i in half),
    )
    await gql.tao.run_jobs_until_idle()
    listed, kept = await _state(gql, hid)
    assert listed == kept, (listed, kept)


async def test_a_highlight_title_that_shows_as_nothing_or_could_spoof_is_refused(gql):
    """A title is shown beside others' on the profile: a zero-width space alone, a bell, a line
    separator or a text-direction override were taken. They are refused as a full name's are."""
    clock(gql)
    ta, _ = await gql.sign_up("ada")
    story = (await post_story(gql, ta, "ada"))["id"]
    for title in ("\u200b", "a\x07", "a\u2028b", "evil\u202e"):
        p = (await gql.ok(CREATE, {"i": {"title": title, "storyIds": [story]}}, ta))["createHighlight"]
        assert p == {"highlight": None, "errors": [{"code": "TITLE_INVALID", "field": "title"}]}, (title, p)
    listed = await gql.ok('{ user(username: "ada") { highlights { nodes { id } } } }', token=ta)
    assert listed["user"]["highlights"] == {"nodes": []}
    ok = (await gql.ok(CREATE, {"i": {"title": "\U0001f600 Summer", "storyIds": [story]}}, ta))["createHighlight"]
    assert ok["errors"] == []
