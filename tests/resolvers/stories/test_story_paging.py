"""`User.stories`, `User.highlights` and `Highlight.stories` are connections (`first`, `after`).

They were lists without `first`: each was costed at its maximum (100 stories, 100 highlights, 100
stories in each), so a profile asking for every highlight's stories cost 1 + 100 x (1 + 100 x ...)
points, past `limits.max_query_cost` whatever it selected, and a client could neither ask for less
nor page (the sixteenth session's closing note)."""

from __future__ import annotations

from tests.resolvers.stories.helpers import DAY, T0, clock, post_story

HL_CREATE = """mutation($i: HighlightCreateInput!) { createHighlight(input: $i) {
  highlight { id } errors { code field } } }"""
PAGE = """query($u: String!, $f: Int!, $a: String) { user(username: $u) {
  stories(first: $f, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } }
  highlights(first: $f, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } } }"""
HL_STORIES = """query($id: ID!, $f: Int!, $a: String) { node(id: $id) { ... on Highlight {
  stories(first: $f, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } } } }"""


async def _walk(gql, token: str, query: str, variables: dict, path: tuple[str, ...], first: int) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        data = await gql.ok(query, {**variables, "f": first, "a": after}, token)
        for key in path:
            data = data[key]
        seen += [n["id"] for n in data["nodes"]]
        assert len(data["nodes"]) <= first
        if not data["pageInfo"]["hasNextPage"]:
            return seen
        after = data["pageInfo"]["endCursor"]


async def test_profile_stories_highlights_and_their_stories_page(gql):
    c = clock(gql)
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    stories = [(await post_story(gql, ta, "ada"))["id"] for _ in range(5)]
    q = """query($u: String!, $f: Int!, $a: String) { user(username: $u) {
      stories(first: $f, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } } }"""
    for token in (ta, tb):  # oldest first, each once, two at a time
        assert await _walk(gql, token, q, {"u": "ada"}, ("user", "stories"), 2) == stories
    made = []
    for i in range(3):
        h = (await gql.ok(HL_CREATE, {"i": {"title": f"h{i}", "storyIds": stories[i:i + 3]}}, ta))["createHighlight"]
        assert h["errors"] == []
        made.append(h["highlight"]["id"])
    q = """query($u: String!, $f: Int!, $a: String) { user(username: $u) {
      highlights(first: $f, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } } }"""
    for token in (ta, tb):  # newest first
        assert await _walk(gql, token, q, {"u": "ada"}, ("user", "highlights"), 2) == made[::-1]
    c.set(T0 + 2 * DAY)  # past the 24 hours: the highlighted stories live on, in their order
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    for token in (ta, tb):
        assert await _walk(gql, token, HL_STORIES, {"id": made[2]}, ("node", "stories"), 1) == stories[2:5]
    # a cursor of one highlight's stories is not another's
    first = (await gql.ok(HL_STORIES, {"id": made[2], "f": 1, "a": None}, tb))["node"]["stories"]["pageInfo"]
    body = await gql(HL_STORIES, {"id": made[1], "f": 1, "a": first["endCursor"]}, tb)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    # a reorder between pages: paging on continues after the story last shown, where it now stands
    reorder = """mutation($i: HighlightStoriesInput!) { reorderHighlight(input: $i) { errors { code } } }"""
    await gql.ok(reorder, {"i": {"highlightId": made[2], "storyIds": [stories[3], stories[2], stories[4]]}}, ta)
    rest = (await gql.ok(HL_STORIES, {"id": made[2], "f": 5, "a": first["endCursor"]}, tb))["node"]["stories"]
    assert [n["id"] for n in rest["nodes"]] == [stories[4]]


async def test_every_highlight_with_its_stories_fits_the_cost_budget(gql):
    """The profile's highlights with their stories' media: refused (MAX_COST_EXCEEDED) as lists
    costed 100 x 100; a first screen of them is cheap now, and costed by what it asks."""
    clock(gql)
    ta, _ = await gql.sign_up("ada")
    q = """{ user(username: "ada") { highlights(first: 10) { nodes { title
      stories(first: 10) { nodes { id media { id } } } } } } }"""
    body = await gql(q, None, ta)
    assert "errors" not in body, body
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 10 * (1 + 1 + 10 * 2)
    default = await gql('{ user(username: "ada") { highlights { nodes { stories { nodes { id } } } } } }',
                             None, ta)
    assert "errors" not in default, default
    assert default["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 20 * (1 + 1 + 20 * 1)


async def test_a_hidden_profile_pages_nothing(gql):
    clock(gql)
    ta, _ = await gql.sign_up("ada", private=True)
    tb, _ = await gql.sign_up("bob")
    s = await post_story(gql, ta, "ada")
    await gql.ok(HL_CREATE, {"i": {"title": "t", "storyIds": [s["id"]]}}, ta)
    page = (await gql.ok(PAGE, {"u": "ada", "f": 5, "a": None}, tb))["user"]
    assert page["stories"]["nodes"] == [] and page["highlights"]["nodes"] == []
    assert not page["highlights"]["pageInfo"]["hasNextPage"]
    body = await gql(PAGE, {"u": "ada", "f": 101, "a": None}, tb)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
