"""Feed test fixtures: a real store (SQLite for logic, MariaDB+memcached for integration) with
the domain's job handlers, and `World`, which builds users, follows and posts the way the
domain's own write paths do (posts exactly as resolvers/posts.py creates them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config import Settings
from resolvers.context import RequestContext
from resolvers.feed import fanout
from resolvers.feed.service import FeedMode, FeedPage, home_feed
from resolvers.job_context import JobContext
from resolvers.jobs import register_job_handlers
from resolvers.records import record_of
from tao import Tao
from tao.models import now_ms
from tests.tao.conftest import make_settings, open_store


class World:
    def __init__(self, tao: Tao, settings: Settings) -> None:
        self.tao = tao
        self.settings = settings
        self._n = 0

    async def user(self, name: str | None = None, *, private: bool = False, **data) -> int:
        self._n += 1
        return await self.tao.obj_add("USER", {"username": name or f"u{self._n}", "is_private": private, **data})

    async def users(self, n: int) -> list[int]:
        return [await self.user() for _ in range(n)]

    async def follow(self, follower: int, author: int) -> None:
        await self.tao.assoc_add(follower, "FOLLOWS", author)

    async def post(self, author: int, kind: str = "photo", *, time: int | None = None, run: bool = True) -> int:
        """A visible post, made as P's createPost does: POST on the author's shard, AUTHORED, and
        the ON_PUBLISH jobs committed with the write that makes it visible."""
        time = now_ms() if time is None else time
        pid = await self.tao.obj_add("POST", {"author": author, "caption": "", "status": "visible", "kind": kind,
                                             "published_at": time}, owner=author)
        obj = (await self.tao.obj_get([pid]))[pid]
        await self.tao.assoc_add(author, "AUTHORED", pid, time=time, data={"k": kind},
                                 jobs=fanout.on_publish(record_of(obj)))
        if run:
            await self.drain()
        return pid

    async def drain(self, *, delayed: bool = False) -> None:
        """Run every due job (with `delayed`, also those scheduled for later: session expiry)."""
        await self.tao.run_jobs_until_idle(include_delayed=delayed)

    @property
    def job(self) -> JobContext:
        """What a job handler is given, for calling one directly."""
        return JobContext(self.tao, self.settings)

    def ctx(self, viewer: int | None) -> RequestContext:
        return RequestContext(tao=self.tao, settings=self.settings, viewer_id=viewer)

    async def feed(self, viewer: int, first: int = 20, after=None, mode: FeedMode = FeedMode.RANKED) -> FeedPage:
        return await home_feed(self.ctx(viewer), first, after, mode)

    async def feed_ids(self, viewer: int, first: int = 100, mode: FeedMode = FeedMode.RANKED) -> list[int]:
        return [i.post.id for i in (await self.feed(viewer, first, mode=mode)).items]

    async def stored_feed(self, viewer: int) -> list[int]:
        return [a.id2 for a in await self.tao.assoc_range(viewer, "FEED", 0, 1000)]


def _settings(backend: str, request, test_id: str, tmp_path) -> Settings:
    services = request.getfixturevalue("services") if backend == "mysql" else None
    s = make_settings(backend, services, test_id, tmp_path)
    s.feed.fanout_threshold = 5
    s.feed.fanout_batch = 3
    return s


async def _world(s: Settings) -> AsyncIterator[World]:
    tao = await open_store(s)
    register_job_handlers(tao)
    try:
        yield World(tao, s)
    finally:
        await tao.close()


@pytest.fixture
async def world(request, test_id: str, tmp_path) -> AsyncIterator[World]:
    """SQLite store with small thresholds (fan-out threshold 5, pages of 3 followers)."""
    async for w in _world(_settings("sqlite", request, test_id, tmp_path)):
        yield w


@pytest.fixture
async def mysql_world(request, test_id: str, tmp_path) -> AsyncIterator[World]:
    """MariaDB shards + memcached, the same small thresholds."""
    async for w in _world(_settings("mysql", request, test_id, tmp_path)):
        yield w
