"""Stable pagination over feed sessions, new-post counts, and seen state."""

from __future__ import annotations

import pytest

from resolvers.errors import BadInputError
from resolvers.feed.service import FeedMode


async def _scroll(world, viewer, first, mode=FeedMode.RANKED, between=None):
    page = await world.feed(viewer, first, mode=mode)
    out = [i.post.id for i in page.items]
    while page.has_next:
        if between is not None:
            await between()
        page = await world.feed(viewer, first, after=page.end_cursor, mode=mode)
        out += [i.post.id for i in page.items]
    return out, page


@pytest.mark.parametrize("mode", [FeedMode.RANKED, FeedMode.CHRONOLOGICAL])
async def test_cursors_never_repeat_or_skip_under_concurrent_posting(world, mode):
    authors = await world.users(4)
    viewer = await world.user()
    for a in authors:
        await world.follow(viewer, a)
    before = [await world.post(authors[i % 4], kind=("photo", "video")[i % 2]) for i in range(17)]
    fresh = []

    async def meanwhile():
        fresh.append(await world.post(authors[len(fresh) % 4]))
        await world.tao.assoc_add(viewer, "LIKES", before[len(fresh)])  # signals change mid-scroll

    seen, last = await _scroll(world, viewer, 4, mode, meanwhile)
    assert len(seen) == len(set(seen)) == len(before)
    assert set(seen) == set(before)
    from resolvers.feed.service import new_posts_count
    assert await new_posts_count(world.ctx(viewer), last.session) == len(fresh)
    # A refresh (no cursor) shows the new posts.
    assert set(fresh) <= set(await world.feed_ids(viewer))


async def test_chronological_order_is_newest_first(world):
    a, viewer = await world.users(2)
    await world.follow(viewer, a)
    posts = [await world.post(a, time=1_700_000_000_000 + i) for i in range(3)]
    world.settings.feed.window_days = 100_000
    assert await world.feed_ids(viewer, mode=FeedMode.CHRONOLOGICAL) == posts[::-1]


async def test_scrolled_past_posts_sink_below_unseen_ones(world):
    authors = await world.users(6)
    viewer = await world.user()
    for a in authors:
        await world.follow(viewer, a)
    posts = [await world.post(a) for a in authors]
    page1 = await world.feed(viewer, 3)
    first = [i.post.id for i in page1.items]
    await world.feed(viewer, 3, after=page1.end_cursor)   # scrolling on marks page 1 as seen
    marked = {e.id2 for e in await world.tao.assoc_range(viewer, "FEED", 0, 100) if "s" in e.data}
    assert marked == set(first)
    refreshed = await world.feed_ids(viewer)
    assert set(refreshed[-3:]) == set(first)
    assert set(refreshed[:3]) == set(posts) - set(first)


async def test_a_cursor_is_the_viewers_own_and_expires(world):
    a, viewer, other = await world.users(3)
    await world.follow(viewer, a)
    for _ in range(3):
        await world.post(a)
    page = await world.feed(viewer, 1)
    with pytest.raises(BadInputError):
        await world.feed(other, 1, after=page.end_cursor)
    world.settings.feed.session_ttl_seconds = 0
    with pytest.raises(BadInputError):
        await world.feed(viewer, 1, after=page.end_cursor)
    await world.drain(delayed=True)  # the delayed expiry job deletes the session
    assert await world.tao.obj_get([page.session.id]) == {}


async def test_debug_scores_only_for_developers(world):
    a, dev, plain = await world.users(3)
    await world.tao.obj_update(dev, {"is_developer": True})
    for v in (dev, plain):
        await world.follow(v, a)
    await world.post(a)
    (item,) = (await world.feed(dev)).items
    assert set(item.debug) == {"score", "recency", "engagement", "affinity", "content_type", "seen"}
    assert item.debug["score"] > 0
    (item,) = (await world.feed(plain)).items
    assert item.debug is None
