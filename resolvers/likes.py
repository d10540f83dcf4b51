"""Likes of posts and of comments.

Edges: viewer -LIKES-> post (⇄ LIKED_BY: the post's likers, newest first, and its exact
`likeCount`, which leaves out the likes of accounts pending deletion as `likers` does:
`resolvers.dormant`); viewer -COMMENT_LIKES-> comment (⇄ COMMENT_LIKED_BY). The viewer's side is on the
viewer's shard, so `viewerHasLiked` for a page of N posts is one batched `assoc_get` on one shard.

Invariants: liking and unliking are idempotent (a second like keeps the first like's time and
changes no count); only visible objects can be liked; a like of something deleted later is
removed by the delete's cleanup job (and hidden by privacy meanwhile), and a like racing the
delete either is found by that job or finds the delete itself and takes itself back (`_like`);
and, for the cases neither sees (the like's inverse sync failed, so the cleanup, which drains the
target's likers, missed it; or its re-read of the target hit a cache not yet told of the delete,
or block lists not yet told of the post author's block), every like commits `likes.settle` with
its edge, due `SETTLE_DELAY_MS` later (`settle_job`): it removes a like of a target gone, or of a
post (or a comment on a post) whose author blocks the liker, as that block's cleanup would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.comments import get_comment
from resolvers.comments import not_found as comment_not_found
from resolvers.dormant import net_counts
from resolvers.edge_data import like_data
from resolvers.job_context import JobContext
from resolvers.loaders import load_each
from resolvers.notifications import causes, record
from resolvers.pagination import Cursor, Page, load_assoc_page, make_page
from resolvers.posts import get_post, not_found
from resolvers.records import Comment, Post, Record, User, record_of
from tao import ConflictError, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext


# A like's notification jobs: `notice(at, undo)` for a like made (or, with undo, removed) at `at`.
Notice = Callable[[int, bool], list[tuple[str, dict]]]

SETTLE_JOB = "likes.settle"
# Past the inverse sync's first retries and any cache's window of staleness after a delete (ms).
SETTLE_DELAY_MS = 60_000
_INVERSE = {"LIKES": "LIKED_BY", "COMMENT_LIKES": "COMMENT_LIKED_BY"}


async def _set_like(ctx: RequestContext, atype: str, target: int, on: bool, data: dict | None = None,
                    notice: Notice | None = None) -> bool:
    """Like or unlike; returns whether this call wrote the change (False: it was so already)."""
    viewer = ctx.require_viewer()
    key = (viewer, atype, target)
    edge = await ctx.loaders.assoc_by_key.load(key)
    # The notification is recorded (or retracted) right after the commit; the job committed with
    # the edge is the fallback if this process dies first (resolvers/notifications/record.py).
    if on and edge is None:
        at = now_ms()  # the edge's time is the notification's window: the undo finds it by this time
        prompt = record.promptly(ctx.tao, notice(at, False) if notice else [], near=viewer)
        settle = (SETTLE_JOB, {"liker": viewer, "atype": atype, "target": target}, SETTLE_DELAY_MS)
        await ctx.tao.assoc_add(viewer, atype, target, time=at, data=data, jobs=[*prompt.jobs, settle])
    elif not on and edge is not None:
        prompt = record.promptly(ctx.tao, notice(edge.time, True) if notice else [], near=viewer)
        if not await ctx.tao.assoc_delete(viewer, atype, target, jobs=prompt.jobs):
            return False  # a concurrent unlike won: its jobs, not ours, committed
    else:
        return False
    await prompt.deliver(ctx.tao)
    return True


async def _like(tao: Tao, actor_id: int, atype: str, target: int, data: dict | None, notice: Notice,
                visible: Callable[[RequestContext, int], Awaitable[object]]) -> bool:
    """Like `target`, which the caller found visible. Returns False when the target went (or was
    hidden from the actor) while the like was being written: the like is then taken back.

    A like races the target's delete: it reads the post visible, the delete commits, and its
    cleanup job drains the likes before this like commits; the like then stayed for good (an
    edge on a deleted post in the liker's list and counts, and its inverse). So, once the like
    (and its inverse) is written, the target is read again, through fresh loaders: gone, the
    like is undone here; still there, the delete commits after that read and its cleanup, after
    the delete, finds the like (the same for a block's removal of the blocked user's likes)."""
    if not await _set_like(acting_as(tao, actor_id), atype, target, True, data, notice):
        return True  # liked already (before any delete: the cleanup finds it)
    if await visible(acting_as(tao, actor_id), target) is not None:
        return True
    await _set_like(acting_as(tao, actor_id), atype, target, False, notice=notice)
    return False


async def settle_job(job: JobContext, payload: dict) -> None:
    """`likes.settle`, committed with every like: a like of a target gone since is removed (with
    its inverse), and so is a like the liker may not keep because the target's post's author
    blocks them (a block removes the blocked user's likes of the blocker's posts and of the
    comments on them: `resolvers.block_cleanup`; the notification is retracted as by an unlike).
    The like's own re-read (`_like`) and the delete's (or block's) cleanup miss one whose inverse
    sync failed (the cleanup drains the target's likers: it was not listed yet), or whose re-read
    was answered by a cache or a block list (the block's inverse, on the liker's shard) not yet
    told of the change; this job, committed with the edge, cannot be lost to either. Until the
    like's inverse is there, the target's cleanup could still miss it: the job runs again (a
    ConflictError is retried) rather than settle before."""
    tao, liker, atype, target = job.tao, int(payload["liker"]), payload["atype"], int(payload["target"])
    edge = (await tao.assoc_get(liker, atype, [target])).get(target)
    if edge is None:
        return  # unliked, or already removed
    obj = (await tao.obj_get([target], fresh=True)).get(target)  # SQL's: a cache may be behind the delete
    if obj is None:
        await tao.assoc_delete(liker, atype, target)
        return
    notice = await _blocked_by_owner(tao, liker, record_of(obj))
    if notice is not None:
        await tao.assoc_delete(liker, atype, target, jobs=notice(edge.time, True))
        return
    if not await tao.assoc_get(target, _INVERSE[atype], [liker]):
        raise ConflictError(f"{atype} {liker}->{target}: its inverse is not synced yet; settling later")


async def _blocked_by_owner(tao: Tao, liker: int, target: Record) -> Notice | None:
    """The like's notice when the author of the post the target is (or is on) blocks the liker:
    the block's rule removes that like (`block_cleanup`); None when the liker may keep it. Read on
    the author's shard (the BLOCKS edge itself, not the liker's inverse that may lag)."""
    if isinstance(target, Post):
        post: Record | None = target
    elif isinstance(target, Comment):
        found = (await tao.obj_get([target.post])).get(target.post)
        post = record_of(found) if found is not None else None  # gone: its cleanup takes the comment
    else:
        return None
    if not isinstance(post, Post) or post.author == liker or not await tao.assoc_get(post.author, "BLOCKS", [liker]):
        return None
    return _post_notice(liker, target) if isinstance(target, Post) else _comment_notice(liker, target)


def _post_notice(actor: int, post: Post) -> Notice:
    return lambda at, undo: causes.like_post(actor, post.id, post.author, at, undo=undo)


def _comment_notice(actor: int, comment: Comment) -> Notice:
    return lambda at, undo: causes.like_comment(actor, comment.id, comment.author, comment.post, at, undo=undo)


async def do_like_post(tao: Tao, actor_id: int, post_id: int) -> Post:
    ctx = acting_as(tao, actor_id)
    post = await get_post(ctx, post_id)
    if post is None:
        raise not_found()
    if not await _like(tao, actor_id, "LIKES", post_id, like_data(post), _post_notice(actor_id, post), get_post):
        raise not_found()  # deleted (or hidden) while the like was written: taken back
    return post


async def do_unlike_post(tao: Tao, actor_id: int, post_id: int) -> Post:
    ctx = acting_as(tao, actor_id)
    post = await get_post(ctx, post_id)
    if post is None:
        raise not_found()  # a deleted post's likes are the delete's cleanup job's to remove
    await _set_like(ctx, "LIKES", post_id, False, notice=_post_notice(actor_id, post))
    return post


async def do_like_comment(tao: Tao, actor_id: int, comment_id: int) -> Comment:
    ctx = acting_as(tao, actor_id)
    comment = await get_comment(ctx, comment_id)
    if comment is None:
        raise comment_not_found()
    if not await _like(tao, actor_id, "COMMENT_LIKES", comment_id, None, _comment_notice(actor_id, comment),
                       get_comment):
        raise comment_not_found()
    return comment


async def do_unlike_comment(tao: Tao, actor_id: int, comment_id: int) -> Comment:
    ctx = acting_as(tao, actor_id)
    comment = await get_comment(ctx, comment_id)
    if comment is None:
        raise comment_not_found()
    await _set_like(ctx, "COMMENT_LIKES", comment_id, False, notice=_comment_notice(actor_id, comment))
    return comment


# Reads ------------------------------------------------------------------------------------

async def like_count(ctx: RequestContext, post_id: int) -> int:
    return _plain((await like_counts(ctx, [post_id]))[0])


async def comment_like_count(ctx: RequestContext, comment_id: int) -> int:
    return _plain((await comment_like_counts(ctx, [comment_id]))[0])


def _plain(n: int | BaseException) -> int:
    if isinstance(n, BaseException):
        raise n
    return n


async def _viewer_edge(ctx: RequestContext, atype: str, target: int) -> bool:
    if ctx.viewer_id is None:
        return False
    return await ctx.loaders.assoc_by_key.load((ctx.viewer_id, atype, target)) is not None


async def viewer_has_liked(ctx: RequestContext, post_id: int) -> bool:
    return await _viewer_edge(ctx, "LIKES", post_id)


# Batch forms, for a page's builder (schema/prefetch.py): one answer per id, an exception where
# that id's load failed (its field then resolves, and reports the error, on its own).

async def like_counts(ctx: RequestContext, post_ids: list[int]) -> list[int | BaseException]:
    """The likes, minus those of accounts pending deletion (hidden from `likers`: resolvers.dormant)."""
    return await net_counts(ctx, [(p, "LIKED_BY") for p in post_ids])


async def comment_like_counts(ctx: RequestContext, comment_ids: list[int]) -> list[int | BaseException]:
    return await net_counts(ctx, [(c, "COMMENT_LIKED_BY") for c in comment_ids])


async def _viewer_edges(ctx: RequestContext, atype: str, targets: list[int]) -> list[bool | BaseException]:
    if ctx.viewer_id is None:
        return [False] * len(targets)
    found = await load_each(ctx.loaders.assoc_by_key, [(ctx.viewer_id, atype, t) for t in targets])
    return [f if isinstance(f, BaseException) else f is not None for f in found]


async def viewer_has_liked_many(ctx: RequestContext, post_ids: list[int]) -> list[bool | BaseException]:
    return await _viewer_edges(ctx, "LIKES", post_ids)


async def viewer_has_liked_comments(ctx: RequestContext, comment_ids: list[int]) -> list[bool | BaseException]:
    return await _viewer_edges(ctx, "COMMENT_LIKES", comment_ids)


async def viewer_has_liked_comment(ctx: RequestContext, comment_id: int) -> bool:
    return await _viewer_edge(ctx, "COMMENT_LIKES", comment_id)


async def likers(ctx: RequestContext, post_id: int, first: int, after: Cursor | None) -> Page[User]:
    """Who liked the post, newest like first, minus accounts hidden from the viewer."""
    assocs, has_next = await load_assoc_page(ctx, post_id, "LIKED_BY", first, after)
    users = await privacy.visible_users(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {u.id: u for u in users}, after)
