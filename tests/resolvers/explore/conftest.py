"""Explore test fixtures: the feed tests' `World` (a real store with the domain's job handlers)
plus posts with kinds, hashtags and statuses made as `do_create_post` makes them, likes, blocks,
mutes, and Explore's reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config.settings import ExploreSettings
from resolvers import posts
from resolvers.edge_data import authored_data, like_data
from resolvers.explore import service, trends
from resolvers.hashtags import hashtag_ids_for
from resolvers.records import Post, record_of
from tao.models import now_ms
from tests.resolvers.feed.conftest import World, _settings, _world


def one_trend_bucket(s: ExploreSettings) -> None:
    """For a test whose posts and `trends.refresh` take the wall clock's time: a week's bucket.
    A tag trends from `trend_threshold` accounts in the refresh's bucket of
    `trend_bucket_minutes` (an hour): posts made, or a refresh run, on the other side of an hour
    left the bucket short and nothing trended (a run at xx:59:59 failed; the seventeenth
    session's fix of test_privacy_ws_discovery). A week's bucket keeps them in one but within a
    second of a Thursday 00:00 UTC (epoch-aligned weeks)."""
    s.trend_bucket_minutes = 7 * 24 * 60


class ExploreWorld(World):
    async def tagged_post(self, author: int, kind: str = "photo", tags: tuple[str, ...] = (), *,
                          time: int | None = None, status: str = "visible", run: bool = True) -> int:
        time = now_ms() if time is None else time
        caption = " ".join(f"#{t}" for t in tags)
        data = posts.post_data(author, caption, hashtags=await hashtag_ids_for(self.tao, list(tags)), kind=kind,
                               status=status, published_at=time)
        pid = await self.tao.obj_add("POST", data, owner=author)
        post: Post = record_of((await self.tao.obj_get([pid]))[pid])
        jobs = [(posts.SYNC_EDGES_JOB, {"post": pid})] + (posts.publish_jobs(post) if status == "visible" else [])
        await self.tao.assoc_add(author, "AUTHORED", pid, time=time, data=authored_data(post), jobs=jobs)
        await posts.sync_post_edges(self.tao, post)
        if run:
            await self.drain()
        return pid

    async def like(self, user: int, post: int) -> None:
        obj = record_of((await self.tao.obj_get([post]))[post])
        await self.tao.assoc_add(user, "LIKES", post, data=like_data(obj))

    async def block(self, a: int, b: int) -> None:
        await self.tao.assoc_add(a, "BLOCKS", b)

    async def mute(self, a: int, b: int) -> None:
        await self.tao.assoc_add(a, "MUTES", b)

    async def explore(self, viewer: int, first: int = 24, after=None) -> service.ExplorePage:
        return await service.explore(self.ctx(viewer), first, after)

    async def explore_ids(self, viewer: int, first: int = 100) -> list[int]:
        return [i.post.id for i in (await self.explore(viewer, first)).items]

    async def scroll(self, viewer: int, first: int) -> list[int]:
        """Every post of one session, page by page."""
        out, after = [], None
        while True:
            page = await self.explore(viewer, first, after)
            out += [i.post.id for i in page.items]
            if not page.has_next:
                return out
            after = page.end_cursor

    async def suggested(self, viewer: int, first: int = 20) -> list[service.SuggestedUser]:
        return await service.suggested_users(self.ctx(viewer), first)

    async def trending(self, first: int = 10, at: int | None = None) -> list[trends.TrendingTag]:
        return await trends.trending_hashtags(self.ctx(None), first, at=at)


async def _explore_world(s) -> AsyncIterator[ExploreWorld]:
    s.explore.cold_build_inline = True  # personal at once (test_cold_start covers the other way)
    async for w in _world(s):
        yield ExploreWorld(w.tao, w.settings)


@pytest.fixture
async def world(request, test_id: str, tmp_path) -> AsyncIterator[ExploreWorld]:
    async for w in _explore_world(_settings("sqlite", request, test_id, tmp_path)):
        yield w


@pytest.fixture
async def mysql_world(request, test_id: str, tmp_path) -> AsyncIterator[ExploreWorld]:
    async for w in _explore_world(_settings("mysql", request, test_id, tmp_path)):
        yield w
