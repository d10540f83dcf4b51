"""Backfill: a relationship that starts showing an author's posts brings their recent posts in.

Fan-out only pushes posts published while the follow stands, so without this a new follower
(or a requester just approved, or a viewer who unmutes) would see nothing of the author's until
their next post. The write that starts the relationship — a follow of a public account, the
approval of a request (by the account, or by `approve_pending_requests_job` when it goes
public), an unmute — commits a `feed.backfill` job in its own transaction (`on_relationship_
added`), so the backfill is as durable as the follow.

Invariants:
- Bounded: at most the author's newest `feed.backfill_posts` posts younger than
  `feed.window_days` (what a read would look at anyway), read from the AUTHORED list.
- Visible only, decided when the job runs (the relationship may have changed since the write):
  the viewer follows the author, neither blocks the other, the viewer does not mute the author,
  and each post exists, is `visible` and is by that author. Reads still check every page
  (candidates.keep_visible): a backfilled edge is only ever an extra candidate.
- Idempotent: only missing FEED edges are written; an existing edge (with its seen mark) is left
  as it is, so a re-run writes nothing.
- Races with the removal jobs settle on the relationship as it stands: after writing, the job
  looks again and deletes what it wrote if the relationship ended meanwhile (the removal job
  may have scanned the list before the write landed), and `removal.remove_author_job` skips an
  author the viewer shows again (an unfollow's job run after the re-follow's backfill).
- Big accounts (on BIG_ACCOUNT, `until` unset) get nothing written: their newest
  `feed.pull_per_author` posts are pulled by every read of a follower (BIG_ACCOUNT ∩ FOLLOWS).
"""

from __future__ import annotations

from resolvers.edge_data import big_until, feed_edge_data
from resolvers.feed import big_accounts
from resolvers.feed.activity import DAY_MS
from resolvers.feed.fanout import post_time
from resolvers.job_context import JobContext
from resolvers.records import Post, record_of
from tao import Tao
from tao.models import now_ms

BACKFILL_JOB = "feed.backfill"


def on_relationship_added(viewer: int, author: int) -> list[tuple[str, dict]]:
    """Jobs to commit with a follow, an approved request or an unmute by `viewer` of `author`."""
    return [(BACKFILL_JOB, {"viewer": viewer, "author": author})]


async def shows_author(tao: Tao, viewer: int, author: int) -> bool:
    """Whether `viewer`'s feed shows `author`'s posts now: a follow, no mute, no block either way.

    Reads the primary edges (FOLLOWS, MUTES and BLOCKS on the viewer's shard, the author's BLOCKS
    on theirs), each committed in the same transaction as the job of the write that changed it,
    so a job always sees the write that caused it (an inverse edge might lag)."""
    keys = [(viewer, "FOLLOWS", author), (viewer, "MUTES", author), (viewer, "BLOCKS", author),
            (author, "BLOCKS", viewer)]
    found = await tao.assoc_get_many(keys)
    follows, *shut = (found.get(k) for k in keys)
    return follows is not None and all(e is None for e in shut)


async def backfill_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    s = job.settings.feed
    viewer, author = payload["viewer"], payload["author"]
    if s.backfill_posts <= 0 or not await shows_author(tao, viewer, author):
        return
    big = await big_accounts.big_edge(tao, author)
    if big is not None and big_until(big.data) is None:
        return  # pulled at read time: nothing to store
    low = now_ms() - int(s.window_days * DAY_MS)
    # AUTHORED is ordered by creation; a post published later (media processing) may sit a little
    # further down, so read a margin and cut by publish time below.
    recent = await tao.assoc_time_range(author, "AUTHORED", low=low, limit=2 * s.backfill_posts)
    posts = [record_of(o) for o in (await tao.obj_get([e.id2 for e in recent])).values()]
    shown = sorted((p for p in posts if isinstance(p, Post) and p.is_visible and p.author == author
                    and post_time(p) >= low),
                   key=lambda p: (post_time(p), p.id), reverse=True)[:s.backfill_posts]
    if not shown:
        return
    have = await tao.assoc_get(viewer, "FEED", [p.id for p in shown])
    missing = [p for p in shown if p.id not in have]
    if not missing:
        return
    await tao.assoc_add_many([(viewer, "FEED", p.id, post_time(p), feed_edge_data(author, p.kind.value))
                              for p in missing])
    if not await shows_author(tao, viewer, author):  # ended while we wrote: take back what we wrote
        for p in missing:
            await tao.assoc_delete(viewer, "FEED", p.id)
