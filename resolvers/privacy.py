"""Privacy, decided once: what a viewer may see of a user, and of any object.

Every surface (a user field, a list of users, `node(id:)`, a mutation that names a user) asks
here; nothing else reads block, follow or private-account state to decide visibility.

Rules for a user, as seen by the viewer:
- HIDDEN: the user does not exist for the viewer: deleted or deactivated (account deletion
  requested, resolvers.account_data), or either of them blocks the other.
  A hidden user is indistinguishable from a missing one (never "you are blocked").
- LIMITED: a private account the viewer does not follow: the profile header (names, bio,
  picture, counts) but not its lists (followers, following, posts).
- FULL: everything: the viewer themself, a public account, or a private one they follow.

An object other than a user is visible when the rule registered for its type says so
(`register_object_rule`); types without a rule are never visible through generic surfaces
such as `node(id:)` (deny by default). Batching: a page of N users costs one `obj_get`, one read
of the viewer's two block lists (whole, when short; else one `assoc_get` of the edges to those
users) and, for the private accounts among them, one `assoc_get` of the viewer's follows: all
the viewer's edges live on the viewer's shard, whatever N is.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from resolvers.errors import PermissionDeniedError
from resolvers.loaders import load_each
from resolvers.records import Comment, Post, Record, User

if TYPE_CHECKING:
    from resolvers.context import RequestContext
    from resolvers.loaders import Loaders


class Visibility(enum.IntEnum):
    HIDDEN = 0
    LIMITED = 1
    FULL = 2


# The viewer's edges that decide visibility; all are on the viewer's shard.
_BLOCKS, _BLOCKED_BY, _FOLLOWS = "BLOCKS", "BLOCKED_BY", "FOLLOWS"


# The viewer's block lists are read whole (two cached lists on the viewer's shard) when they are
# shorter than this; longer, the edges to the users in question are read one by one.
BLOCK_LIST_SCAN = 100


def _block_list_keys(viewer: int) -> list[tuple[int, str, int, None]]:
    """The page-loader keys of the viewer's two block lists (`_viewer_blocks` reads them,
    `prefetch_visibility` queues them: one definition, so the prefetch cannot drift)."""
    return [(viewer, atype, BLOCK_LIST_SCAN, None) for atype in (_BLOCKS, _BLOCKED_BY)]


async def _viewer_blocks(loaders: Loaders, viewer: int, others: list[int]) -> dict[int, bool | BaseException]:
    """For each of `others`: whether the viewer blocks them or they block the viewer (or the error
    that kept us from knowing). A page names ~50 users: two list reads instead of 100 edge reads."""
    pages = await load_each(loaders.assoc_page_by_key, _block_list_keys(viewer))
    out: dict[int, bool | BaseException] = dict.fromkeys(others, False)
    for atype, page in zip((_BLOCKS, _BLOCKED_BY), pages):
        if isinstance(page, BaseException):
            return dict.fromkeys(others, page)
        if len(page) < BLOCK_LIST_SCAN:
            blocked = {a.id2 for a in page}
            found: list[Any] = [u in blocked for u in others]
        else:  # a long list: the edges to these users alone
            found = await load_each(loaders.assoc_by_key, [(viewer, atype, u) for u in others])
        for u, f in zip(others, found):
            if out[u] is not True and not isinstance(out[u], BaseException):
                out[u] = f if isinstance(f, BaseException) else bool(f)
    return out


async def user_visibility_batch(loaders: Loaders, user_ids: list[int]) -> list[Visibility | BaseException]:
    """The batch function behind `VisibilityByUserIdLoader`."""
    viewer = loaders.viewer_id
    others = list(dict.fromkeys(u for u in user_ids if u != viewer))
    # The users and the viewer's block lists load together: one round. A user whose shard (or
    # the viewer's) is down fails alone: its error is its answer.
    if viewer is not None and others:
        objs, blocks = await asyncio.gather(load_each(loaders.object_by_id, user_ids),
                                            _viewer_blocks(loaders, viewer, others))
    else:
        objs, blocks = await load_each(loaders.object_by_id, user_ids), {}
    # Following matters only for a private account neither side blocks: those edges alone, after.
    private = [u for u, o in zip(user_ids, objs) if u != viewer and isinstance(o, User) and o.is_private
               and blocks.get(u) is False]
    follows: dict[int, Any] = {}
    if viewer is not None and private:
        private = list(dict.fromkeys(private))
        follows = dict(zip(private, await load_each(loaders.assoc_by_key, [(viewer, _FOLLOWS, u) for u in private])))
    out: list[Visibility | BaseException] = []
    for uid, obj in zip(user_ids, objs):
        blocked = blocks.get(uid, False)
        followed = follows.get(uid)
        failed = next((e for e in (obj, blocked, followed) if isinstance(e, BaseException)), None)
        if failed is not None:
            out.append(failed)
        elif not isinstance(obj, User) or obj.deactivated:  # deletion requested: gone for everyone
            out.append(Visibility.HIDDEN)
        elif uid == viewer:
            out.append(Visibility.FULL)
        elif blocked:
            out.append(Visibility.HIDDEN)
        elif not obj.is_private:
            out.append(Visibility.FULL)
        elif viewer is not None and followed:
            out.append(Visibility.FULL)
        else:
            out.append(Visibility.LIMITED)
    return out


def prefetch_visibility(ctx: RequestContext, user_ids: Iterable[int]) -> None:
    """Queue the reads a `user_visibility` of these users makes (the users, the viewer's block
    lists) into the request's coming batch, for a caller that knows them before the check
    comes (its loader runs a couple of event-loop turns after the reads around it, so its
    reads would go in a round trip of their own). A private account's follow edge, read only
    when needed, is not among them."""
    loaders = ctx.loaders
    loaders.object_by_id.prefetch(list(user_ids))
    viewer = ctx.viewer_id
    if viewer is not None:
        loaders.assoc_page_by_key.prefetch(_block_list_keys(viewer))


async def blocked_either_way(ctx: RequestContext) -> set[int]:
    """Every user the viewer blocks or who blocks the viewer: the two lists whole (their cached
    heads, the ones `user_visibility` reads; a longer list is read on from the store)."""
    viewer = ctx.viewer_id
    if viewer is None:
        return set()
    out: set[int] = set()
    pages = await ctx.loaders.assoc_page_by_key.load_many(_block_list_keys(viewer))
    for atype, page in zip((_BLOCKS, _BLOCKED_BY), pages):
        out |= {a.id2 for a in page}
        pos = len(page)
        while pos >= BLOCK_LIST_SCAN and (more := await ctx.tao.assoc_range(viewer, atype, pos, 1000)):
            out |= {a.id2 for a in more}
            pos += len(more)
            if len(more) < 1000:
                break
    return out


async def user_visibility(ctx: RequestContext, user_id: int) -> Visibility:
    return await ctx.loaders.visibility_by_user_id.load(user_id)


async def visible_user_ids(ctx: RequestContext, user_ids: Iterable[int]) -> list[int]:
    """The ids, in order, minus those hidden from the viewer."""
    ids = list(user_ids)
    seen = await ctx.loaders.visibility_by_user_id.load_many(ids)
    return [u for u, v in zip(ids, seen) if v != Visibility.HIDDEN]


async def visible_users(ctx: RequestContext, user_ids: Iterable[int]) -> list[User]:
    """The user objects, in order, that the viewer may see at all."""
    ids = await visible_user_ids(ctx, user_ids)
    return [o for o in await ctx.loaders.object_by_id.load_many(ids) if o is not None]


async def addressable_user(ctx: RequestContext, user_id: int) -> User | None:
    """The user a mutation by the viewer names, or None when it does not exist *for the viewer*.

    None for a missing or deleted id, a non-user, and a user who blocks the viewer: every
    mutation that takes a user id asks here first, so a blocked viewer gets the same answer
    (`USER_NOT_FOUND`) as for an id of nobody and cannot learn that the block exists. The
    viewer's own block does not hide the user from this lookup: the blocker knows of it and must
    be able to undo it (the mutation then decides, e.g. `follow` says "unblock first").
    """
    viewer = ctx.require_viewer()
    # Both in one tick, so they batch into one cache round trip.
    obj, blocked_by = await asyncio.gather(ctx.loaders.object_by_id.load(user_id),
                                           ctx.loaders.assoc_by_key.load((viewer, _BLOCKED_BY, user_id)))
    if not isinstance(obj, User) or obj.deactivated or blocked_by is not None:
        return None
    return obj


async def require_full_access(ctx: RequestContext, user_id: int, what: str) -> None:
    """Raise a top-level FORBIDDEN unless the viewer may see the user's `what` (a list)."""
    if await user_visibility(ctx, user_id) != Visibility.FULL:
        raise PermissionDeniedError(
            f"This account is private: follow it and wait for approval to see its {what}."
        )


