"""Trending hashtags: distinct accounts per bucket tallied by the post-creation job, Mastodon's
growth score over the baseline, decay from the peak, cooldown, and what never counts."""

from __future__ import annotations

import pytest

from resolvers.explore import trends
from tao.models import now_ms
from tests.resolvers.explore.conftest import one_trend_bucket

HOUR = 3_600_000


def test_score_and_decay(world):
    s = world.settings.explore
    s.trend_threshold = 5
    assert trends.trend_score(4, 0, s) == 0  # under the threshold
    assert trends.trend_score(6, 6, s) == 0  # no growth
    assert trends.trend_score(6, 0, s) == 25  # expected is at least 1
    assert trends.trend_score(8, 2, s) == 18
    assert trends.decayed(18, 0, int(s.trend_halflife_hours * HOUR), s) == pytest.approx(9)


async def _users(w, n, prefix, private=False):
    return [await w.user(f"{prefix}{i}", private=private) for i in range(n)]


async def test_growth_over_baseline_with_decay(world):
    w = world
    s = w.settings.explore
    s.trend_baseline_buckets, s.trend_threshold, s.trend_min_score = 2, 5, 1.0
    now = now_ms()
    prev = now - s.trend_bucket_minutes * 60_000
    prev2 = prev - s.trend_bucket_minutes * 60_000
    steady = await _users(w, 6, "steady")
    rising = await _users(w, 8, "rising")
    for t in (prev2, prev):
        for u in steady:
            await w.tagged_post(u, tags=("steady",), time=t, run=False)
        for u in rising[:2]:
            await w.tagged_post(u, tags=("rising",), time=t, run=False)
    # The baselines are tallied before the current bucket's posts, as they would be in real
    # time: a refresh the tallies enqueue must not score "rising" before its baseline landed
    # (it would keep that higher peak: 36, not 18).
    await w.drain()
    for u in steady:
        await w.tagged_post(u, tags=("steady",), time=now, run=False)
    for u in rising:
        await w.tagged_post(u, tags=("rising",), time=now, run=False)
    fresh = await _users(w, 6, "fresh")
    for u in fresh:
        await w.tagged_post(u, tags=("fresh",), time=now, run=False)
    # Never counted: private accounts, and one account posting many times.
    for u in await _users(w, 6, "hidden", private=True):
        await w.tagged_post(u, tags=("secret",), time=now, run=False)
    spammer = await w.user("spammer")
    for _ in range(10):
        await w.tagged_post(spammer, tags=("spam",), time=now, run=False)
    await w.drain()
    await trends.refresh(w.tao, s, at=now)
    got = [(t.hashtag.name, round(t.score, 3), t.accounts) for t in await w.trending(at=now)]
    assert got == [("fresh", 25.0, 6), ("rising", 18.0, 8)]
    later = now + int(s.trend_halflife_hours * HOUR)
    # (A refresh the tallies enqueued ran moments after `now`: its peak time may be a little later.)
    decayed = [(t.hashtag.name, round(t.score, 1)) for t in await w.trending(at=later)]
    assert decayed == [("fresh", 12.5), ("rising", 9.0)]
    # Past the cooldown without new use, a peak is forgotten.
    gone = now + int((s.trend_cooldown_hours + 1) * HOUR)
    await trends.refresh(w.tao, s, at=gone)
    assert await w.trending(at=gone) == []


async def test_tally_is_idempotent_and_refresh_is_enqueued(world):
    w = world
    one_trend_bucket(w.settings.explore)
    s = w.settings.explore
    users = await _users(w, 5, "u")
    posts = [await w.tagged_post(u, tags=("dogs",), run=False) for u in users]
    await w.drain()  # the tallies, and the refresh the first of them asked for (at most one per interval)
    rid = await trends.registry_id(w.tao)
    assert "t" in (await w.tao.obj_get([rid]))[rid].data
    await trends.refresh(w.tao, s)
    assert [t.hashtag.name for t in await w.trending()] == ["dogs"]
    post = (await w.tao.obj_get([posts[0]]))[posts[0]]
    payload = {"post": posts[0], "author": users[0], "time": post.data["published_at"],
               "tags": post.data["hashtag_ids"]}
    await trends.tally_job(w.job, payload)  # at-least-once delivery: a second run
    await trends.refresh(w.tao, s)
    assert [t.accounts for t in await w.trending()] == [5]


async def test_trending_posts_feed_explore(world):
    w = world
    one_trend_bucket(w.settings.explore)
    viewer = await w.user("viewer")  # follows nobody and likes nothing: only trends to go on
    users = await _users(w, 5, "u")
    posts = [await w.tagged_post(u, tags=("dogs",), run=False) for u in users]
    await w.drain()
    await trends.refresh(w.tao, w.settings.explore)
    assert set(await w.explore_ids(viewer)) == set(posts)
