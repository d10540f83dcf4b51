"""Removal: every cause hides the post from the next read at once, and the stored FEED lists
are cleaned by jobs (the cause's own job, or read repair)."""

from __future__ import annotations

from resolvers.feed import removal
from resolvers.records import record_of


async def _pushed(world, n_fans: int = 2):
    author = await world.user()
    fans = await world.users(n_fans)
    for f in fans:
        await world.follow(f, author)
    pid = await world.post(author)
    for f in fans:
        assert await world.feed_ids(f) == [pid]
    return author, fans, pid


async def test_deleted_post(world):
    author, fans, pid = await _pushed(world)
    obj = (await world.tao.obj_get([pid]))[pid]
    await world.tao.obj_delete(pid, jobs=removal.on_post_removed(record_of(obj)))
    for f in fans:
        assert await world.feed_ids(f) == []
    await world.drain()
    for f in fans:
        assert await world.stored_feed(f) == []


async def test_retract_job_pages_over_many_followers(world, monkeypatch):
    monkeypatch.setattr(removal, "SCAN_PAGE", 2)
    author, fans, pid = await _pushed(world, n_fans=5)
    obj = (await world.tao.obj_get([pid]))[pid]
    await world.tao.obj_update(pid, {"status": "hidden"}, jobs=removal.on_post_removed(record_of(obj)))
    await world.drain()
    for f in fans:
        assert await world.stored_feed(f) == []


async def test_unfollow(world):
    author, (fan, other), pid = await _pushed(world)
    await world.tao.assoc_delete(fan, "FOLLOWS", author, jobs=removal.on_relationship_removed(fan, author))
    assert await world.feed_ids(fan) == []
    await world.drain()
    assert await world.stored_feed(fan) == []
    assert await world.stored_feed(other) == [pid]


async def test_unfollow_without_a_hook_is_repaired_by_the_read(world):
    author, (fan, _), pid = await _pushed(world)
    await world.tao.assoc_delete(fan, "FOLLOWS", author)
    assert await world.stored_feed(fan) == [pid]
    assert await world.feed_ids(fan) == []
    await world.drain()
    assert await world.stored_feed(fan) == []


async def test_block_either_way(world):
    author, (a, b), pid = await _pushed(world)
    await world.tao.assoc_add(a, "BLOCKS", author)       # the viewer blocks the author
    await world.tao.assoc_add(author, "BLOCKS", b)       # the author blocks the viewer
    assert await world.feed_ids(a) == []
    assert await world.feed_ids(b) == []
    await world.drain()
    assert await world.stored_feed(a) == [] and await world.stored_feed(b) == []


async def test_mute(world):
    author, (fan, other), pid = await _pushed(world)
    await world.tao.assoc_add(fan, "MUTES", author, jobs=removal.on_relationship_removed(fan, author))
    assert await world.feed_ids(fan) == []
    assert await world.feed_ids(other) == [pid]
    await world.drain()
    assert await world.stored_feed(fan) == []


async def test_account_going_private_hides_it_from_non_approved_viewers(world):
    author, (fan, approved), pid = await _pushed(world)
    # The fan's follow ends while the post stays in their stored feed; then the account goes private.
    await world.tao.assoc_delete(fan, "FOLLOWS", author)
    await world.tao.obj_update(author, {"is_private": True})
    assert await world.feed_ids(fan) == []
    assert await world.feed_ids(approved) == [pid]   # an approved follower still sees it


async def test_removal_mid_scroll_is_immediate_and_skips_nothing_else(world):
    author, (fan,), first = await _pushed(world, n_fans=1)
    posts = [first] + [await world.post(author) for _ in range(5)]
    page1 = await world.feed(fan, first=3)
    shown1 = [i.post.id for i in page1.items]
    victim = [p for p in page1.session.ids if p not in shown1][0]
    assert victim in posts
    await world.tao.obj_delete(victim)
    page2 = await world.feed(fan, first=10, after=page1.end_cursor)
    assert [i.post.id for i in page2.items] == [p for p in page1.session.ids[3:] if p != victim]


async def test_the_follow_graph_mutations_commit_the_removal_jobs(world):
    """unfollow, block and mute, through the domain's own write functions: the stored FEED lists
    are cleaned by the jobs they commit, with no feed read (which would also repair them)."""
    from resolvers import follows

    author, (unfollower, blocker, muter, bystander), pid = await _pushed(world, n_fans=4)
    await follows.do_unfollow_user(world.tao, unfollower, author)
    await follows.do_block_user(world.tao, blocker, author)
    await follows.do_mute_user(world.tao, muter, author)
    await world.drain()
    for viewer in (unfollower, blocker, muter):
        assert await world.stored_feed(viewer) == []
    assert await world.stored_feed(bystander) == [pid]


async def test_the_page_check_trusts_only_whole_shut_out_lists(world):
    """The first page primes the edge loader from the viewer's MUTES / BLOCKS / BLOCKED_BY
    lists; a list as long as the read's limit may be cut short, so it must prime nothing."""
    from resolvers.feed.big_accounts import MAX_BIG_ACCOUNTS
    from resolvers.feed.candidates import ShutOut
    from tao import Assoc

    viewer, author = await world.users(2)
    await world.tao.assoc_add(viewer, "BLOCKS", author)
    cut_short = [Assoc(viewer, "BLOCKS", 10**9 + i, 1, 1, {}) for i in range(MAX_BIG_ACCOUNTS)]
    loaders = world.ctx(viewer).loaders
    ShutOut({"BLOCKS": cut_short, "MUTES": []}).prime(loaders, viewer, [author])
    assert await loaders.assoc_by_key.load((viewer, "BLOCKS", author)) is not None  # read from the store
    assert await loaders.assoc_by_key.load((viewer, "MUTES", author)) is None
    # A whole list is believed: here it (wrongly) omits the real block, and the loader says so.
    loaders = world.ctx(viewer).loaders
    ShutOut({"BLOCKS": []}).prime(loaders, viewer, [author])
    assert await loaders.assoc_by_key.load((viewer, "BLOCKS", author)) is None
