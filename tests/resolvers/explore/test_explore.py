"""Explore in constructed cases: every exclusion, the diversity rules, stable cursors, the seen
set, and privacy re-checked on every page (the pool is precomputed and may be stale)."""

from __future__ import annotations

from collections import Counter

import pytest

from resolvers.errors import BadInputError
from resolvers.explore import pool as pool_mod
from resolvers.explore import ranking, service
from resolvers.explore.pool import Cand
from resolvers.explore.sessions import SEEN
from tao.models import now_ms
from tests.resolvers.explore.conftest import one_trend_bucket


async def _graph(w, n_candidates: int = 3):
    """viewer follows f1, f2; both follow every account in `names` (the fof source)."""
    viewer, f1, f2 = await w.user("viewer"), await w.user("f1"), await w.user("f2")
    await w.follow(viewer, f1)
    await w.follow(viewer, f2)
    return viewer, f1, f2


async def _followed_by(w, followers, user):
    for f in followers:
        await w.follow(f, user)


@pytest.mark.parametrize("follows_scan", [1000, 2], ids=["follows-read-whole", "follows-cut-short"])
async def test_every_exclusion(world, monkeypatch, follows_scan):
    # The page check answers the viewer's FOLLOWS edges from their follows list when it was read
    # whole; cut short (more follows than the read's limit), it looks each one up instead.
    monkeypatch.setattr(service, "FOLLOWS_SCAN", follows_scan)
    w = world
    viewer, f1, f2 = await _graph(w)
    names = ["ok", "private", "blocked", "blocker", "muted", "followed", "processing"]
    u = {n: await w.user(n, private=(n == "private")) for n in names}
    for n in names:
        await _followed_by(w, [f1, f2], u[n])
    await w.follow(viewer, u["followed"])
    await w.block(viewer, u["blocked"])
    await w.block(u["blocker"], viewer)
    await w.mute(viewer, u["muted"])
    posts = {n: await w.tagged_post(u[n], status="processing" if n == "processing" else "visible") for n in names}
    own = await w.tagged_post(viewer)
    shown = await w.explore_ids(viewer)
    assert shown == [posts["ok"]]
    assert own not in shown
    # The same holds when the pool predates every relationship: the page check decides.
    later = {n: await w.user(f"late_{n}") for n in ("blocked", "blocker", "muted", "followed", "private", "ok")}
    for n, uid in later.items():
        await _followed_by(w, [f1, f2], uid)
        posts[f"late_{n}"] = await w.tagged_post(uid)
    await pool_mod.store(w.tao, viewer, await pool_mod.build(w.tao, w.settings, viewer, now_ms()))
    await w.block(viewer, later["blocked"])
    await w.block(later["blocker"], viewer)
    await w.mute(viewer, later["muted"])
    await w.follow(viewer, later["followed"])
    await w.tao.obj_update(later["private"], {"is_private": True})
    shown = await w.explore_ids(viewer)
    assert shown == [posts["late_ok"]]


async def test_one_post_per_author_and_a_mix_of_kinds(world):
    w = world
    viewer, f1, f2 = await _graph(w)
    w.settings.explore.diversity_window = 6
    w.settings.explore.max_content_type_share = 0.5
    authors = [await w.user(f"a{i}") for i in range(10)]
    for i, a in enumerate(authors):
        await _followed_by(w, [f1, f2], a)
        # every author: three photos; authors 0-3 also post a video or a carousel
        for _ in range(3):
            await w.tagged_post(a, "photo", run=False)
        if i < 4:
            await w.tagged_post(a, ("video", "carousel")[i % 2], run=False)
    await w.drain()
    w.settings.explore.posts_per_author = 4
    page = await w.explore(viewer, 6)
    assert len(page.items) == 6
    got = [i.post for i in page.items]
    assert len({p.author for p in got}) == 6  # at most one post per author
    kinds = Counter(p.kind.value for p in got)
    assert kinds["photo"] <= 3, kinds  # mixed although photos outnumber the rest 30 to 4
    # The whole scroll: still one post per author (the snapshot is one per author).
    rest = await w.scroll(viewer, 6)
    objs = await w.tao.obj_get(rest)
    assert len({objs[p].data["author"] for p in rest}) == len(rest)


def test_diversify_relaxes_when_only_one_kind_is_left(world):
    s = world.settings.explore
    s.diversity_window, s.max_content_type_share = 4, 0.5
    items = [ranking.Ranked(Cand(i, i, "photo", 0, 0.0), 10 - i) for i in range(6)]
    items.append(ranking.Ranked(Cand(99, 99, "video", 0, 0.0), 0.1))
    out = [x.cand.post for x in ranking.diversify(items, s)]
    assert out[:4] == [0, 1, 99, 2]  # the video is pulled up to keep the block at most half photos
    assert sorted(out) == sorted(x.cand.post for x in items)  # nothing lost when the rule cannot hold


