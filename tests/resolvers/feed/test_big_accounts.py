"""Fan-out on read: accounts above feed.fanout_threshold (5 here) are pulled at read time, and
crossing the threshold in either direction loses no post and migrates nothing."""

from __future__ import annotations

from resolvers.feed import big_accounts
from tao.models import now_ms


async def _big_edges(world) -> dict[int, dict]:
    return {e.id2: e.data for e in await big_accounts.big_account_edges(world.tao)}


async def test_big_account_posts_are_pulled_not_pushed(world):
    star = await world.user()
    fans = await world.users(6)
    for f in fans:
        await world.follow(f, star)
    pid = await world.post(star)
    assert await _big_edges(world) == {star: {"until": None}}
    for f in fans:
        assert await world.stored_feed(f) == []
        assert await world.feed_ids(f) == [pid]


async def test_a_big_accounts_post_costs_the_same_writes_whatever_its_follower_count(world):
    costs = []
    for n in (6, 12):
        star = await world.user()
        for f in await world.users(n):
            await world.follow(f, star)
        first = await world.post(star)  # the first post records the crossing
        pid = await world.post(star, run=False)
        before = world.tao.stats()["sql_queries"]
        await world.drain()
        costs.append(world.tao.stats()["sql_queries"] - before)
        for a in await world.tao.assoc_range(star, "FOLLOWED_BY", 0, 100):
            assert await world.stored_feed(a.id2) == []
            assert set(await world.feed_ids(a.id2)) == {first, pid}
    assert costs[0] == costs[1]


async def test_crossing_the_threshold_both_ways(world):
    star = await world.user()
    fans = await world.users(7)
    for f in fans:
        await world.follow(f, star)
    p_big = await world.post(star)                     # 7 > 5: pulled
    for f in fans[:3]:
        await world.tao.assoc_delete(f, "FOLLOWS", star)
    stay = fans[3:]
    p_small = await world.post(star, time=None)       # 4 <= 5: pushed; the earlier post is still pulled
    assert (await _big_edges(world))[star]["until"] is not None
    for f in stay:
        assert await world.stored_feed(f) == [p_small]
        assert set(await world.feed_ids(f)) == {p_big, p_small}
    for f in await world.users(3):
        await world.follow(f, star)
    p_big2 = await world.post(star)                    # 7 again: pulled, nothing new pushed
    assert (await _big_edges(world))[star] == {"until": None}
    for f in stay:
        assert await world.stored_feed(f) == [p_small]
        assert set(await world.feed_ids(f)) == {p_big, p_small, p_big2}
    for f in fans[:3]:                                 # unfollowed: see nothing of it
        assert await world.feed_ids(f) == []


async def test_followed_big_and_ordinary_accounts_merge(world):
    star, friend, viewer = await world.users(3)
    for f in await world.users(6):
        await world.follow(f, star)
    await world.follow(viewer, star)
    await world.follow(viewer, friend)
    a = await world.post(star)
    b = await world.post(friend)
    c = await world.post(viewer)
    from resolvers.feed.service import FeedMode
    assert await world.feed_ids(viewer, mode=FeedMode.CHRONOLOGICAL) == [c, b, a]


async def test_a_pulled_post_whose_edge_lacks_its_kind_is_ranked_by_the_posts_kind(world):
    """AUTHORED edges written before they carried the post's kind: the prefilter loads the post."""
    from resolvers.feed import candidates

    big, viewer = await world.user(), await world.user()
    await world.follow(viewer, big)
    pid = await world.tao.obj_add("POST", {"author": big, "caption": "", "status": "visible", "kind": "video",
                                           "published_at": now_ms()}, owner=big)
    await world.tao.assoc_add(big, "AUTHORED", pid)  # no "k"
    kept, _ = await candidates.prefilter(world.ctx(viewer), viewer, [candidates.Candidate(pid, big, now_ms())], set())
    assert [(c.post, c.kind) for c in kept] == [(pid, "video")]