ObjectRule = Callable[["RequestContext", Any], Awaitable[bool]]
_OBJECT_RULES: dict[str, ObjectRule] = {}


def register_object_rule(otype: str, rule: ObjectRule) -> None:
    """Declare who may see objects of `otype` (each domain registers its own, at import)."""
    _OBJECT_RULES[otype] = rule


async def can_see_object(ctx: RequestContext, obj: Record) -> bool:
    rule = _OBJECT_RULES.get(obj.otype)
    return rule is not None and await rule(ctx, obj)


async def load_visible_object(ctx: RequestContext, obj_id: int) -> Any:
    """The object if it exists and the viewer may see it, else None (the two are indistinguishable)."""
    obj = await ctx.loaders.object_by_id.load(obj_id)
    if obj is None or not await can_see_object(ctx, obj):
        return None
    return obj


async def owner_visible(ctx: RequestContext, owner_id: int) -> bool:
    """The rule for content owned by a user (posts, comments, stories build on it)."""
    return await user_visibility(ctx, owner_id) == Visibility.FULL


async def _user_rule(ctx: RequestContext, obj: User) -> bool:
    return await user_visibility(ctx, obj.id) != Visibility.HIDDEN


register_object_rule("USER", _user_rule)


# Content: posts, comments, hashtags, locations (the posts domain's rules) -------------------
#
# A post is visible to its author always, and to anyone else when it is published
# (`PostStatus.VISIBLE`, not still processing its media) and its author is FULL to them
# (public, or private and followed; never across a block). A comment is visible when its post
# is and its author is not HIDDEN from the viewer (a private account's comment on a public post
# shows; a blocked or deleted commenter's does not), and a reply when the comment it replies to
# is too. A hashtag or location exists for a viewer
# only through its posts (`listing_visible`).
# All of it batches: a page of posts or comments costs one `obj_get` plus the authors'
# visibility (itself batched), whatever its length. The rules are written for many objects at
# once (one `load_many` per step, no task per object); the one-object forms ask them for one.