async def test_cursors_are_stable_and_served_posts_never_return(world):
    w = world
    viewer, f1, f2 = await _graph(w)
    authors = [await w.user(f"a{i}") for i in range(12)]
    for a in authors:
        await _followed_by(w, [f1, f2], a)
        await w.tagged_post(a, run=False)
    await w.drain()
    first = await w.explore(viewer, 5)
    assert len(first.items) == 5 and first.has_next
    # New posts and a fresh pool mid-scroll change nothing in this session.
    newcomer = await w.user("newcomer")
    await _followed_by(w, [f1, f2], newcomer)
    late = await w.tagged_post(newcomer)
    await pool_mod.store(w.tao, viewer, await pool_mod.build(w.tao, w.settings, viewer, now_ms()))
    second = await w.explore(viewer, 5, first.end_cursor)
    again = await w.explore(viewer, 5, first.end_cursor)  # a retried page is the same page
    assert [i.post.id for i in again.items] == [i.post.id for i in second.items]
    third = await w.explore(viewer, 5, second.end_cursor)
    served = [i.post.id for p in (first, second, third) for i in p.items]
    assert len(served) == len(set(served)) == 12 and late not in served
    assert not third.has_next
    # A new snapshot serves only what was never served: the newcomer's post.
    assert await w.explore_ids(viewer) == [late]
    marks = await w.tao.assoc_range(viewer, SEEN, 0, 100)
    assert {e.id2 for e in marks} == set(served) | {late}


async def test_a_post_served_by_another_session_is_skipped_and_replaced(world):
    w = world
    viewer, f1, f2 = await _graph(w)
    for i in range(8):
        a = await w.user(f"a{i}")
        await _followed_by(w, [f1, f2], a)
        await w.tagged_post(a, run=False)
    await w.drain()
    one = await w.explore(viewer, 2)
    two = await w.explore(viewer, 2)  # a second session: the first's two posts are seen
    assert not {i.post.id for i in one.items} & {i.post.id for i in two.items}
    rest = await w.explore(viewer, 10, one.end_cursor)
    ids = [i.post.id for i in rest.items]
    assert not set(ids) & {i.post.id for i in two.items}
    assert len(ids) == 4  # 8 posts, 4 served by the two first pages


async def test_blocking_mid_scroll_hides_at_once(world):
    w = world
    viewer, f1, f2 = await _graph(w)
    authors = [await w.user(f"a{i}") for i in range(6)]
    for a in authors:
        await _followed_by(w, [f1, f2], a)
        await w.tagged_post(a, run=False)
    await w.drain()
    first = await w.explore(viewer, 2)
    shown_authors = {i.post.author for i in first.items}
    for a in authors:
        if a not in shown_authors:
            await w.block(a, viewer)
    rest = await w.explore(viewer, 10, first.end_cursor)
    assert rest.items == [] and not rest.has_next


async def test_sources_colike_and_tags(world):
    w = world
    viewer = await w.user("viewer")
    poster, liker, stranger, tagger = [await w.user(n) for n in ("poster", "liker", "stranger", "tagger")]
    seed = await w.tagged_post(poster, tags=("cats",))
    await w.like(viewer, seed)
    await w.like(liker, seed)
    colike = await w.tagged_post(stranger)
    await w.like(liker, colike)
    tagged = await w.tagged_post(tagger, tags=("cats",))
    shown = set(await w.explore_ids(viewer))
    assert colike in shown  # liked by someone who likes what the viewer likes
    assert tagged in shown  # a hashtag the viewer engages with
    assert seed not in shown  # liked already: seen


async def test_bad_cursors(world):
    w = world
    viewer, other = await w.user("viewer"), await w.user("other")
    page = await w.explore(other, 5)
    with pytest.raises(BadInputError):
        await w.explore(viewer, 5, page.end_cursor)  # someone else's session
    with pytest.raises(BadInputError):
        await w.explore(other, 5, (page.end_cursor[0], 10_000))
    with pytest.raises(BadInputError):
        await w.explore(viewer, 5000)


async def test_stale_pool_is_served_and_rebuilt_by_a_job(world):
    w = world
    viewer, f1, f2 = await _graph(w)
    a = await w.user("a")
    await _followed_by(w, [f1, f2], a)
    first = await w.tagged_post(a)
    assert await w.explore_ids(viewer) == [first]
    b = await w.user("b")
    await _followed_by(w, [f1, f2], b)
    second = await w.tagged_post(b)
    assert await w.explore_ids(viewer) == []  # the pool is fresh: nothing new yet
    w.settings.explore.pool_ttl_seconds = 1
    edge = (await w.tao.assoc_get(viewer, "EXPLORE_POOL", [viewer]))[viewer]
    await w.tao.assoc_add(viewer, "EXPLORE_POOL", viewer, time=edge.time - 5000,
                          data={**edge.data, "t": edge.data["t"] - 5000})
    assert await w.explore_ids(viewer) == []  # served stale, rebuild enqueued
    await w.drain()
    assert await w.explore_ids(viewer) == [second]


async def test_cold_start_serves_trending_posts_then_the_built_pool(world):
    from resolvers.explore import trends

    w = world
    one_trend_bucket(w.settings.explore)
    w.settings.explore.cold_build_inline = False
    viewer, f1, f2 = await _graph(w)
    fof = await w.user("fof")
    await _followed_by(w, [f1, f2], fof)
    personal = await w.tagged_post(fof)
    users = [await w.user(f"t{i}") for i in range(5)]
    trending = [await w.tagged_post(u, tags=("dogs",), run=False) for u in users]
    await w.drain()
    await trends.refresh(w.tao, w.settings.explore)
    assert set(await w.explore_ids(viewer)) == set(trending)  # at once, while the job builds the pool
    assert await w.suggested(viewer) == []
    await w.drain()
    assert await w.explore_ids(viewer) == [personal]  # the trending posts were served: seen
    assert [x.user.id for x in await w.suggested(viewer)] == [fof]
