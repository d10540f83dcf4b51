"""Paging the story connections (`User.stories`, `Highlight.stories`, the tray) with `after`
re-applies every privacy rule on every page: a cursor taken while the viewer was allowed pages
into nothing they may no longer see (a block either way, an unfollowed private account, taken
off the close friends, the 24 hours over, a story deleted, the author's account deleted, a
story mute for the tray), whether the parent was reached through the API or the page is asked
for directly; another viewer's cursor of the same list reveals only what that viewer may see;
another list's or an altered cursor is refused. And a page says nothing of what it hides: no
empty page with `hasNextPage` while only hidden stories follow (a stranger paged a private
account's ring one story at a time and counted its live stories; a non-member counted an
account's close-friends stories)."""

from __future__ import annotations

import pytest

from resolvers.context import RequestContext
from resolvers.records import record_of
from resolvers.stories import highlights as hl
from resolvers.stories import tray
from schema.relay import from_global_id, list_cursors
from tests.resolvers.stories.helpers import DAY, T0, clock, follow, post_story
from tests.schema.client import password_of

HL_CREATE = "mutation($i: HighlightCreateInput!) { createHighlight(input: $i) { highlight { id } errors { code } } }"
CF_ADD = "mutation($i: CloseFriendsInput!) { addCloseFriends(input: $i) { errors { code } } }"
CF_REMOVE = "mutation($i: CloseFriendsInput!) { removeCloseFriends(input: $i) { errors { code } } }"
DELETE_STORY = "mutation($i: StoryDeleteInput!) { deleteStory(input: $i) { errors { code } } }"
DELETE_ACCOUNT = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"
PAGE = "nodes { id } pageInfo { hasNextPage endCursor }"
USER_STORIES = f"""query($id: ID!, $f: Int!, $a: String) {{ node(id: $id) {{ ... on User {{
  stories(first: $f, after: $a) {{ {PAGE} }} }} }} }}"""
HL_STORIES = f"""query($id: ID!, $f: Int!, $a: String) {{ node(id: $id) {{ ... on Highlight {{
  stories(first: $f, after: $a) {{ {PAGE} }} }} }} }}"""
BLOCKED_STORIES = f"""query($f: Int!, $a: String) {{ viewer {{ blockedUsers(first: 10) {{ nodes {{
  username stories(first: $f, after: $a) {{ {PAGE} }} }} }} }} }}"""
TRAY_PAGE = """query($f: Int!, $a: String) { viewer { storyTray(first: $f, after: $a) {
  nodes { user { username } } pageInfo { hasNextPage endCursor } } } }"""

AUDIENCES = ["FOLLOWERS", "CLOSE_FRIENDS", "FOLLOWERS", "CLOSE_FRIENDS", "FOLLOWERS"]
PUBLIC = [0, 2, 4]  # the stories for followers: what anyone who sees ada may see


class Ada:
    """ada's five stories (oldest first; 1 and 3 for close friends) in one highlight; vic follows
    her and is on her close friends; sam is a stranger."""

    def __init__(self, gql, private: bool) -> None:
        self.gql, self.private = gql, private

    async def make(self) -> Ada:
        gql = self.gql
        self.clock = clock(gql)
        self.ta, self.ada = await gql.sign_up("ada", private=self.private)
        self.tv, self.vic = await gql.sign_up("vic")
        self.ts, self.sam = await gql.sign_up("sam")
        await follow(gql, self.tv, self.ada)
        if self.private:
            assert (await gql.mutate("approveFollowRequest", self.ta, self.vic))["errors"] == []
        await gql.ok(CF_ADD, {"i": {"userIds": [self.vic]}}, self.ta)
        self.stories = []
        for i, audience in enumerate(AUDIENCES):
            self.clock.set(T0 + i * 1000)
            self.stories.append((await post_story(self.gql, self.ta, "ada", audience=audience))["id"])
        h = (await gql.ok(HL_CREATE, {"i": {"title": "all", "storyIds": self.stories}}, self.ta))["createHighlight"]
        assert h["errors"] == []
        self.highlight = h["highlight"]["id"]
        return self

    def ids(self, places: list[int]) -> list[str]:
        return [self.stories[i] for i in places]

    async def page(self, token: str | None, query: str, id_: str, first: int, after: str | None) -> dict | None:
        node = (await self.gql.ok(query, {"id": id_, "f": first, "a": after}, token))["node"]
        return None if node is None else node["stories"]

    async def walk(self, token: str | None, query: str, id_: str, after: str | None = None) -> list[list[str]]:
        """Every page of one story at a time: each page's ids."""
        pages = []
        while True:
            p = await self.page(token, query, id_, 1, after)
            if p is None:
                return pages
            pages.append([n["id"] for n in p["nodes"]])
            if not p["pageInfo"]["hasNextPage"]:
                return pages
            after = p["pageInfo"]["endCursor"]

    async def domain(self, viewer_gid: str, first: int, user_after: str | None, hl_after: str | None
                     ) -> tuple[list[str], bool, list[str], bool]:
        """The two pages asked of the domain directly, as the viewer, whatever reached the parent:
        (User.stories' ids, hasNext, Highlight.stories' ids, hasNext)."""
        gql = self.gql
        n = gql.tao.n_shards
        ctx = RequestContext(tao=gql.tao, settings=gql.tao.settings, viewer_id=from_global_id(viewer_gid, n)[1])
        ada = from_global_id(self.ada, n)[1]
        hid = from_global_id(self.highlight, n)[1]
        users = await tray.user_stories(ctx, ada, first, list_cursors("User.stories", ada).decode(user_after))
        h = record_of((await gql.tao.obj_get([hid]))[hid])
        hls = await hl.highlight_stories_page(ctx, h, first, list_cursors("Highlight.stories", hid).decode(hl_after))
        gid = {from_global_id(s, n)[1]: s for s in self.stories}
        return ([gid[s.id] for _, s in users.items], users.has_next,
                [gid[s.id] for _, s in hls.items], hls.has_next)


