"""Counts without the accounts pending deletion: the tallies that keep `likeCount`,
`commentCount` and `replyCount` equal to the lists they count.

An account that asked to be deleted is HIDDEN to everyone at once (`resolvers.privacy`), and so
are its likes and comments in every list; its edges stay until the purge, after the grace
period, and a log-in within it brings everything back. Instagram hides a deactivated account's
likes and comments from the counts too, so while its deletion is pending each of its
engagements is tallied on the object it counts toward:

  post -DORMANT_LIKER-> user (⇄ DORMANT_LIKED)                     its like of the post
  comment -DORMANT_COMMENT_LIKER-> user (⇄ DORMANT_COMMENT_LIKED)  its like of the comment
  followed -DORMANT_FOLLOWER-> user (⇄ DORMANT_FOLLOWER_OF)         its follow of `followed`
  follower -DORMANT_FOLLOWEE-> user (⇄ DORMANT_FOLLOWEE_OF)         `follower`'s follow of it
  post -DORMANT_COMMENT-> comment                                  its listed top-level comment
  comment -DORMANT_REPLY-> reply                                   its listed reply
  user -DORMANT_COMMENTS-> comment (data: the tally's id1, atype)  what a cancel un-tallies

and a count is its list's count minus its tally's (`net_counts`: both cached counts of the same
id1, read in the same batch: one more key per object in the same round trip, no list read).

Invariant: once the writes settle, an account's tallies exist exactly while its deletion is
pending and its purge has not started. `sync` (the `dormant.sync` job, committed with the
deletion request and with its cancellation, as `posts.sync_author_edges` is) makes them follow
the account's state, then reads the state again and redoes its work if it moved (a cancel racing
the request); from the purge's first batch on, the purge owns them. Deleting a comment (the
comments purge does) removes its tally with it, and a post's or comment's cleanup the tallies on
it; the `dormant_tallies` kind removes the rest after the likes kind (between the two, in the
same purge run, a like already gone is still subtracted), and before the `inbound` kind.
Counts of a *blocked* account's items are a different matter and stay: a block hides the
other's items from the two accounts alone, while a count is one number for everyone
(docs/accounts.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from resolvers.account_data.registry import DataContext, DataKind, register_kind
from resolvers.job_context import JobContext
from resolvers.loaders import load_each
from resolvers.records import Comment, record_of
from tao import ConflictError, Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

SYNC_JOB = "dormant.sync"
PAGE = 500
SYNC_ROUNDS = 5
MAX_PAGES = 10_000  # pages of tallies one sync removes before it leaves the rest to a retry
COMMENT_SCAN = 1_000_000  # comments one scan finds (as the export's)

# (the account's list, the tally on the other end of each of its edges, the tally's inverse on
# the account): its likes, and its follows both ways (`followerCount` and `followingCount`
# leave it out as `followers` and `following` do; they counted it until the purge before the
# sixteenth session's `privacy` branch)
LIKE_TALLIES = (("LIKES", "DORMANT_LIKER", "DORMANT_LIKED"),
                ("COMMENT_LIKES", "DORMANT_COMMENT_LIKER", "DORMANT_COMMENT_LIKED"),
                ("FOLLOWS", "DORMANT_FOLLOWER", "DORMANT_FOLLOWER_OF"),
                ("FOLLOWED_BY", "DORMANT_FOLLOWEE", "DORMANT_FOLLOWEE_OF"))
# A listed comment's list -> its tally on the same id1.
COMMENT_TALLY = {"HAS_COMMENT": "DORMANT_COMMENT", "HAS_REPLY": "DORMANT_REPLY"}
# A counted list -> the tally subtracted from its count.
TALLY_OF = {"LIKED_BY": "DORMANT_LIKER", "COMMENT_LIKED_BY": "DORMANT_COMMENT_LIKER",
            "FOLLOWED_BY": "DORMANT_FOLLOWER", "FOLLOWS": "DORMANT_FOLLOWEE", **COMMENT_TALLY}


def sync_jobs(user_id: int) -> list[tuple[str, dict]]:
    """The job to commit with a write that starts or ends an account's pending deletion."""
    return [(SYNC_JOB, {"user": user_id})]


