"""Comments on posts, with replies one level deep.

A COMMENT lives on its post's shard (`owner=post`) with data {post, author, text, reply_to,
mentions}. A top-level comment is listed by post -HAS_COMMENT-> comment (⇄ COMMENT_ON); a reply
by top-level comment -HAS_REPLY-> reply (⇄ REPLY_TO). A reply to a reply attaches to its
top-level comment (`reply_to` is always a top-level comment), as on Instagram.

Orders and counts: `comments` and `replies` are newest first (TAO lists are newest-first, so a
page is one keyset read and stays stable while people comment); `commentCount` is the exact
number of top-level comments and `replyCount` that of a comment's replies (both leave out those
of accounts pending deletion, as the lists do: `resolvers.dormant`), plus, for a restricted
commenter, its own ones awaiting approval (which it sees listed as posted; nobody else counts them).

Invariants: deleting a comment commits `comments.cleanup` with the delete, and the writer
removes its edge from the parent list at once (counts stay exact); the job deletes its replies,
likes and mention edges. A comment racing the delete of its post (or of the comment it replies
to) never stays: once listed it reads them again and takes itself back if one went, and the
`comments.settle` job committed with its listing does the same a minute later from SQL, for a
re-read (or a cleanup's drain) answered by a cache not yet told of the delete. Who may see a
comment is `resolvers.privacy.comment_visible`.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.dormant import COMMENT_TALLY, net_counts
from resolvers.errors import PermissionDeniedError, UserError
from resolvers.hashtags import parse_mentions
from resolvers.job_context import JobContext
from resolvers.loaders import load_each
from resolvers.notifications import causes
from resolvers.pagination import Cursor, Page, load_assoc_page, load_assoc_pages, make_page
from resolvers.posts import authors_of, drain, drop_edge, get_post, mention_ids
from resolvers.records import Comment, Post, User, record_of
from resolvers.text_rules import is_blank, text_has_controls
from tao import ConflictError, Tao, VersionConflictError

if TYPE_CHECKING:
    from resolvers.context import RequestContext

TEXT_MAX = 2200
PENDING_SCAN = 50  # pending comments looked through for the viewer's own (first page only)
CLEANUP_JOB = "comments.cleanup"
SETTLE_JOB = "comments.settle"
# As a like's `likes.settle`: past any cache's window of staleness after a delete (ms).
SETTLE_DELAY_MS = 60_000
WRITE_TRIES = 5  # versioned writes of one comment before a delete gives up (each loser re-read it)
DRAIN_PENDING = 200  # a post's pending comments read per page by a deleted comment's cleanup


class CommentErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    POST_NOT_FOUND = "POST_NOT_FOUND"
    REPLY_TARGET_NOT_FOUND = "REPLY_TARGET_NOT_FOUND"
    TEXT_EMPTY = "TEXT_EMPTY"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    TEXT_INVALID = "TEXT_INVALID"
    TOO_MANY_MENTIONS = "TOO_MANY_MENTIONS"
    NOT_ALLOWED = "NOT_ALLOWED"


def not_found(field: str = "commentId") -> UserError:
    return UserError(CommentErrorCode.NOT_FOUND, "No such comment: it was deleted, or you cannot see it.", field)


def _parent_edge(comment: Comment) -> tuple[int, str, int]:
    if comment.pending:
        return comment.post, "PENDING_COMMENT", comment.id
    if comment.reply_to:
        return comment.reply_to, "HAS_REPLY", comment.id
    return comment.post, "HAS_COMMENT", comment.id


async def do_add_comment(tao: Tao, actor_id: int, post_id: int, text: str, reply_to_id: int | None = None) -> Comment:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    text = text.strip()
    # Blank: a zero-width space alone posted a comment that shows as nothing (counts probe).
    if is_blank(text):
        raise UserError(CommentErrorCode.TEXT_EMPTY, "A comment needs some text.", "text")
    if len(text) > TEXT_MAX:
        raise UserError(CommentErrorCode.TEXT_TOO_LONG, f"A comment is at most {TEXT_MAX} characters.", "text")
    if text_has_controls(text):  # a terminal escape or a bell was taken as text (counts probe)
        raise UserError(CommentErrorCode.TEXT_INVALID,
                        "A comment cannot hold control characters (line breaks and tabs are fine): remove them.",
                        "text")
    post = await get_post(ctx, post_id)
    if post is None:
        raise UserError(CommentErrorCode.POST_NOT_FOUND, "No such post: it was deleted, or you cannot see it.",
                        "postId")
    top: int | None = None
    reply_to_author: int | None = None
    if reply_to_id is not None:
        target = await get_comment(ctx, reply_to_id)
        if target is None or target.post != post_id:
            raise UserError(CommentErrorCode.REPLY_TARGET_NOT_FOUND,
                            "`replyToId` must be a visible comment on the same post.", "replyToId")
        top = target.reply_to or target.id  # one level deep
        reply_to_author = target.author
    mentions = await mention_ids(ctx, parse_mentions(text), "text", CommentErrorCode.TOO_MANY_MENTIONS)
    # The post's author restricts the commenter: the comment waits for approval, unannounced.
    pending = viewer != post.author and await ctx.loaders.assoc_by_key.load(
        (post.author, "RESTRICTS", viewer)) is not None
    comment_id = await tao.obj_add("COMMENT", {
        "post": post_id, "author": viewer, "text": text, "reply_to": top, "mentions": mentions,
    } | ({"pending": True} if pending else {}), owner=post_id)
    comment: Comment = record_of((await tao.obj_get([comment_id]))[comment_id])
    id1, atype, _ = _parent_edge(comment)
    settle = settle_jobs(comment_id, post.author, reply_to_author)
    if pending:
        await tao.assoc_add(id1, atype, comment_id, time=comment.created, jobs=settle)  # no notification until approved
    else:
        # Its notifications commit with the edge that lists it.
        await tao.assoc_add(id1, atype, comment_id, time=comment.created, jobs=settle + causes.comment(
            viewer, comment_id, post_id, post.author, reply_to_author, mentions, comment.created))
        if mentions:
            await tao.assoc_add_many([(comment_id, "MENTIONS", u, comment.created) for u in mentions])
    if not await _still_there(tao, viewer, post_id, reply_to_id):
        await _take_back(tao, comment, post.author, reply_to_author, mentions)
        if reply_to_id is not None and await get_post(acting_as(tao, viewer), post_id) is not None:
            raise UserError(CommentErrorCode.REPLY_TARGET_NOT_FOUND,
                            "`replyToId` must be a visible comment on the same post.", "replyToId")
        raise UserError(CommentErrorCode.POST_NOT_FOUND, "No such post: it was deleted, or you cannot see it.",
                        "postId")
    return comment


def settle_jobs(comment_id: int, post_author: int, reply_to_author: int | None) -> list[tuple]:
    """`comments.settle` for the write that lists a comment (its add, its approval), due
    `SETTLE_DELAY_MS` later (`settle_job`)."""
    return [(SETTLE_JOB, {"comment": comment_id, "post_author": post_author, "reply_to_author": reply_to_author},
             SETTLE_DELAY_MS)]


async def settle_job(job: JobContext, payload: dict) -> None:
    """`comments.settle`, committed with a comment's listing: a comment whose post (or the comment
    it replies to) is gone is deleted as a delete would (`_take_back`: its cleanup and its
    notifications' retraction commit with the object's delete). The comment's own re-read
    (`_still_there`) may be answered by a cache not yet told of the delete (after a memcached
    fault), and the delete's cleanup drains the list it was not in yet, or reads a list the cache
    had not been told of it in: the comment stayed, for good. The reads here are SQL's (`fresh`),
    which also puts the cache right. Idempotent: a comment gone already, or whose post is there,
    is left alone."""
    tao, cid = job.tao, int(payload["comment"])
    obj = (await tao.obj_get([cid], fresh=True)).get(cid)
    comment = record_of(obj) if obj is not None else None
    if not isinstance(comment, Comment):
        return  # deleted: its own cleanup job was committed with its delete
    parents = [comment.post, *([comment.reply_to] if comment.reply_to else [])]
    found = await tao.obj_get(parents, fresh=True)
    if all(p in found for p in parents):
        return  # there: a delete after this read drains the lists the comment is in (they are SQL's by now)
    assert obj is not None
    mentions = [int(u) for u in obj.data.get("mentions") or []]
    reply_to_author = payload.get("reply_to_author")
    await _take_back(tao, comment, int(payload["post_author"]),
                     int(reply_to_author) if reply_to_author is not None else None, mentions)


async def _still_there(tao: Tao, viewer: int, post_id: int, reply_to_id: int | None) -> bool:
    """Whether the post (and the comment replied to) are still there for the commenter, read
    through fresh loaders once the comment is listed. A comment racing its post's delete (or
    its parent comment's) was listed after the delete's cleanup had drained the list, and stayed:
    a comment object and its edge on a deleted object. Now, still there, the delete commits after
    this read and its cleanup finds the comment; gone, the comment takes itself back."""
    ctx = acting_as(tao, viewer)
    post, parent = await asyncio.gather(get_post(ctx, post_id),
                                        get_comment(ctx, reply_to_id) if reply_to_id is not None else _none())
    return post is not None and (reply_to_id is None or parent is not None)


async def _none() -> None:
    return None


async def _take_back(tao: Tao, comment: Comment, post_author: int, reply_to_author: int | None,
                     mentions: list[int]) -> None:
    """Delete a comment just written whose post (or parent) went meanwhile, as a delete does:
    its cleanup and its notifications' retraction commit with the object's delete."""
    id1, atype, _ = _parent_edge(comment)
    retract = [] if comment.pending else causes.comment(comment.author, comment.id, comment.post, post_author,
                                                         reply_to_author, mentions, comment.created, undo=True)
    await tao.obj_delete(comment.id, jobs=[(CLEANUP_JOB, {"comment": comment.id, "parent": id1, "atype": atype}),
                                           *retract])
    await _drop_parent_edge(tao, id1, atype, comment.id)


async def do_delete_comment(tao: Tao, actor_id: int, comment_id: int) -> Comment:
    """Delete a comment (by its author or the post's author) and, by a job, its replies and likes."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    comment = await get_comment(ctx, comment_id)
    if comment is None:
        raise not_found()
    post = await ctx.loaders.object_by_id.load(comment.post)
    if viewer != comment.author and (not isinstance(post, Post) or viewer != post.author):
        raise UserError(CommentErrorCode.NOT_ALLOWED,
                        "Only the comment's author or the post's author can delete a comment.", "commentId")
    reply_to_author = None
    if comment.reply_to:
        parent = await ctx.loaders.object_by_id.load(comment.reply_to)
        reply_to_author = parent.author if isinstance(parent, Comment) else None
    mentions = [a.id2 for a in await tao.assoc_range(comment_id, "MENTIONS", 0, 100)]
    for _ in range(WRITE_TRIES):
        id1, atype, _ = _parent_edge(comment)
        retract = causes.comment(comment.author, comment_id, comment.post,
                                 post.author if isinstance(post, Post) else 0, reply_to_author, mentions,
                                 comment.created, undo=True)
        # One durable unit: the job (committed with the delete) also removes the parent edge, so a
        # crash before the next line cannot leave a count that includes a deleted comment. At the
        # version read: an approval in between moved the comment to another list (below).
        try:
            await tao.obj_delete(comment_id, version=comment.version,
                                 jobs=[(CLEANUP_JOB, {"comment": comment_id, "parent": id1, "atype": atype}), *retract])
        except VersionConflictError as lost:
            if lost.current is None:
                raise not_found() from None  # deleted by a concurrent delete
            comment = record_of(lost.current)
            continue
        await tao.assoc_delete(id1, atype, comment_id)
        return comment
    raise ConflictError(f"comment {comment_id} kept changing; try again")


# Reads ------------------------------------------------------------------------------------

async def get_comment(ctx: RequestContext, comment_id: int) -> Comment | None:
    obj = await privacy.load_visible_object(ctx, comment_id)
    return obj if isinstance(obj, Comment) else None


async def comment_count(ctx: RequestContext, post_id: int) -> int:
    """The post's top-level comments; a restricted commenter's own ones awaiting approval count
    for it (it sees them listed as posted), for nobody else."""
    return _plain((await comment_counts(ctx, [post_id]))[0])


async def reply_count(ctx: RequestContext, comment: Comment) -> int:
    """The comment's replies; a restricted replier's own ones awaiting approval count for it."""
    return _plain((await reply_counts(ctx, [comment]))[0])


def _plain(n: int | BaseException) -> int:
    if isinstance(n, BaseException):
        raise n
    return n


async def _page(ctx: RequestContext, id1: int, atype: str, first: int, after: Cursor | None) -> Page[Comment]:
    assocs, has_next = await load_assoc_page(ctx, id1, atype, first, after)
    shown = await privacy.visible_comments(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {c.id: c for c in shown}, after)


async def comments(ctx: RequestContext, post_id: int, first: int, after: Cursor | None) -> Page[Comment]:
    """Top-level comments, newest first, minus those hidden from the viewer; on the first page, a
    restricted commenter also sees their own comments awaiting approval, first (as if posted)."""
    page = await _page(ctx, post_id, "HAS_COMMENT", first, after)
    page.items = [((c.created, c.id), c) for c in await _own_pending(ctx, post_id, after)] + page.items
    return page


async def _own_pending(ctx: RequestContext, post_id: int, after: Cursor | None) -> list[Comment]:
    """The viewer's own top-level comments on the post awaiting approval (first page only)."""
    return (await _own_pending_many(ctx, [post_id], after))[0]


async def _own_pending_many(ctx: RequestContext, post_ids: list[int], after: Cursor | None) -> list[list[Comment]]:
    """`_own_pending` for many posts at once: one batch of lists, one privacy check."""
    if after is not None:
        return [[] for _ in post_ids]
    return [[c for c in mine if not c.reply_to] for mine in await _own_waiting_many(ctx, post_ids)]


async def _own_waiting_many(ctx: RequestContext, post_ids: list[int]) -> list[list[Comment]]:
    """The viewer's own comments and replies awaiting approval on each post, newest first, among
    the post's PENDING_SCAN newest pending ones: what the first pages of `comments` and `replies`
    show it, and what its counts add (one definition, so list and count agree). One batch of
    lists (a list with nothing pending is one cached empty list), one privacy check."""
    if ctx.viewer_id is None or not post_ids:
        return [[] for _ in post_ids]
    waiting = await load_each(ctx.loaders.assoc_page_by_key, [(p, "PENDING_COMMENT", PENDING_SCAN, None)
                                                             for p in post_ids])
    ids = [a.id2 for page in waiting if not isinstance(page, BaseException) for a in page]
    if not ids:
        return [[] for _ in post_ids]
    mine = {c.id: c for c in await privacy.visible_comments(ctx, ids) if c.author == ctx.viewer_id}
    return [[] if isinstance(page, BaseException) else [mine[a.id2] for a in page if a.id2 in mine]
            for page in waiting]


async def pending_comments(ctx: RequestContext, post_id: int, first: int, after: Cursor | None) -> Page[Comment]:
    """Comments by restricted accounts awaiting the post author's approval (the author only)."""
    viewer = ctx.require_viewer()
    post = await get_post(ctx, post_id)
    if post is None or post.author != viewer:
        raise PermissionDeniedError("Only the post's author sees comments awaiting approval.")
    return await _page(ctx, post_id, "PENDING_COMMENT", first, after)


async def do_approve_comment(tao: Tao, actor_id: int, comment_id: int) -> Comment:
    """The post's author approves a restricted account's comment: it joins the post's comments
    (or its thread) for everyone, and its notifications go out now. Idempotent."""
    ctx = acting_as(tao, actor_id)
    comment = await get_comment(ctx, comment_id)
    if comment is None:
        raise not_found()
    post = await ctx.loaders.object_by_id.load(comment.post)
    if not isinstance(post, Post) or post.author != actor_id:
        raise UserError(CommentErrorCode.NOT_ALLOWED, "Only the post's author can approve a comment.", "commentId")
    # At the version read, as a delete is: an approval racing a delete added the comment to the
    # post's list after the delete had removed it from the pending one, a counted edge to nothing
    # (commentCount 1 over no comment: found by the fifteenth session's counts probe).
    for _ in range(WRITE_TRIES):
        if not comment.pending:
            return comment  # approved already (by a concurrent approval, maybe)
        try:
            obj = await tao.obj_update(comment_id, {"pending": None}, version=comment.version)
            break
        except VersionConflictError as lost:
            if lost.current is None:
                raise not_found() from None
            comment = record_of(lost.current)
    else:
        raise ConflictError(f"comment {comment_id} kept changing; try again")
    approved: Comment = record_of(obj)
    id1, atype, _ = _parent_edge(approved)
    reply_to_author = None
    if approved.reply_to:
        parent = await ctx.loaders.object_by_id.load(approved.reply_to)
        reply_to_author = parent.author if isinstance(parent, Comment) else None
    mentions = list(obj.data.get("mentions", []))
    await tao.assoc_add(id1, atype, comment_id, time=approved.created, jobs=[
        *settle_jobs(comment_id, post.author, reply_to_author),
        *causes.comment(approved.author, comment_id, approved.post, post.author, reply_to_author, mentions,
                        approved.created)])
    await tao.assoc_delete(approved.post, "PENDING_COMMENT", comment_id)
    if (await tao.obj_get([comment_id])).get(comment_id) is None:
        # Deleted since the approval's write: the delete read it approved and removes this edge
        # after its own write, unless it ran before the edge was added; then it is ours to remove.
        await _drop_parent_edge(tao, id1, atype, comment_id)
    return approved


async def replies(ctx: RequestContext, comment: Comment, first: int, after: Cursor | None) -> Page[Comment]:
    """A comment's replies, newest first; on the first page, a restricted replier also sees their
    own replies awaiting approval, first (as if posted), as `comments` shows their comments. (A
    restricted account's reply vanished from the thread for its own author: it told them they
    were restricted; found by probe4.)"""
    page = await _page(ctx, comment.id, "HAS_REPLY", first, after)
    if after is None and not comment.reply_to:
        # The post's pending list is the one `comments` reads for the viewer's own: one load.
        mine = [c for c in (await _own_waiting_many(ctx, [comment.post]))[0] if c.reply_to == comment.id]
        page.items = [((c.created, c.id), c) for c in mine] + page.items
    return page


async def comment_author(ctx: RequestContext, comment: Comment) -> User | None:
    user = await ctx.loaders.object_by_id.load(comment.author)
    return user if isinstance(user, User) else None


# Batch forms, for a page's builder (schema/prefetch.py): one answer per item, an exception where
# that item's load failed.

async def comment_counts(ctx: RequestContext, post_ids: list[int]) -> list[int | BaseException]:
    """`comment_count` of many posts: the counts and the viewer's own pending in one tick (one
    cache round trip; a second only where something of the viewer's may be pending)."""
    counts, own = await asyncio.gather(net_counts(ctx, [(p, "HAS_COMMENT") for p in post_ids]),
                                       _own_waiting_many(ctx, post_ids))
    return [n if isinstance(n, BaseException) else n + sum(1 for c in mine if not c.reply_to)
            for n, mine in zip(counts, own)]


async def reply_counts(ctx: RequestContext, comments: list[Comment]) -> list[int | BaseException]:
    """`reply_count` of many comments (a page's, mostly of one post: one pending list)."""
    post_ids = list(dict.fromkeys(c.post for c in comments if not c.reply_to))
    counts, own = await asyncio.gather(net_counts(ctx, [(c.id, "HAS_REPLY") for c in comments]),
                                       _own_waiting_many(ctx, post_ids))
    replies_to: dict[int, int] = {}
    for mine in own:
        for c in mine:
            if c.reply_to:
                replies_to[c.reply_to] = replies_to.get(c.reply_to, 0) + 1
    return [n if isinstance(n, BaseException) else n + replies_to.get(c.id, 0) for n, c in zip(counts, comments)]


async def comment_authors(ctx: RequestContext, comments: list[Comment]) -> list[User | None | BaseException]:
    return authors_of(await load_each(ctx.loaders.object_by_id, [c.author for c in comments]))


async def comment_pages(ctx: RequestContext, post_ids: list[int], first: int, after: Cursor | None
                        ) -> list[Page[Comment] | BaseException]:
    """`comments` of many posts at once: one batch of list pages, one privacy check of all their comments."""
    pages = await load_assoc_pages(ctx, post_ids, "HAS_COMMENT", first, after)
    read = [p for p in pages if not isinstance(p, BaseException)]
    shown = {c.id: c for c in await privacy.visible_comments(ctx, [a.id2 for assocs, _ in read for a in assocs])}
    own = await _own_pending_many(ctx, post_ids, after)
    out: list[Page[Comment] | BaseException] = []
    for p, mine in zip(pages, own):
        if isinstance(p, BaseException):
            out.append(p)
            continue
        page = make_page(p[0], p[1], shown, after)
        page.items = [((c.created, c.id), c) for c in mine] + page.items
        out.append(page)
    return out


async def comment_post(ctx: RequestContext, comment: Comment) -> Post | None:
    return await get_post(ctx, comment.post)


# Jobs --------------------------------------------------------------------------------------

async def delete_comment_tree(tao: Tao, comment_id: int, parent: int, parent_atype: str) -> None:
    """Delete a comment and everything hanging off it, then its parent edge. Idempotent."""
    await tao.obj_delete(comment_id)
    await _clean_up(tao, comment_id)
    await _drop_pending_replies(tao, parent, parent_atype, comment_id)
    await _drop_parent_edge(tao, parent, parent_atype, comment_id)


async def _drop_pending_replies(tao: Tao, parent: int, atype: str, comment_id: int) -> None:
    """A deleted top-level comment's replies awaiting approval: they are listed by the post's
    PENDING_COMMENT, not by the comment's HAS_REPLY, so the drain of its replies missed them
    and they stayed, orphans in the post's pending list, until the post went (found by the
    fifteenth session's counts probe). The pending list is short (it waits for one person)."""
    if atype not in ("HAS_COMMENT", "PENDING_COMMENT"):
        return  # a reply: nothing replies to a reply (replies attach to the top-level comment)
    waiting: list[int] = []
    pos = 0
    while page := await tao.assoc_range(parent, "PENDING_COMMENT", pos, DRAIN_PENDING):
        objs = await tao.obj_get([a.id2 for a in page])
        waiting += [i for i, o in objs.items() if o.data.get("reply_to") == comment_id]
        pos += len(page)
    for rid in waiting:
        await delete_comment_tree(tao, rid, parent, "PENDING_COMMENT")


async def _drop_parent_edge(tao: Tao, parent: int, atype: str, comment_id: int) -> None:
    """The parent's edge to a deleted comment, and its tally if its author is pending deletion
    (the purge deletes such comments: resolvers.dormant)."""
    await tao.assoc_delete(parent, atype, comment_id)
    if atype in COMMENT_TALLY:
        await tao.assoc_delete(parent, COMMENT_TALLY[atype], comment_id)


async def cleanup_job(job: JobContext, payload: dict) -> None:
    """After a comment's delete: its replies, likes and mention edges go, and its parent's edge
    to it (the delete removes that at once too; this is the repair if it could not)."""
    cid = int(payload["comment"])
    await _clean_up(job.tao, cid)
    if payload.get("parent") and (await job.tao.obj_get([cid])).get(cid) is None:
        await _drop_pending_replies(job.tao, int(payload["parent"]), str(payload["atype"]), cid)
        await _drop_parent_edge(job.tao, int(payload["parent"]), str(payload["atype"]), cid)


async def _clean_up(tao: Tao, cid: int) -> None:
    if (await tao.obj_get([cid])).get(cid) is not None:
        return  # a stale job for a comment that exists: nothing to clean
    await drain(tao, cid, "HAS_REPLY", lambda a: delete_comment_tree(tao, a.id2, cid, "HAS_REPLY"))
    await drain(tao, cid, "COMMENT_LIKED_BY", lambda a: tao.assoc_delete(a.id2, "COMMENT_LIKES", cid))
    await drain(tao, cid, "MENTIONS", lambda a: tao.assoc_delete(cid, "MENTIONS", a.id2))
    for tally in ("DORMANT_COMMENT_LIKER", "DORMANT_REPLY"):  # on it (resolvers.dormant)
        await drain(tao, cid, tally, functools.partial(drop_edge, tao))
