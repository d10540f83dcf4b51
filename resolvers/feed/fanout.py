"""Fan-out on write: the ON_PUBLISH hook, the chained fan-out job, and the rebuild job.

Making a post visible commits a `feed.fanout` job in the same transaction (posts.ON_PUBLISH).
The job handles one keyset page of the author's FOLLOWED_BY list (`feed.fanout_batch`
followers): it first enqueues the job for the next page (so pages of a big fan-out proceed on
any number of workers and progress survives a crash), then writes the post into the FEED list
of every active follower of the page with `assoc_add_to_objects`: one INSERT ... SELECT per
shard, which checks each follower's `last_active` in the database (FEED keeps no count, so
there is no list to lock and no row to read first).

Invariants:
- Idempotent: a FEED edge is an upsert keyed (follower, FEED, post); re-running a page rewrites
  the same rows. A crash between enqueueing the next page and finishing this one re-runs this
  page and may start a second chain for the rest: duplicate work, never a wrong result.
- The first page decides push or pull from the exact follower count: above
  `feed.fanout_threshold` the author is (or stays) on the BIG_ACCOUNT list and nothing else is
  written, so a big account's post costs O(1) writes whatever its follower count.
- A FEED edge's time is the post's publish time and its data `{"a": author, "k": kind}`
  (removal by author and ranking read the list without loading posts).
"""

from __future__ import annotations

from config import FeedSettings
from resolvers.edge_data import big_until, feed_edge_data
from resolvers.feed import big_accounts
from resolvers.feed.activity import DAY_MS
from resolvers.job_context import JobContext
from resolvers.records import Post, User, record_of
from tao import Tao
from tao.bulk_lists import MAX_BULK, ObjectFilter
from tao.models import now_ms

FANOUT_JOB = "feed.fanout"
REBUILD_JOB = "feed.rebuild"


def post_time(post: Post) -> int:
    """A post's place in feeds: when it became visible (its `published_at`), else its creation."""
    return post.time


def on_publish(post: Post) -> list[tuple[str, dict]]:
    """posts.ON_PUBLISH hook: the fan-out job, committed with the write that makes `post` visible."""
    return [(FANOUT_JOB, {"post": post.id, "author": post.author, "time": post.time, "kind": post.kind.value})]


async def fanout_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    s = job.settings.feed
    post_id, author, time = payload["post"], payload["author"], payload["time"]
    obj = (await tao.obj_get([post_id])).get(post_id)
    post = record_of(obj) if obj is not None else None
    if not isinstance(post, Post) or not post.is_visible:
        return  # deleted or hidden since: nothing more to push (readers filter what was pushed)
    after = tuple(payload["after"]) if payload.get("after") else None
    if after is None and await _is_big(tao, author, s):
        return
    page = await tao.assoc_time_range(author, "FOLLOWED_BY", limit=s.fanout_batch, after=after)
    if len(page) == s.fanout_batch:
        await tao.enqueue(author, FANOUT_JOB, {**payload, "after": [page[-1].time, page[-1].id2],
                                               "page": payload.get("page", 0) + 1})
    await push_to_followers(tao, post_id, feed_edge_data(author, payload.get("kind")), time, [a.id2 for a in page], s)


async def _is_big(tao: Tao, author: int, s: FeedSettings) -> bool:
    """Decide push or pull for this post, recording a crossing of the threshold either way."""
    count = await tao.assoc_count(author, "FOLLOWED_BY")
    edge = await big_accounts.big_edge(tao, author)
    big = count > s.fanout_threshold
    await big_accounts.set_big(tao, author, big, edge)
    if not big:
        await big_accounts.forget_expired(tao, author, edge, int(s.window_days * DAY_MS))
    return big


async def push_to_followers(tao: Tao, post_id: int, data: dict, time: int, followers: list[int],
                            s: FeedSettings) -> None:
    """Write the post into the FEED lists of the active followers among `followers`: one
    INSERT ... SELECT per shard that skips, in the database, followers inactive for longer than
    `feed.inactive_days` (their feed is rebuilt when they return) and deleted accounts."""
    since = now_ms() - int(s.inactive_days * DAY_MS)
    for i in range(0, len(followers), MAX_BULK):
        await tao.assoc_add_to_objects(followers[i:i + MAX_BULK], "FEED", post_id, time, data,
                                       where=ObjectFilter("last_active", since))


async def rebuild_job(job: JobContext, payload: dict) -> None:
    """Refill a returning viewer's FEED list from the recent posts of the accounts they follow
    (big accounts excluded: they are pulled at read time anyway), then clear `feed_rebuild`."""
    from resolvers.feed.candidates import pull_authors  # candidates imports this module's helpers

    tao = job.tao
    s = job.settings.feed
    viewer = payload["viewer"]
    follows = await tao.assoc_range(viewer, "FOLLOWS", 0, s.rebuild_followings)
    big = {e.id2 for e in await big_accounts.big_account_edges(tao) if big_until(e.data) is None}
    authors = [a.id2 for a in follows if a.id2 not in big]
    low = now_ms() - int(s.window_days * DAY_MS)
    pulled = await pull_authors(tao, authors, low, s.pull_per_author)
    edges = [(viewer, "FEED", c.post, c.time, feed_edge_data(c.author, c.kind)) for c in pulled]
    for i in range(0, len(edges), MAX_BULK):
        await tao.assoc_add_many(edges[i:i + MAX_BULK])
    obj = (await tao.obj_get([viewer])).get(viewer)
    user = record_of(obj) if obj is not None else None
    if isinstance(user, User) and user.feed_rebuild:
        await tao.obj_update(viewer, {"feed_rebuild": None})
