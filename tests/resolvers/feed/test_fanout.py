"""Fan-out on write: who gets a post in their stored FEED list, and who sees it when reading."""

from __future__ import annotations

from resolvers.feed.activity import DAY_MS
from resolvers.records import record_of
from tao.models import now_ms


async def test_post_reaches_every_follower_across_chained_pages(world):
    author = await world.user()
    followers = await world.users(5)  # pages of 3: two chained jobs
    outsider = await world.user()
    for f in followers:
        await world.follow(f, author)
    pid = await world.post(author)
    for f in followers:
        assert await world.stored_feed(f) == [pid]
        assert await world.feed_ids(f) == [pid]
    assert await world.stored_feed(outsider) == []
    assert await world.feed_ids(outsider) == []
    assert await world.stored_feed(author) == []      # never pushed to the author...
    assert await world.feed_ids(author) == [pid]      # ...who sees it through the pull of their own posts


async def test_ineligible_viewers_never_see_the_post(world):
    private = await world.user(private=True)
    approved, requester = await world.users(2)
    await world.follow(approved, private)
    await world.tao.assoc_add(requester, "FOLLOW_REQUESTED", private)
    public = await world.user()
    muter, blocked = await world.users(2)
    for f in (muter, blocked):
        await world.follow(f, public)
    await world.tao.assoc_add(muter, "MUTES", public)
    p1 = await world.post(private)
    p2 = await world.post(public)
    await world.tao.assoc_add(public, "BLOCKS", blocked)  # after the fan-out: the read must still hide it
    await world.tao.assoc_delete(blocked, "FOLLOWS", public)
    assert await world.feed_ids(approved) == [p1]
    assert await world.feed_ids(requester) == [] and await world.stored_feed(requester) == []
    assert await world.feed_ids(muter) == []
    assert await world.feed_ids(blocked) == []
    assert p2 in await world.stored_feed(muter)  # pushed, hidden at read...
    await world.drain()
    assert await world.stored_feed(muter) == []   # ...and repaired by the job the read enqueued
    assert await world.stored_feed(blocked) == []


async def test_a_post_not_yet_visible_is_not_fanned_out(world):
    author, fan = await world.users(2)
    await world.follow(fan, author)
    pid = await world.post(author, run=False)
    await world.tao.obj_update(pid, {"status": "processing"})
    await world.drain()
    assert await world.stored_feed(fan) == []


async def test_inactive_follower_is_skipped_then_rebuilt_on_return(world):
    author = await world.user()
    active = await world.user()
    sleeper = await world.user(last_active=now_ms() - 40 * DAY_MS)
    for f in (active, sleeper):
        await world.follow(f, author)
    pid = await world.post(author)
    assert await world.stored_feed(active) == [pid]
    assert await world.stored_feed(sleeper) == []
    # The first read after the return answers from the pull path while the rebuild job is queued.
    assert await world.feed_ids(sleeper) == [pid]
    user = (await world.tao.obj_get([sleeper]))[sleeper]
    assert user.data["feed_rebuild"] and user.data["last_active"] > now_ms() - 60_000
    await world.drain()
    assert await world.stored_feed(sleeper) == [pid]
    assert "feed_rebuild" not in (await world.tao.obj_get([sleeper]))[sleeper].data
    assert await world.feed_ids(sleeper) == [pid]


async def test_a_returning_viewers_feed_list_is_trimmed_to_its_newest_recent_edges(world):
    """The hourly `last_active` write commits a trim: FEED keeps its newest `keep_edges` (at
    least `page_candidates`) edges younger than `window_days`; nothing else is touched."""
    world.settings.feed.keep_edges, world.settings.feed.page_candidates = 4, 3
    author = await world.user()
    viewer = await world.user(last_active=now_ms() - 2 * DAY_MS)  # last touched long ago
    bystander = await world.user()
    await world.follow(viewer, author)  # else the read's page check would repair the edges away
    posts = [await world.post(author) for _ in range(7)]  # fanned out to the viewer now
    now = now_ms()
    ages_days = [40, 20, 13, 3, 2, 1, 0]  # two are older than the 14-day window
    # FEED writes are upserts: these move the fanned-out edges back in time.
    await world.tao.assoc_add_many([(viewer, "FEED", p, now - int(d * DAY_MS), {"a": author})
                                    for p, d in zip(posts, ages_days)]
                                   + [(bystander, "FEED", posts[0], now - 40 * DAY_MS, {"a": author})])
    await world.feed(viewer)  # touches last_active, committing the trim job
    await world.drain()
    assert await world.stored_feed(viewer) == posts[3:][::-1]  # the newest 4, all within 14 days
    assert await world.stored_feed(bystander) == [posts[0]]


async def test_fanout_job_is_idempotent(world):
    author, fan = await world.users(2)
    await world.follow(fan, author)
    pid = await world.post(author)
    obj = (await world.tao.obj_get([pid]))[pid]
    from resolvers.feed import fanout
    await fanout.fanout_job(world.job, fanout.on_publish(record_of(obj))[0][1])
    edges = await world.tao.assoc_range(fan, "FEED", 0, 10)  # one edge (the key is unique), unchanged
    assert [(e.id2, e.time, e.data) for e in edges] == [
        (pid, fanout.post_time(record_of(obj)), {"a": author, "k": obj.data["kind"]})
    ]


async def test_fanout_on_mysql_and_memcached(mysql_world):
    w = mysql_world
    author = await w.user()
    followers = await w.users(5)
    for f in followers:
        await w.follow(f, author)
    pid = await w.post(author)
    for f in followers:
        assert await w.stored_feed(f) == [pid]
        assert await w.feed_ids(f) == [pid]