async def _cursors(a: Ada) -> tuple[str, str]:
    """vic's cursors after the first story of ada's ring and of her highlight, taken while allowed."""
    user = await a.page(a.tv, USER_STORIES, a.ada, 1, None)
    hls = await a.page(a.tv, HL_STORIES, a.highlight, 1, None)
    assert user is not None and hls is not None
    assert [n["id"] for n in user["nodes"]] == [n["id"] for n in hls["nodes"]] == a.ids([0])
    assert user["pageInfo"]["hasNextPage"] and hls["pageInfo"]["hasNextPage"]
    return user["pageInfo"]["endCursor"], hls["pageInfo"]["endCursor"]


# What vic may still see after each change, past his cursors: (ring, highlight) story places.
CHANGES = {
    "nothing": ([1, 2, 3, 4], [1, 2, 3, 4]),
    "author_blocks": ([], []),
    "viewer_blocks": ([], []),
    "unfollows_private": ([], []),
    "off_close_friends": ([2, 4], [2, 4]),
    "expired": ([], [1, 2, 3, 4]),  # the ring is live stories; a highlight keeps its stories
    "story_deleted": ([1, 3, 4], [1, 3, 4]),
    "author_deleted": ([], []),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_cursor_taken_while_allowed_pages_into_nothing_no_longer_allowed(gql, change: str) -> None:
    a = await Ada(gql, private=change == "unfollows_private").make()
    user_after, hl_after = await _cursors(a)
    if change == "author_blocks":
        await gql.mutate("block", a.ta, a.vic)
    elif change == "viewer_blocks":
        await gql.mutate("block", a.tv, a.ada)
    elif change == "unfollows_private":
        assert (await gql.mutate("unfollow", a.tv, a.ada))["errors"] == []
    elif change == "off_close_friends":
        await gql.ok(CF_REMOVE, {"i": {"userIds": [a.vic]}}, a.ta)
    elif change == "expired":
        a.clock.set(T0 + 2 * DAY)
    elif change == "story_deleted":
        assert (await gql.ok(DELETE_STORY, {"i": {"storyId": a.stories[2]}}, a.ta))["deleteStory"]["errors"] == []
    elif change == "author_deleted":
        assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": password_of("ada")}}, a.ta))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    ring, kept = (a.ids(places) for places in CHANGES[change])

    # Through the API: the parent is gone for him, or its pages show only what he may see now.
    for query, id_, after, want in ((USER_STORIES, a.ada, user_after, ring), (HL_STORIES, a.highlight, hl_after, kept)):
        p = await a.page(a.tv, query, id_, 10, after)
        assert p is None or ([n["id"] for n in p["nodes"]] == want and not p["pageInfo"]["hasNextPage"]), (query, p)
        pages = await a.walk(a.tv, query, id_, after)  # one at a time: no empty page before the end
        assert [i for page in pages for i in page] == (want if p is not None else []), (query, pages)
        assert all(pages[:-1]), (query, pages)
    if change == "viewer_blocks":  # his own block list still names her: her stories there are none
        [blocked] = (await gql.ok(BLOCKED_STORIES, {"f": 10, "a": user_after}, a.tv))["viewer"]["blockedUsers"]["nodes"]
        assert blocked["username"] == "ada"
        assert blocked["stories"]["nodes"] == [] and not blocked["stories"]["pageInfo"]["hasNextPage"]

    # Asked of the domain directly (as if some path reached the parent without its checks).
    assert await a.domain(a.vic, 10, user_after, hl_after) == (ring, False, kept, False)


@pytest.mark.parametrize("private", [False, True])
async def test_another_viewer_s_cursor_shows_only_what_that_viewer_may_see(gql, private: bool) -> None:
    """A cursor names a place in its list, not who took it: sam, given vic's cursors, pages on
    from that place through his own rights (a stranger: the followers' stories of a public
    account, nothing of a private one), and learns nothing of the rest: not from the page, not
    from `hasNextPage`."""
    a = await Ada(gql, private=private).make()
    user_after, hl_after = await _cursors(a)
    ring = [] if private else a.ids([2, 4])
    p = await a.page(a.ts, USER_STORIES, a.ada, 10, user_after)
    assert p is not None and [n["id"] for n in p["nodes"]] == ring and not p["pageInfo"]["hasNextPage"], p
    hls = await a.page(a.ts, HL_STORIES, a.highlight, 10, hl_after)
    assert hls is None if private else [n["id"] for n in hls["nodes"]] == ring, hls
    for query, id_, after in ((USER_STORIES, a.ada, user_after), (HL_STORIES, a.highlight, hl_after)):
        pages = await a.walk(a.ts, query, id_, after)
        assert [i for page in pages for i in page] == ([] if private and query == HL_STORIES else ring), pages
        assert all(pages[:-1]), (query, pages)  # no empty page, no hasNextPage over hidden stories
    assert await a.domain(a.sam, 10, user_after, hl_after) == (ring, False, ring, False)


@pytest.mark.parametrize("private", [False, True])
async def test_a_page_does_not_count_the_stories_it_hides(gql, private: bool) -> None:
    """From the top, one story a page: a stranger's pages are exactly the stories he may see,
    the last one's `hasNextPage` false. Before: a private account's ring answered empty pages
    with `hasNextPage` true, one per live story (its count, to anyone), and a public account's
    ring and highlight an empty page for each close-friends story (that it posts some)."""
    a = await Ada(gql, private=private).make()
    shown = [] if private else a.ids(PUBLIC)
    pages = await a.walk(a.ts, USER_STORIES, a.ada)
    assert pages == ([[]] if private else [[s] for s in shown]), pages
    pages = await a.walk(a.ts, HL_STORIES, a.highlight)
    assert pages == ([] if private else [[s] for s in shown]), pages  # private: the highlight is not his
    # vic (a follower on the list) pages all five; anonymous sees what sam sees of a public account
    assert await a.walk(a.tv, USER_STORIES, a.ada) == [[s] for s in a.stories]
    assert await a.walk(a.tv, HL_STORIES, a.highlight) == [[s] for s in a.stories]
    assert await a.walk(None, USER_STORIES, a.ada) == ([[]] if private else [[s] for s in shown])


async def test_another_list_s_or_an_altered_cursor_is_refused(gql) -> None:
    a = await Ada(gql, private=False).make()
    user_after, hl_after = await _cursors(a)
    tb, bob = await gql.sign_up("bob")
    await post_story(gql, tb, "bob")
    for query, id_, after in ((USER_STORIES, bob, user_after), (USER_STORIES, a.ada, hl_after),
                              (HL_STORIES, a.highlight, user_after)):
        body = await gql(query, {"id": id_, "f": 10, "a": after}, a.tv)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "another list" in body["errors"][0]["message"], body
    altered = user_after[:-6] + ("A" if user_after[-6] != "A" else "B") + user_after[-5:]
    body = await gql(USER_STORIES, {"id": a.ada, "f": 10, "a": altered}, a.tv)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert body["errors"][0]["message"].startswith("CURSOR_EXPIRED"), body
    # vic's tray cursor is his own list's: sam's tray refuses it
    tray_after = (await gql.ok(TRAY_PAGE, {"f": 1, "a": None}, a.tv))["viewer"]["storyTray"]["pageInfo"]["endCursor"]
    body = await gql(TRAY_PAGE, {"f": 1, "a": tray_after}, a.ts)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


@pytest.mark.parametrize("change", ["mute", "block", "unfollow", "deleted"])
async def test_a_tray_cursor_pages_past_rings_no_longer_shown(gql, change: str) -> None:
    """vic's tray, one ring a page: after a mute of the next ring's author (or a block, an
    unfollow, her account deleted), paging on from the cursor he holds skips her ring."""
    c = clock(gql)
    tv, vic = await gql.sign_up("vic")
    tokens = {}
    for i, name in enumerate(("a", "b", "c")):
        tokens[name], g = await gql.sign_up(name)
        await follow(gql, tv, g)
        c.set(T0 + (3 - i) * 1000)  # a is the newest ring
        await post_story(gql, tokens[name], name)
    first = (await gql.ok(TRAY_PAGE, {"f": 1, "a": None}, tv))["viewer"]["storyTray"]
    assert [n["user"]["username"] for n in first["nodes"]] == ["a"]
    b = (await gql.ok('{ user(username: "b") { id } }', None, tv))["user"]["id"]
    if change == "mute":
        await gql.mutate("muteStories", tv, b, "errors { code }")
    elif change == "block":
        await gql.mutate("block", tokens["b"], vic)
    elif change == "unfollow":
        await gql.mutate("unfollow", tv, b)
    else:
        assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": password_of("b")}}, tokens["b"]))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    rest = (await gql.ok(TRAY_PAGE, {"f": 10, "a": first["pageInfo"]["endCursor"]}, tv))["viewer"]["storyTray"]
    assert [n["user"]["username"] for n in rest["nodes"]] == ["c"] and not rest["pageInfo"]["hasNextPage"], rest


USER_HIGHLIGHTS = f"""query($id: ID!, $f: Int!, $a: String) {{ node(id: $id) {{ ... on User {{
  highlights(first: $f, after: $a) {{ {PAGE} }} }} }} }}"""


async def _highlight_pages(a: Ada, token: str, first: int, after: str | None = None) -> list[list[str]]:
    pages = []
    while True:
        node = (await a.gql.ok(USER_HIGHLIGHTS, {"id": a.ada, "f": first, "a": after}, token))["node"]
        p = node["highlights"]
        pages.append([n["id"] for n in p["nodes"]])
        if not p["pageInfo"]["hasNextPage"]:
            return pages
        after = p["pageInfo"]["endCursor"]


async def test_a_close_friends_highlight_is_neither_paged_nor_counted_for_a_non_member(gql) -> None:
    """ada's highlights, newest first: two of close-friends stories only among four more. vic (on
    her list) pages all seven; sam pages the others with no empty page, the last page's
    `hasNextPage` false, at any page size. Before: an empty page with `hasNextPage` for each
    close-friends highlight (that she keeps some). vic's cursor held from before he is taken off
    the list pages on the same way."""
    a = await Ada(gql, private=False).make()  # its highlight "all" is the oldest
    made = [a.highlight]
    for i, places in enumerate(([0], [1], [2], [3], [1, 3], [4])):  # [1], [3], [1, 3]: close friends only
        a.clock.set(T0 + 10_000 + i * 1000)
        h = (await gql.ok(HL_CREATE, {"i": {"title": f"h{i}", "storyIds": a.ids(places)}}, a.ta))["createHighlight"]
        assert h["errors"] == []
        made.append(h["highlight"]["id"])
    newest_first = made[::-1]
    hidden = {made[2], made[4], made[5]}
    public = [h for h in newest_first if h not in hidden]
    for first in (1, 2, 3, 10):
        pages = await _highlight_pages(a, a.ts, first)
        assert [h for p in pages for h in p] == public, (first, pages)
        assert all(len(p) == first for p in pages[:-1]) and pages[-1], (first, pages)
        assert [h for p in await _highlight_pages(a, a.tv, first) for h in p] == newest_first
    held = (await gql.ok(USER_HIGHLIGHTS, {"id": a.ada, "f": 1, "a": None}, a.tv))["node"]["highlights"]
    assert [n["id"] for n in held["nodes"]] == newest_first[:1]
    await gql.ok(CF_REMOVE, {"i": {"userIds": [a.vic]}}, a.ta)
    pages = await _highlight_pages(a, a.tv, 1, held["pageInfo"]["endCursor"])
    assert pages == [[h] for h in public[1:]], pages