async def _visibility_of(ctx: RequestContext, user_ids: Iterable[int]) -> dict[int, Visibility]:
    ids = list(dict.fromkeys(user_ids))
    return dict(zip(ids, await ctx.loaders.visibility_by_user_id.load_many(ids)))


async def posts_visible(ctx: RequestContext, posts: list[Record | None]) -> list[bool]:
    viewer = ctx.viewer_id
    shown = [p for p in posts if isinstance(p, Post) and p.author != viewer and p.is_visible]
    authors = await _visibility_of(ctx, (p.author for p in shown))
    return [isinstance(p, Post) and (p.author == viewer or (p.is_visible and authors[p.author] == Visibility.FULL))
            for p in posts]


async def comments_visible(ctx: RequestContext, comments: list[Record | None]) -> list[bool]:
    mine = [c for c in comments if isinstance(c, Comment)]
    post_ids = list(dict.fromkeys(c.post for c in mine))
    parent_ids = list(dict.fromkeys(c.reply_to for c in mine if c.reply_to))
    # The posts, the commenters' visibility and the replied-to comments in the same tick: they
    # batch into one round trip (a page of replies has its parent loaded already).
    posts, authors, parent_objs = await asyncio.gather(ctx.loaders.object_by_id.load_many(post_ids),
                                                       _visibility_of(ctx, (c.author for c in mine)),
                                                       ctx.loaders.object_by_id.load_many(parent_ids))
    parents = {p.id: p for p in parent_objs if isinstance(p, Comment)}
    if unknown := [p.author for p in parents.values() if p.author not in authors]:
        authors |= await _visibility_of(ctx, unknown)
    post_ok = dict(zip(post_ids, await posts_visible(ctx, posts)))
    post_author = {p.id: p.author for p in posts if isinstance(p, Post)}

    def alone(c: Comment) -> bool:
        # A restricted account's comment awaiting approval: its author's (and the approver's) only.
        return (post_ok.get(c.post, False) and authors[c.author] != Visibility.HIDDEN
                and (not c.pending or ctx.viewer_id in (c.author, post_author.get(c.post))))
    # A reply is as hidden as the comment it replies to (a top-level one, on the same post): the
    # post author's reply to a comment awaiting approval answered node(id:) to anyone (found by
    # the counts session's probe). A reply whose comment is gone goes with it (its cleanup job).
    return [isinstance(c, Comment) and alone(c)
            and (not c.reply_to or (c.reply_to in parents and alone(parents[c.reply_to])))
            for c in comments]