async def net_counts(ctx: RequestContext, keys: list[tuple[int, str]]) -> list[int | BaseException]:
    """The counts of these lists minus their tallies (an exception where a key's load failed)."""
    found = await load_each(ctx.loaders.assoc_count_by_key, keys + [(i, TALLY_OF[t]) for i, t in keys])
    out: list[int | BaseException] = []
    for total, hidden in zip(found[:len(keys)], found[len(keys):]):
        failed = next((x for x in (total, hidden) if isinstance(x, BaseException)), None)
        out.append(failed if failed is not None else max(0, int(total) - int(hidden)))
    return out


async def _state(tao: Tao, user: int) -> str:
    """"pending", "active", or "gone" (no account, or its purge has started: the purge's now)."""
    obj = (await tao.obj_get([user])).get(user)
    if obj is None:
        return "gone"
    deletion = obj.data.get("deletion")
    if not deletion:
        return "active"
    return "gone" if deletion.get("kind") else "pending"


async def _add_tallies(tao: Tao, user: int) -> None:
    for atype, tally, _ in LIKE_TALLIES:
        pos = 0
        while page := await tao.assoc_range(user, atype, pos, PAGE):
            await tao.assoc_add_many([(a.id2, tally, user, a.time) for a in page])
            pos += len(page)
    ids = await tao.obj_scan_naming(user, "COMMENT", COMMENT_SCAN, field="author")
    for start in range(0, len(ids), PAGE):
        objs = await tao.obj_get(ids[start:start + PAGE])
        mine = [c for c in (record_of(o) for o in objs.values())
                if isinstance(c, Comment) and c.author == user and not c.pending]
        tallies = [(c.reply_to, "DORMANT_REPLY", c.id) if c.reply_to else (c.post, "DORMANT_COMMENT", c.id)
                   for c in mine]
        if tallies:  # the account's record of each first, so a cancel finds every tally made
            await tao.assoc_add_many([(user, "DORMANT_COMMENTS", cid, None, {"id1": id1, "atype": t})
                                      for id1, t, cid in tallies])
            await tao.assoc_add_many(tallies)


async def remove_tallies(tao: Tao, user: int, limit: int) -> int:
    """Remove up to `limit` of the account's tallies; returns how many went (0: none left)."""
    removed = 0
    for _, tally, inverse in LIKE_TALLIES:
        page = await tao.assoc_range(user, inverse, 0, limit - removed)
        for a in page:
            await tao.assoc_delete(a.id2, tally, user)
        removed += len(page)
        if removed >= limit:
            return removed
    page = await tao.assoc_range(user, "DORMANT_COMMENTS", 0, limit - removed)
    for a in page:
        await tao.assoc_delete(int(a.data["id1"]), str(a.data["atype"]), a.id2)
        await tao.assoc_delete(user, "DORMANT_COMMENTS", a.id2)
    return removed + len(page)


async def sync(tao: Tao, user: int) -> None:
    """Make the account's tallies follow its state (see the module's invariant)."""
    for _ in range(SYNC_ROUNDS):
        state = await _state(tao, user)
        if state == "gone":
            return
        if state == "pending":
            await _add_tallies(tao, user)
        else:
            for _ in range(MAX_PAGES):
                if not await remove_tallies(tao, user, PAGE):
                    break
            else:  # an inverse awaiting its repair, say: the job runs again later
                raise ConflictError(f"the tallies of {user} do not go; retrying later")
        if await _state(tao, user) == state:
            return
    raise ConflictError(f"the deletion state of {user} kept changing; the job runs again")


async def resync_pending(tao: Tao, *, page: int = 500) -> AsyncIterator[int]:
    """`sync` every account whose deletion is pending, on every shard; yields each one's id.
    Once after an upgrade that tallies more (the follows, since the sixteenth session): an
    account that asked before it has the tallies of its time only (idempotent)."""
    for shard in range(tao.n_shards):
        after = 0
        while objs := await tao.obj_scan(shard, "USER", after, page):
            after = objs[-1].id
            for obj in objs:
                deletion = obj.data.get("deletion")
                if deletion and not deletion.get("kind"):
                    await sync(tao, obj.id)
                    yield obj.id


async def sync_job(job: JobContext, payload: dict) -> None:
    await sync(job.tao, int(payload["user"]))


async def _purge(ctx: DataContext, user: int) -> int:
    return await remove_tallies(ctx.tao, user, ctx.batch)


# Bookkeeping, not the user's data: nothing to export; purged after the comments and likes it
# tallies (a sync that ran late finds nothing to tally by then), before the inbound edges.
register_kind(DataKind("dormant_tallies", "Counts' tallies while a deletion is pending", 45, {}, None, _purge))
