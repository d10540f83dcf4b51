"""The follow graph: follow, follow requests, unfollow, block, mute, and the lists they form.

Edges (all written on the actor's side; the store mirrors each inverse on the other user's shard):
  viewer -FOLLOWS-> user            viewer -FOLLOW_REQUESTED-> private user (pending)
  viewer -BLOCKS-> user             viewer -MUTES-> user
Invariants: a follow and a pending request never coexist for one pair (approving changes the
request's type atomically); a block removes follows and requests both ways, and while it stands
neither can follow the other. Who may *see* whom is decided in `resolvers.privacy`, not here.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from resolvers import privacy, realtime
from resolvers.block_cleanup import on_block
from resolvers.errors import PermissionDeniedError, UserError
from resolvers.feed.backfill import on_relationship_added
from resolvers.feed.removal import on_relationship_removed
from resolvers.pagination import Cursor, Page, check_first, load_assoc_page, make_page
from resolvers.records import User, record_of
from tao import Tao, TaoError

if TYPE_CHECKING:
    from resolvers.context import RequestContext

# How many of the viewer's newest followings "followed by people you follow" looks through. A page
# of N users costs N x this many edge lookups (one batched call), so keep it modest.
MUTUAL_SCAN_LIMIT = 200


class FollowErrorCode(enum.Enum):
    USER_NOT_FOUND = "USER_NOT_FOUND"
    CANNOT_TARGET_SELF = "CANNOT_TARGET_SELF"
    BLOCKED = "BLOCKED"
    REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"


class FollowStatus(enum.Enum):
    NONE = "NONE"
    REQUESTED = "REQUESTED"
    FOLLOWING = "FOLLOWING"


def _not_found(field: str = "userId") -> UserError:
    return UserError(FollowErrorCode.USER_NOT_FOUND, "No such user: check the id.", field)


async def _edges(ctx: RequestContext, a: int, b: int, *atypes: str) -> dict[str, bool]:
    found = await ctx.loaders.assoc_by_key.load_many([(a, t, b) for t in atypes])
    return {t: e is not None for t, e in zip(atypes, found)}


async def _other_user(ctx: RequestContext, user_id: int) -> tuple[int, User]:
    """The viewer and the target user, refusing the viewer themself; USER_NOT_FOUND when the
    target does not exist for the viewer (`privacy.addressable_user`: missing, deleted, or
    blocking the viewer alike, so no mutation reveals a block)."""
    viewer = ctx.require_viewer()
    if user_id == viewer:
        raise UserError(FollowErrorCode.CANNOT_TARGET_SELF, "You cannot do this to your own account.", "userId")
    obj = await privacy.addressable_user(ctx, user_id)
    if obj is None:
        raise _not_found()
    return viewer, obj


async def do_follow(ctx: RequestContext, user_id: int) -> FollowStatus:
    """Follow a public account at once; ask to follow a private one. Idempotent."""
    viewer, target = await _other_user(ctx, user_id)  # a block by the target: USER_NOT_FOUND
    e = await _edges(ctx, viewer, user_id, "BLOCKS", "FOLLOWS", "FOLLOW_REQUESTED")
    if e["BLOCKS"]:
        raise UserError(FollowErrorCode.BLOCKED, "You block this account: unblock it first.", "userId")
    if e["FOLLOWS"]:
        return FollowStatus.FOLLOWING
    if e["FOLLOW_REQUESTED"]:
        return FollowStatus.REQUESTED
    # The followed user's stream hears of it (resolvers.realtime): durable with the edge.
    kind = realtime.KIND_FOLLOW_REQUEST if target.is_private else realtime.KIND_NEW_FOLLOWER
    event = realtime.stream_event(ctx.tao, [user_id], kind, {"user": viewer}, near=viewer)
    if target.is_private:
        await ctx.tao.assoc_add(viewer, "FOLLOW_REQUESTED", user_id, jobs=[event.job])
        status = FollowStatus.REQUESTED
    else:
        # The job stores the account's recent posts in the viewer's feed (committed with the follow).
        await ctx.tao.assoc_add(viewer, "FOLLOWS", user_id, jobs=[*on_relationship_added(viewer, user_id), event.job])
        status = FollowStatus.FOLLOWING
    await event.deliver(ctx.tao)
    ctx.loaders.forget_edges((viewer, "FOLLOWS", user_id), (viewer, "FOLLOW_REQUESTED", user_id))
    return status


async def do_unfollow(ctx: RequestContext, user_id: int) -> FollowStatus:
    """Stop following, or withdraw a pending request. Idempotent."""
    viewer, _ = await _other_user(ctx, user_id)
    # The feed filters the author's posts at read time at once; the job (committed only if the
    # follow existed) removes them from the stored FEED list.
    await ctx.tao.assoc_delete(viewer, "FOLLOWS", user_id, jobs=on_relationship_removed(viewer, user_id))
    await ctx.tao.assoc_delete(viewer, "FOLLOW_REQUESTED", user_id)
    ctx.loaders.forget_edges((viewer, "FOLLOWS", user_id), (viewer, "FOLLOW_REQUESTED", user_id))
    return FollowStatus.NONE


async def _pending_request(ctx: RequestContext, requester_id: int) -> int:
    viewer, _ = await _other_user(ctx, requester_id)
    e = await _edges(ctx, viewer, requester_id, "FOLLOW_REQUESTED_BY")
    if not e["FOLLOW_REQUESTED_BY"]:
        raise UserError(FollowErrorCode.REQUEST_NOT_FOUND, "This user has no pending request to follow you.", "userId")
    return viewer


async def do_approve_follow_request(ctx: RequestContext, requester_id: int) -> None:
    viewer = await _pending_request(ctx, requester_id)
    await ctx.tao.assoc_change_type(requester_id, "FOLLOW_REQUESTED", viewer, "FOLLOWS",
                                    jobs=on_relationship_added(requester_id, viewer))
    ctx.loaders.forget_edges((requester_id, "FOLLOW_REQUESTED", viewer), (requester_id, "FOLLOWS", viewer))


async def do_reject_follow_request(ctx: RequestContext, requester_id: int) -> None:
    viewer = await _pending_request(ctx, requester_id)
    await ctx.tao.assoc_delete(requester_id, "FOLLOW_REQUESTED", viewer)
    ctx.loaders.forget_edges((requester_id, "FOLLOW_REQUESTED", viewer))


_SEVERED_BY_BLOCK = ("FOLLOWS", "FOLLOW_REQUESTED", "CLOSE_FRIEND")


async def do_block(ctx: RequestContext, user_id: int) -> None:
    """Block: the two users vanish from each other everywhere, and follows both ways end."""
    viewer, _ = await _other_user(ctx, user_id)
    # The block first, so the pair is hidden from each other before the follows are removed.
    # Its jobs: both feeds lose the other's posts; the blocked's likes and comments leave the viewer's posts.
    await ctx.tao.assoc_add(viewer, "BLOCKS", user_id, jobs=on_relationship_removed(viewer, user_id)
                            + on_relationship_removed(user_id, viewer) + on_block(viewer, user_id))
    for atype in _SEVERED_BY_BLOCK:
        await ctx.tao.assoc_delete(viewer, atype, user_id)
        await ctx.tao.assoc_delete(user_id, atype, viewer)
    ctx.loaders.forget_edges((viewer, "BLOCKS", user_id),
                             *[(a, t, b) for t in _SEVERED_BY_BLOCK for a, b in ((viewer, user_id), (user_id, viewer))])


async def do_unblock(ctx: RequestContext, user_id: int) -> None:
    viewer, _ = await _other_user(ctx, user_id)
    await ctx.tao.assoc_delete(viewer, "BLOCKS", user_id)
    ctx.loaders.forget_edges((viewer, "BLOCKS", user_id))


async def do_mute(ctx: RequestContext, user_id: int) -> None:
    """Mute: the user's posts and stories leave the viewer's feed; nothing else changes."""
    viewer, _ = await _other_user(ctx, user_id)
    if await privacy.user_visibility(ctx, user_id) == privacy.Visibility.HIDDEN:
        raise _not_found()
    await ctx.tao.assoc_add(viewer, "MUTES", user_id, jobs=on_relationship_removed(viewer, user_id))
    ctx.loaders.forget_edges((viewer, "MUTES", user_id))


async def do_unmute(ctx: RequestContext, user_id: int) -> None:
    viewer, _ = await _other_user(ctx, user_id)
    # Committed only if the mute existed: the job brings the author's recent posts back.
    await ctx.tao.assoc_delete(viewer, "MUTES", user_id, jobs=on_relationship_added(viewer, user_id))
    ctx.loaders.forget_edges((viewer, "MUTES", user_id))


# Reads ------------------------------------------------------------------------------------

async def _user_page(ctx: RequestContext, id1: int, atype: str, first: int, after: Cursor | None,
                     *, hide_invisible: bool = True) -> Page[User]:
    assocs, has_next = await load_assoc_page(ctx, id1, atype, first, after)
    ids = [a.id2 for a in assocs]
    if hide_invisible:
        users = await privacy.visible_users(ctx, ids)
    else:
        users = [u for u in await ctx.loaders.object_by_id.load_many(ids) if isinstance(u, User)]
    return make_page(assocs, has_next, {u.id: u for u in users}, after)


async def followers(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    await privacy.require_full_access(ctx, user_id, "followers")
    return await _user_page(ctx, user_id, "FOLLOWED_BY", first, after)


async def following(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    await privacy.require_full_access(ctx, user_id, "following")
    return await _user_page(ctx, user_id, "FOLLOWS", first, after)


def _require_self(ctx: RequestContext, user_id: int, what: str) -> None:
    if ctx.require_viewer() != user_id:
        raise PermissionDeniedError(f"Only the account itself can see its {what}.")


async def follow_requests(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    """Pending requests to follow the viewer, newest first."""
    _require_self(ctx, user_id, "follow requests")
    return await _user_page(ctx, user_id, "FOLLOW_REQUESTED_BY", first, after)


async def blocked_users(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    # The viewer's own block list shows the blocked (they are hidden everywhere else).
    _require_self(ctx, user_id, "blocked accounts")
    return await _user_page(ctx, user_id, "BLOCKS", first, after, hide_invisible=False)


async def muted_users(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    _require_self(ctx, user_id, "muted accounts")
    return await _user_page(ctx, user_id, "MUTES", first, after)


async def _viewer_edge(ctx: RequestContext, atype: str, user_id: int) -> bool:
    viewer = ctx.viewer_id
    if viewer is None or viewer == user_id:
        return False
    return await ctx.loaders.assoc_by_key.load((viewer, atype, user_id)) is not None


async def viewer_follow_status(ctx: RequestContext, user_id: int) -> FollowStatus:
    if await _viewer_edge(ctx, "FOLLOWS", user_id):
        return FollowStatus.FOLLOWING
    if await _viewer_edge(ctx, "FOLLOW_REQUESTED", user_id):
        return FollowStatus.REQUESTED
    return FollowStatus.NONE


async def viewer_follows(ctx: RequestContext, user_id: int) -> bool:
    return await _viewer_edge(ctx, "FOLLOWS", user_id)


async def follows_viewer(ctx: RequestContext, user_id: int) -> bool:
    return await _viewer_edge(ctx, "FOLLOWED_BY", user_id)


async def viewer_blocks(ctx: RequestContext, user_id: int) -> bool:
    return await _viewer_edge(ctx, "BLOCKS", user_id)


async def viewer_mutes(ctx: RequestContext, user_id: int) -> bool:
    return await _viewer_edge(ctx, "MUTES", user_id)


async def has_requested_to_follow_viewer(ctx: RequestContext, user_id: int) -> bool:
    return await _viewer_edge(ctx, "FOLLOW_REQUESTED_BY", user_id)


async def followed_by_viewer_following(ctx: RequestContext, user_id: int, first: int) -> tuple[int, list[User]]:
    """"Followed by A, B and N others you follow": (how many, the first `first` of them).

    Looks through the viewer's newest MUTUAL_SCAN_LIMIT followings; every user in a list asks
    the same page (cached by the loader) and its (user, FOLLOWED_BY, f) edges live on the
    user's shard, so a page of users costs one batched `assoc_get_many` in all. It lists the
    user's followers, so it follows `followers`' rule: FORBIDDEN unless the viewer sees the
    user FULL (else the count would be a membership test on a private account's followers).
    """
    check_first(ctx, first)
    await privacy.require_full_access(ctx, user_id, "followers")
    viewer = ctx.viewer_id
    if viewer is None or viewer == user_id:
        return 0, []
    mine = await ctx.loaders.assoc_page_by_key.load((viewer, "FOLLOWS", MUTUAL_SCAN_LIMIT, None))
    candidates = [a.id2 for a in mine if a.id2 != user_id]
    edges = await ctx.loaders.assoc_by_key.load_many([(user_id, "FOLLOWED_BY", f) for f in candidates])
    mutual = [f for f, e in zip(candidates, edges) if e is not None]
    shown = await privacy.visible_users(ctx, mutual[:first]) if first > 0 else []
    return len(mutual), shown


# Jobs ---------------------------------------------------------------------------------------

async def approve_pending_requests_job(tao: Tao, payload: dict) -> None:
    """After an account goes public: turn every pending request into a follow. Idempotent."""
    user_id = payload["user_id"]
    while True:
        obj = (await tao.obj_get([user_id])).get(user_id)
        user = record_of(obj) if obj is not None else None
        if not isinstance(user, User) or user.is_private:
            return  # deleted, or private again: the remaining requests stay pending
        pending = await tao.assoc_range(user_id, "FOLLOW_REQUESTED_BY", 0, 200)
        if not pending:
            return
        for a in pending:
            try:
                await tao.assoc_change_type(a.id2, "FOLLOW_REQUESTED", user_id, "FOLLOWS",
                                            jobs=on_relationship_added(a.id2, user_id))
            except TaoError:
                # Withdrawn meanwhile: drop the (stale) inverse edge so the loop ends.
                await tao.assoc_delete(a.id2, "FOLLOW_REQUESTED", user_id)