async def post_visible(ctx: RequestContext, post: Record) -> bool:
    return (await posts_visible(ctx, [post]))[0]


async def comment_visible(ctx: RequestContext, comment: Record) -> bool:
    return (await comments_visible(ctx, [comment]))[0]


async def _visible_of(ctx: RequestContext, ids: Iterable[int],
                      rule: Callable[[RequestContext, list[Any]], Awaitable[list[bool]]]) -> list[Any]:
    objs = [o for o in await ctx.loaders.object_by_id.load_many(list(ids)) if o is not None]
    return [o for o, ok in zip(objs, await rule(ctx, objs)) if ok]


async def visible_posts(ctx: RequestContext, post_ids: Iterable[int]) -> list[Post]:
    """The posts, in order, that exist and the viewer may see."""
    return await _visible_of(ctx, post_ids, posts_visible)


async def visible_comments(ctx: RequestContext, comment_ids: Iterable[int]) -> list[Comment]:
    """The comments, in order, that exist and the viewer may see."""
    return await _visible_of(ctx, comment_ids, comments_visible)


# How many of a hashtag's or location's newest posts a viewer's check looks through when it has
# no public post: a page of N such objects costs one list read and one batch of N x this posts.
LISTING_SCAN = 20


def listing_visible(public_atype: str, all_atype: str) -> ObjectRule:
    """The rule for an object that is a list of posts (a hashtag, a location): visible when it
    has a public post (its `public_atype` count, the same for everyone), else when one of its
    newest LISTING_SCAN posts is visible to the viewer (their own, or a followed private
    account's). So a tag or place used only by private accounts does not exist for strangers,
    and neither its name nor its count leaks; its `postCount` counts public posts only."""
    async def rule(ctx: RequestContext, obj: Record) -> bool:
        if await ctx.loaders.assoc_count_by_key.load((obj.id, public_atype)):
            return True
        page = await ctx.loaders.assoc_page_by_key.load((obj.id, all_atype, LISTING_SCAN, None))
        return bool(await visible_posts(ctx, [a.id2 for a in page]))
    return rule


register_object_rule("POST", post_visible)
register_object_rule("COMMENT", comment_visible)
register_object_rule("HASHTAG", listing_visible("PUBLIC_TAGS", "TAGS"))
register_object_rule("LOCATION", listing_visible("PUBLIC_LOCATION_OF", "LOCATION_OF"))
