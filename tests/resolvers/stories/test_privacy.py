"""Privacy on every story surface x every relation: node(id:) of the story and of its media,
the profile ring, highlights, the tray, seen marks and replies; and the viewer list."""

from __future__ import annotations

import pytest

from tests.resolvers.stories.helpers import NODE, SEEN, STORIES, clock, post_story, ring_names, tray, unwrap

REPLY = """mutation($i: StoryReplyInput!) { replyToStory(input: $i) { message { id } errors { code } } }"""
HIGHLIGHT = """mutation($i: HighlightCreateInput!) {
  createHighlight(input: $i) { highlight { id } errors { code } } }"""

# relation -> what the viewer may see of the author's followers story
RELATIONS = {
    "public_stranger": True,
    "public_follower": True,
    "private_stranger": False,
    "private_requested": False,
    "private_follower": True,
    "blocked_by_author": False,
    "blocks_author": False,
    "anonymous_public": True,
    "anonymous_private": False,
}


async def _setup(gql, relation):
    private = relation.startswith("private") or relation == "anonymous_private"
    ta, a = await gql.sign_up("ada", private=private)
    tv, v = await gql.sign_up("vic")
    if relation in ("public_follower", "private_follower", "private_requested", "blocked_by_author",
                    "blocks_author"):
        await gql.mutate("follow", tv, a)
    if relation == "private_follower":
        await gql.mutate("approveFollowRequest", ta, v)
    story = await post_story(gql, ta, "ada", hashtag="#Sun", link="https://example.com/x")
    await gql.ok(HIGHLIGHT, {"i": {"title": "best", "storyIds": [story["id"]]}}, ta)
    if relation == "blocked_by_author":
        await gql.mutate("block", ta, v)
    if relation == "blocks_author":
        await gql.mutate("block", tv, a)
    token = None if relation.startswith("anonymous") else tv
    return ta, token, story


@pytest.mark.parametrize("relation", list(RELATIONS))
async def test_story_surfaces_by_relation(gql, relation):
    clock(gql)
    ta, token, story = await _setup(gql, relation)
    expected = RELATIONS[relation]
    seen = {
        "node": (await gql.ok(NODE, {"id": story["id"]}, token))["node"] is not None,
        "media": (await gql.ok(NODE, {"id": story["media"]["id"]}, token))["node"] is not None,
    }
    profile = unwrap(await gql.ok(STORIES, {"u": "ada"}, token))["user"]
    if profile is None:  # a block hides the account itself
        seen["profile"] = seen["highlights"] = False
    else:
        seen["profile"] = profile["stories"] == [{"id": story["id"]}]
        seen["highlights"] = profile["highlights"] == [{"title": "best", "stories": [{"id": story["id"]}]}]
    if token is not None:
        seen["tray"] = "ada" in ring_names(await tray(gql, token))
        mark = (await gql.ok(SEEN, {"ids": [story["id"]]}, token))["markStorySeen"]
        seen["mark"] = mark["errors"] == []
        reply = (await gql.ok(REPLY, {"i": {"storyId": story["id"], "text": "wow", "clientMessageId": "r1"}},
                              token))["replyToStory"]
        seen["reply"] = reply["errors"] == []
    tray_expected = expected and relation in ("public_follower", "private_follower")
    assert seen == {k: (tray_expected if k == "tray" else expected) for k in seen}, relation
    # the author's viewer list shows exactly who marked it (nobody hidden from the author)
    viewers = await gql.ok("query($id: ID!) { node(id: $id) { ... on Story { viewerCount viewerCountIsExact "
                           "viewers { nodes { username } } } } }", {"id": story["id"]}, ta)
    listed = seen.get("mark", False)
    assert viewers["node"] == {"viewerCount": int(listed), "viewerCountIsExact": True,
                               "viewers": {"nodes": [{"username": "vic"}] if listed else []}}


async def test_a_viewer_who_blocks_the_author_later_is_not_listed(gql):
    clock(gql)
    ta, a = await gql.sign_up("ada")
    tv, v = await gql.sign_up("vic")
    tw, _ = await gql.sign_up("wes")
    story = await post_story(gql, ta, "ada")
    for t in (tv, tw):
        assert (await gql.ok(SEEN, {"ids": [story["id"]]}, t))["markStorySeen"]["errors"] == []
    q = "query($id: ID!) { node(id: $id) { ... on Story { viewerCount viewers { nodes { username } } } } }"
    assert (await gql.ok(q, {"id": story["id"]}, ta))["node"] == {
        "viewerCount": 2, "viewers": {"nodes": [{"username": "wes"}, {"username": "vic"}]}}  # newest first
    await gql.mutate("block", tv, a)
    assert (await gql.ok(q, {"id": story["id"]}, ta))["node"] == {
        "viewerCount": 1, "viewers": {"nodes": [{"username": "wes"}]}}


async def test_only_the_author_sees_viewers(gql):
    clock(gql)
    ta, a = await gql.sign_up("ada")
    tv, _ = await gql.sign_up("vic")
    story = await post_story(gql, ta, "ada")
    q = "query($id: ID!) { node(id: $id) { ... on Story { viewerCount viewers { nodes { id } } } } }"
    # Someone else: not theirs; anonymous (ada is public, so the story shows): log in first.
    for token, code in ((tv, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        body = await gql(q, {"id": story["id"]}, token)
        assert body["data"]["node"] == {"viewerCount": None, "viewers": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == [code, code]
