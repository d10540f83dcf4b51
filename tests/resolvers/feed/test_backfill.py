"""Backfill: a follow, an approved request or an unmute brings the author's recent posts into
the viewer's feed, through a job committed with that write (bounded, idempotent, visible posts
only), and the removal paths still take them out."""

from __future__ import annotations

from resolvers import follows
from resolvers.feed import backfill, removal
from resolvers.feed.activity import DAY_MS
from tao.models import now_ms
from tao.testing import TaoTestHooks as hooks


async def _author_with_posts(world, n: int = 3, **user) -> tuple[int, list[int]]:
    author = await world.user(**user)
    posts = [await world.post(author) for _ in range(n)]
    return author, posts


async def _jobs(world, handler: str) -> list[dict]:
    """The pending outbox rows of one handler, on every shard (payloads)."""
    import orjson
    out = []
    for shard in range(world.tao.n_shards):
        async with hooks(world.tao).read(shard) as conn:
            rows = await conn.fetchall("SELECT payload FROM {outbox} WHERE handler = %s", (handler,))
        out += [orjson.loads(r[0]) for r in rows]
    return out


async def test_a_new_follower_sees_the_accounts_existing_posts(world):
    author, posts = await _author_with_posts(world)
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    assert await _jobs(world, backfill.BACKFILL_JOB) == [{"viewer": fan, "author": author}]  # with the follow
    await world.drain()
    assert await world.feed_ids(fan) == posts[::-1]
    assert sorted(await world.stored_feed(fan)) == sorted(posts)


async def test_approving_a_request_brings_the_posts(world):
    author, posts = await _author_with_posts(world, private=True)
    fan = await world.user()
    assert (await follows.do_follow_user(world.tao, fan, author)) == follows.FollowStatus.REQUESTED
    await world.drain()
    assert await world.feed_ids(fan) == [] and await world.stored_feed(fan) == []
    await follows.do_approve_follow_request(world.tao, author, fan)
    await world.drain()
    assert await world.feed_ids(fan) == posts[::-1]


async def test_an_account_going_public_backfills_the_requests_it_approves(world):
    author, posts = await _author_with_posts(world, private=True)
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    await world.tao.obj_update(author, {"is_private": False},
                               jobs=[("follows.approve_pending_requests", {"user_id": author})])
    await world.drain()
    assert await world.feed_ids(fan) == posts[::-1]


async def test_unmuting_brings_the_posts_back(world):
    author, posts = await _author_with_posts(world)
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    await world.drain()
    await follows.do_mute_user(world.tao, fan, author)
    await world.drain()
    assert await world.feed_ids(fan) == [] and await world.stored_feed(fan) == []
    await follows.do_unmute_user(world.tao, fan, author)
    await world.drain()
    assert await world.feed_ids(fan) == posts[::-1]


async def test_unmuting_someone_not_followed_stores_nothing(world):
    author, _ = await _author_with_posts(world)
    fan = await world.user()
    await follows.do_mute_user(world.tao, fan, author)
    await follows.do_unmute_user(world.tao, fan, author)
    await world.drain()
    assert await world.stored_feed(fan) == []


async def test_bounded_by_count_and_window(world):
    world.settings.feed.backfill_posts = 2
    author = await world.user()
    old = await world.post(author, time=now_ms() - int((world.settings.feed.window_days + 1) * DAY_MS))
    posts = [await world.post(author) for _ in range(3)]
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    await world.drain()
    assert sorted(await world.stored_feed(fan)) == sorted(posts[-2:])
    assert old not in await world.feed_ids(fan)


async def test_only_visible_posts_of_a_shown_author(world):
    author, posts = await _author_with_posts(world)
    await world.tao.obj_update(posts[0], {"status": "processing"})
    await world.tao.obj_delete(posts[1])
    fan, muter = await world.users(2)
    await world.tao.assoc_add(muter, "MUTES", author)
    await follows.do_follow_user(world.tao, fan, author)
    await follows.do_follow_user(world.tao, muter, author)   # a muted author's posts stay out
    await world.drain()
    assert await world.stored_feed(fan) == [posts[2]]
    assert await world.stored_feed(muter) == []


async def test_a_rerun_writes_nothing_new_and_keeps_seen_marks(world):
    author, posts = await _author_with_posts(world)
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    await world.drain()
    first = await world.feed(fan, first=2)
    await world.feed(fan, first=2, after=first.end_cursor)   # marks the first page seen
    before = await world.tao.assoc_range(fan, "FEED", 0, 100)
    assert sum("s" in e.data for e in before) == 2
    await backfill.backfill_job(world.job, {"viewer": fan, "author": author})
    after = await world.tao.assoc_range(fan, "FEED", 0, 100)
    assert [(e.id2, e.time, e.data) for e in after] == [(e.id2, e.time, e.data) for e in before]
    assert len(after) == 3


async def test_a_big_account_is_pulled_not_backfilled(world):
    author = await world.user()
    for f in await world.users(world.settings.feed.fanout_threshold + 1):
        await world.follow(f, author)
    posts = [await world.post(author) for _ in range(2)]   # the first post records the crossing
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    await world.drain()
    assert await world.stored_feed(fan) == []
    assert await world.feed_ids(fan) == posts[::-1]


async def test_unfollow_and_block_remove_backfilled_posts(world):
    author, posts = await _author_with_posts(world)
    unfollower, blocked, blocker = await world.users(3)
    for f in (unfollower, blocked, blocker):
        await follows.do_follow_user(world.tao, f, author)
    await world.drain()
    await follows.do_unfollow_user(world.tao, unfollower, author)
    await follows.do_block_user(world.tao, author, blocked)
    await follows.do_block_user(world.tao, blocker, author)
    await world.drain()
    for v in (unfollower, blocked, blocker):
        assert await world.stored_feed(v) == []


async def test_job_order_does_not_matter_the_relationship_does(world):
    """follow, unfollow, follow again: whichever order the three jobs run in, the posts stay;
    a backfill that runs after the unfollow writes nothing."""
    author, posts = await _author_with_posts(world)
    fan = await world.user()
    await world.tao.assoc_add(fan, "FOLLOWS", author)
    await backfill.backfill_job(world.job, {"viewer": fan, "author": author})
    await world.tao.assoc_delete(fan, "FOLLOWS", author)
    await backfill.backfill_job(world.job, {"viewer": fan, "author": author})   # late: not followed now
    await removal.remove_author_job(world.job, {"viewer": fan, "author": author})
    assert await world.stored_feed(fan) == []
    await world.tao.assoc_add(fan, "FOLLOWS", author)
    await backfill.backfill_job(world.job, {"viewer": fan, "author": author})
    await removal.remove_author_job(world.job, {"viewer": fan, "author": author})  # the unfollow's, late
    assert sorted(await world.stored_feed(fan)) == sorted(posts)


async def test_backfill_on_mysql_and_memcached(mysql_world):
    world = mysql_world
    author, posts = await _author_with_posts(world)
    fan = await world.user()
    await follows.do_follow_user(world.tao, fan, author)
    await world.drain()
    assert await world.feed_ids(fan) == posts[::-1]
