"""Stories' data in account export and deletion: every kind exported, then purged with no residue."""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import urlsplit

from resolvers.account_data.residue import find_residue
from server import MEDIA_KEY
from tests.resolvers.stories.helpers import SEEN, follow, post_story, uid

DELETE = """mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"""
EXPORT = """mutation { requestDataExport(input: {format: JSON, password: "password-ada"}) {
  export { id } errors { code } } }"""
STATUS = "query { dataExport { status url } }"
VIEWERS = "query($id: ID!) { node(id: $id) { ... on Story { viewerCount viewers { nodes { username } } } } }"


async def test_stories_are_exported_then_purged_without_residue(gql):
    gql.tao.settings.account_data.deletion_grace_seconds = 0
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    _, c = await gql.sign_up("cy")
    await follow(gql, tb, a)
    await gql.ok("mutation($i: CloseFriendsInput!) { addCloseFriends(input: $i) { errors { code } } }",
                 {"i": {"userIds": [b]}}, ta)
    s1 = await post_story(gql, ta, "ada", hashtag="sun", mentions=["bob"])
    s2 = await post_story(gql, ta, "ada", audience="CLOSE_FRIENDS")
    h = await gql.ok("""mutation($i: HighlightCreateInput!) { createHighlight(input: $i) { highlight { id } } }""",
                     {"i": {"title": "keep", "storyIds": [s1["id"], s2["id"]]}}, ta)
    await gql.mutate("muteStories", ta, c, "errors { code }")
    await gql.mutate("restrict", ta, c, "errors { code }")
    bobs = await post_story(gql, tb, "bob")
    await gql.ok(SEEN, {"ids": [bobs["id"]]}, ta)  # ada's view of bob's story
    await gql.ok(SEEN, {"ids": [s1["id"]]}, tb)
    await gql.tao.run_jobs_until_idle(include_delayed=False)

    assert (await gql.ok(EXPORT, token=ta))["requestDataExport"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    st = (await gql.ok(STATUS, token=ta))["dataExport"]
    assert st["status"] == "READY", st
    url = urlsplit(st["url"])  # signed for the public address; served by this test server
    r = await gql.client.get(url.path + ("?" + url.query if url.query else ""))
    assert r.status == 200
    z = zipfile.ZipFile(io.BytesIO(await r.read()))
    load = lambda n: json.loads(z.read(n))  # noqa: E731
    stories = load("stories.json")
    assert sorted(s["audience"] for s in stories) == ["CLOSE_FRIENDS", "FOLLOWERS"]
    assert [s for s in stories if s["hashtag"] == "sun"][0]["mentions"] == [str(await uid(gql, "bob"))]
    assert [x["title"] for x in load("highlights.json")] == ["keep"]
    assert len(load("story_views.json")) == 1
    assert sorted(x["type"] for x in load("story_lists.json")) == ["RESTRICTS", "STORY_MUTES"]
    assert [x["type"] for x in load("close_friends.json")] == ["CLOSE_FRIEND"]

    ada = await uid(gql, "ada")
    created = [e.id2 for e in await gql.tao.assoc_range(ada, "STORY_LIVE", 0, 10)]
    created += [e.id2 for e in await gql.tao.assoc_range(ada, "HAS_HIGHLIGHT", 0, 10)]
    assert h["createHighlight"]["highlight"]["id"] and len(created) == 3
    ok = (await gql.ok(DELETE, {"i": {"password": "password-ada"}}, ta))["deleteAccount"]
    assert ok == {"ok": True, "errors": []}
    # delayed jobs too (the purge's barrier re-checks after a delay); bob's story's expiry is not
    # due and is put back, and the purge does not wait for it
    await gql.tao.run_jobs_until_idle(include_delayed=True)
    report = await find_residue(gql.tao, gql.tao.settings, gql.client.app[MEDIA_KEY], ada, created)
    assert report.counts == (0, 0, 0), "\n".join(map(str, report.rows + report.cache_keys + report.stored_objects))
    # bob's story no longer lists or counts her as a viewer
    assert (await gql.ok(VIEWERS, {"id": bobs["id"]}, tb))["node"] == {"viewerCount": 0, "viewers": {"nodes": []}}


async def test_the_export_names_no_mentioned_account_or_mention_the_user_may_not_see(gql):
    """The export holds nothing the app would not show its user (docs/accounts.md, "Export").
    Their stories' `mentions` listed the ids of accounts they may no longer see (one who blocked
    them, one they blocked, one pending deletion), and `mentions` (of them) listed the posts of
    such accounts; now both go through the same privacy as every surface, as the user."""
    from resolvers.account_data.registry import DataContext, kinds

    ta, a = await gql.sign_up("ada")
    names = ("bob", "cy", "dee", "eve")
    tokens = {n: (await gql.sign_up(n))[0] for n in names}
    await post_story(gql, ta, "ada", mentions=[f"@{n}" for n in names])
    mk = "mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }"
    posts = {}
    for n in names:
        made = (await gql.ok(mk, {"i": {"caption": f"hi @ada from {n}"}}, tokens[n]))["createPost"]
        assert made["errors"] == [], made
        posts[n] = made["post"]["id"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    ids = {n: await uid(gql, n) for n in ("ada", *names)}
    ctx = DataContext(gql.tao, gql.tao.settings)

    async def exported() -> tuple[list[str], list[int]]:
        by_name = {k.name: k for k in kinds()}
        stories = [r async for r in by_name["stories"].export(ctx, ids["ada"])]
        mentions = [r async for r in by_name["mentions"].export(ctx, ids["ada"])]
        return stories[0]["mentions"], sorted(int(r["id"]) for r in mentions)

    def post_ids(*who: str) -> list[int]:
        return sorted(int(store_id(posts[n])) for n in who)

    # the control: every one of them visible to her, every one exported
    assert await exported() == ([str(ids[n]) for n in names], post_ids(*names))
    await gql.mutate("block", tokens["cy"], await _gid(gql, "ada"))            # cy blocks her
    await gql.mutate("block", ta, await _gid(gql, "dee"))                      # she blocks dee
    assert (await gql.ok(DELETE, {"i": {"password": "password-eve"}}, tokens["eve"]))["deleteAccount"]["ok"]
    assert await exported() == ([str(ids["bob"])], post_ids("bob"))


async def _gid(gql, name: str) -> str:
    from schema.relay import to_global_id
    return to_global_id("User", await uid(gql, name))


def store_id(gid: str) -> int:
    from base64 import urlsafe_b64decode
    return int(urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode().split(":")[1])


async def test_the_exported_notifications_are_those_the_app_shows(gql):
    """The export listed every notification with its target, which for a FOLLOW group is an
    account (its first follower): a notification whose every actor has since blocked the user
    (a like) was exported though the app hides it, and a follower who blocked them was named by
    id. The export now holds the notifications the app shows, and a hidden account target is
    null (the app shows the visible actors instead)."""
    from resolvers.account_data.registry import DataContext, kinds

    ta, a = await gql.sign_up("ada")
    tokens = {n: (await gql.sign_up(n))[0] for n in ("bob", "cy", "dee", "eve")}
    for n in ("bob", "cy"):
        assert (await gql.mutate("follow", tokens[n], a))["errors"] == []
    mk = "mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }"
    post = (await gql.ok(mk, {"i": {"caption": "hello"}}, ta))["createPost"]["post"]["id"]
    like = "mutation($p: ID!) { likePost(input: {postId: $p}) { errors { code } } }"
    for n in ("dee", "eve"):
        assert (await gql.ok(like, {"p": post}, tokens[n]))["likePost"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    ids = {n: await uid(gql, n) for n in ("ada", *tokens)}
    kind = next(k for k in kinds() if k.name == "notifications")
    ctx = DataContext(gql.tao, gql.tao.settings)

    async def exported() -> list[tuple[str, str | None]]:
        return sorted((r["type"], r["target"]) for r in [r async for r in kind.export(ctx, ids["ada"])])

    (follow, target), liked = await exported()  # the control: both shown, the group's target a follower
    assert liked == ("LIKE", str(store_id(post))) and follow == "FOLLOW"
    named = next(n for n in ("bob", "cy") if str(ids[n]) == target)
    await gql.mutate("block", tokens[named], a)  # the follower the group names blocks her
    await gql.mutate("block", tokens["dee"], a)  # the likers: one blocks her, one asks for deletion
    assert (await gql.ok(DELETE, {"i": {"password": "password-eve"}}, tokens["eve"]))["deleteAccount"]["ok"]
    assert await exported() == [("FOLLOW", None)]  # the other follower's follow is still shown
