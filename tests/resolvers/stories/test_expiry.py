"""Exactly 24 hours, on the store's clock, on every surface; then the archive and the purge."""

from __future__ import annotations

from tests.resolvers.stories.helpers import (
    DAY,
    NODE,
    SEEN,
    STORIES,
    T0,
    clock,
    follow,
    post_story,
    ring_names,
    tray,
    uid,
    unwrap,
)

ARCHIVE = "{ viewer { storyArchive { nodes { id isLive } } } }"


async def _surfaces(gql, token, story, media_id):
    """What the viewer sees of the story on each surface: (tray, profile ring, node, media node)."""
    rings = await tray(gql, token)
    ring = [s["id"] for r in rings if r["user"]["username"] == "ada" for s in r["stories"]]
    profile = [s["id"] for s in unwrap(await gql.ok(STORIES, {"u": "ada"}, token))["user"]["stories"]]
    node = (await gql.ok(NODE, {"id": story}, token))["node"]
    media = (await gql.ok(NODE, {"id": media_id}, token))["node"]
    return ring == [story], profile == [story], node is not None, media is not None


async def test_visible_until_the_last_millisecond_then_gone_everywhere(gql):
    c = clock(gql)
    ta, a = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    await follow(gql, tb, a)
    story = await post_story(gql, ta, "ada")
    assert story["postedAt"].startswith("2027-01-15T08:00:00")  # T0 on the store's clock, not the wall clock
    sid, mid = story["id"], story["media"]["id"]
    c.set(T0 + DAY - 1)  # +23:59:59.999
    assert await _surfaces(gql, tb, sid, mid) == (True, True, True, True)
    assert (await gql.ok(NODE, {"id": sid}, tb))["node"]["isLive"] is True
    c.set(T0 + DAY)  # +24:00:00.000
    assert await _surfaces(gql, tb, sid, mid) == (False, False, False, False)
    assert ring_names(await tray(gql, tb)) == []
    # marking it seen now is refused and writes nothing
    p = (await gql.ok(SEEN, {"ids": [sid]}, tb))["markStorySeen"]
    assert p["errors"] == [{"code": "NOT_FOUND", "field": "storyIds"}]
    assert await gql.tao.assoc_count(await uid(gql, "bob"), "STORY_SEEN") == 0
    # the author still has it (in the archive once the expiry job ran), not live
    assert (await gql.ok(NODE, {"id": sid}, ta))["node"] == {"id": sid, "isLive": False}


async def test_expiry_job_moves_to_archive_and_purge_deletes_after_30_days(gql):
    c = clock(gql)
    ta, a = await gql.sign_up("ada")
    story = await post_story(gql, ta, "ada")
    ada = await uid(gql, "ada")
    await gql.tao.run_jobs_until_idle(include_delayed=False)  # nothing is due yet
    assert await gql.tao.assoc_count(ada, "STORY_LIVE") == 1
    c.set(T0 + DAY - 1)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await gql.tao.assoc_count(ada, "STORY_LIVE") == 1  # the job comes due on the store's clock only
    c.set(T0 + DAY)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await gql.tao.assoc_count(ada, "STORY_LIVE") == 0
    assert await gql.tao.assoc_count(ada, "STORY_ARCHIVE") == 1
    assert (await gql.ok(ARCHIVE, token=ta))["viewer"]["storyArchive"]["nodes"] == [
        {"id": story["id"], "isLive": False}]
    # kept 30 days (the default), then deleted with its media
    c.set(T0 + DAY + 30 * DAY - 1)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await gql.tao.assoc_count(ada, "STORY_ARCHIVE") == 1
    c.set(T0 + DAY + 30 * DAY)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await gql.tao.assoc_count(ada, "STORY_ARCHIVE") == 0
    assert (await gql.ok(ARCHIVE, token=ta))["viewer"]["storyArchive"]["nodes"] == []
    assert (await gql.ok(NODE, {"id": story["id"]}, ta))["node"] is None
    assert (await gql.ok(NODE, {"id": story["media"]["id"]}, ta))["node"] is None
    assert await gql.tao.assoc_count(ada, "UPLOADED") == 0


async def test_a_highlighted_story_lives_on_and_is_not_purged(gql):
    c = clock(gql)
    ta, a = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    await follow(gql, tb, a)
    story = await post_story(gql, ta, "ada")
    p = await gql.ok("""mutation($i: HighlightCreateInput!) { createHighlight(input: $i) {
        highlight { id title cover { id } stories { nodes { id } } } errors { code } } }""",
                     {"i": {"title": "Trips", "storyIds": [story["id"]]}}, ta)
    h = unwrap(p["createHighlight"]["highlight"])
    assert h["stories"] == [{"id": story["id"]}] and h["cover"] == {"id": story["id"]}
    c.set(T0 + 40 * DAY)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    seen = unwrap(await gql.ok(STORIES, {"u": "ada"}, tb))["user"]
    assert seen["stories"] == []  # not live
    assert seen["highlights"] == [{"title": "Trips", "stories": [{"id": story["id"]}]}]
    assert (await gql.ok(NODE, {"id": story["media"]["id"]}, tb))["node"] is not None
    # out of its last highlight, an archived story past its time goes
    await gql.ok("mutation($i: HighlightDeleteInput!) { deleteHighlight(input: $i) { errors { code } } }",
                 {"i": {"highlightId": h["id"]}}, ta)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert (await gql.ok(NODE, {"id": story["id"]}, ta))["node"] is None


async def test_draining_delayed_jobs_early_leaves_the_expiry_for_its_time(gql):
    """`run_jobs_until_idle(include_delayed=True)` runs every delayed job at once: the expiry
    says it is not due (on the store's clock) and is put back, not lost, and the drain ends."""
    c = clock(gql)
    ta, _ = await gql.sign_up("ada")
    await post_story(gql, ta, "ada")
    ada = await uid(gql, "ada")
    await gql.tao.run_jobs_until_idle(include_delayed=True)
    assert await gql.tao.assoc_count(ada, "STORY_LIVE") == 1
    c.set(T0 + DAY)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert (await gql.tao.assoc_count(ada, "STORY_LIVE"), await gql.tao.assoc_count(ada, "STORY_ARCHIVE")) == (0, 1)


async def test_a_storys_purge_keeps_the_photo_that_is_the_profile_picture(gql):
    """A story's photo can be made the profile picture (any completed image of yours may). The
    story's purge, 30 days after it expired, deleted its media with its files: the profile
    picture went with it, for everyone (found by probe4). The picture now stays; a story whose
    photo is no one's picture is purged with it as before."""
    c = clock(gql)
    ta, _ = await gql.sign_up("ada")
    story = await post_story(gql, ta, "ada")
    media = story["media"]["id"]
    p = await gql.ok("mutation($i: ProfileUpdateInput!) { updateProfile(input: $i) { errors { code } } }",
                     {"i": {"profilePictureId": media}}, ta)
    assert p["updateProfile"]["errors"] == []
    for at in (T0 + DAY, T0 + DAY + 30 * DAY):  # archived, then purged
        c.set(at)
        await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert (await gql.ok(NODE, {"id": story["id"]}, ta))["node"] is None  # the story went
    picture = '{ user(username: "ada") { profilePicture { id } } }'
    assert (await gql.ok(picture, token=ta))["user"]["profilePicture"] == {"id": media}
    assert (await gql.ok(NODE, {"id": media}, ta))["node"] == {"id": media}
