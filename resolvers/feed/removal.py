"""Removal from stored FEED lists: eventual, by jobs. Reads filter removed posts at once
(resolvers.feed.candidates.keep_visible); these jobs only keep the stored lists clean.

Causes and the job each uses:
- a post deleted or hidden: `feed.retract_post` (posts' delete hook, `on_post_removed`), paged
  over the author's followers like fan-out;
- unfollow, block, mute: `feed.remove_author` for the viewer (`on_relationship_removed`, for the
  follow-graph writes to commit with theirs);
- any FEED edge a read finds unshowable (every cause, including an account going private):
  `feed.remove_posts` (read repair, enqueued by the read that found them).
All are idempotent: deleting an absent edge is a no-op. `feed.remove_author` does nothing when,
by the time it runs, the viewer's feed shows the author again (a re-follow or unmute, whose
backfill job may have run first): the relationship as it stands decides, not the job order.
"""

from __future__ import annotations

import asyncio

from resolvers.edge_data import edge_author
from resolvers.feed.backfill import shows_author
from resolvers.job_context import JobContext
from resolvers.records import Post
from tao import Tao

REMOVE_POSTS_JOB = "feed.remove_posts"
REMOVE_AUTHOR_JOB = "feed.remove_author"
RETRACT_POST_JOB = "feed.retract_post"
SCAN_PAGE = 1000
DELETE_CONCURRENCY = 32


def on_post_removed(post: Post) -> list[tuple[str, dict]]:
    """Jobs to commit with the write that deletes or hides a post."""
    return [(RETRACT_POST_JOB, {"post": post.id, "author": post.author})]


def on_relationship_removed(viewer: int, author: int) -> list[tuple[str, dict]]:
    """Jobs to commit with an unfollow, block (both directions) or mute by `viewer` of `author`."""
    return [(REMOVE_AUTHOR_JOB, {"viewer": viewer, "author": author})]


async def _delete_feed_edges(tao: Tao, keys: list[tuple[int, int]]) -> None:
    sem = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def one(viewer: int, post: int) -> None:
        async with sem:
            await tao.assoc_delete(viewer, "FEED", post)
    await asyncio.gather(*(one(v, p) for v, p in keys))


async def remove_posts_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    await _delete_feed_edges(tao, [(payload["viewer"], p) for p in payload["posts"]])


async def remove_author_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    viewer, author = payload["viewer"], payload["author"]
    if await shows_author(tao, viewer, author):
        return  # followed (and unmuted) again since: its backfill owns the list now
    after = None
    while True:
        page = await tao.assoc_time_range(viewer, "FEED", limit=SCAN_PAGE, after=after)
        await _delete_feed_edges(tao, [(viewer, e.id2) for e in page if edge_author(e.data) == author])
        if len(page) < SCAN_PAGE:
            return
        after = (page[-1].time, page[-1].id2)


async def retract_post_job(job: JobContext, payload: dict) -> None:
    """One page of the author's followers per job, chained like fan-out."""
    tao = job.tao
    post, author = payload["post"], payload["author"]
    after = tuple(payload["after"]) if payload.get("after") else None
    page = await tao.assoc_time_range(author, "FOLLOWED_BY", limit=SCAN_PAGE, after=after)
    if len(page) == SCAN_PAGE:
        await tao.enqueue(author, RETRACT_POST_JOB, {**payload, "after": [page[-1].time, page[-1].id2]})
    found = await tao.assoc_get_many([(a.id2, "FEED", post) for a in page])
    await _delete_feed_edges(tao, [(k[0], post) for k, e in found.items() if e is not None])
