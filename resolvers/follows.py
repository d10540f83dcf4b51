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
from resolvers.actor import acting_as
from resolvers.block_cleanup import on_block
from resolvers.errors import UserError
from resolvers.feed.backfill import on_relationship_added
from resolvers.feed.removal import on_relationship_removed
from resolvers.notifications import causes
from resolvers.pagination import Cursor, Page, check_first, load_assoc_page, make_page
from resolvers.records import User, record_of
from resolvers.search.indexer import LISTING_DELAY_MS, index_jobs
from tao import Tao, TaoError, shard_of
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext
    from resolvers.job_context import JobContext

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


# Actions: `do_<verb>_<noun>(tao, actor_id, user_id)`, each one durable unit ----------------

async def do_follow_user(tao: Tao, actor_id: int, user_id: int) -> FollowStatus:
    """Follow a public account at once; ask to follow a private one. Idempotent."""
    ctx = acting_as(tao, actor_id)
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
    event = realtime.stream_event(tao, [user_id], kind, {"user": viewer}, near=viewer)
    at = now_ms()  # the edge's time: its notification's window, which the undo finds by it
    if target.is_private:
        await tao.assoc_add(viewer, "FOLLOW_REQUESTED", user_id, time=at,
                            jobs=[event.job, *causes.follow_request(viewer, user_id, at)])
        status = FollowStatus.REQUESTED
    else:
        # The job stores the account's recent posts in the viewer's feed (committed with the follow).
        await tao.assoc_add(viewer, "FOLLOWS", user_id, time=at,
                            jobs=[*on_relationship_added(viewer, user_id), event.job,
                                  *causes.follow(viewer, user_id, at)])
        status = FollowStatus.FOLLOWING
    # A block racing the follow: it committed after the reads above, and its sever ran before
    # this edge was written, so the follow stayed across the block (the pair's counts took it in,
    # and an unblock brought it back). Read again, now that the edge is written: a block there,
    # the edge goes (a block committed later severs it itself).
    now = await _edges(acting_as(tao, actor_id), viewer, user_id, "BLOCKS", "BLOCKED_BY")
    if now["BLOCKS"] or now["BLOCKED_BY"]:
        await sever_blocked(tao, viewer, user_id)
        await sever_blocked(tao, user_id, viewer)
        await event.deliver(tao)  # its builder finds no follow: announced to no one
        if now["BLOCKS"]:
            raise UserError(FollowErrorCode.BLOCKED, "You block this account: unblock it first.", "userId")
        raise _not_found()
    await event.deliver(tao)
    return status


async def do_unfollow_user(tao: Tao, actor_id: int, user_id: int) -> FollowStatus:
    """Stop following, or withdraw a pending request. Idempotent."""
    viewer, _ = await _other_user(acting_as(tao, actor_id), user_id)
    edges = await tao.assoc_get_many([(viewer, "FOLLOWS", user_id), (viewer, "FOLLOW_REQUESTED", user_id)])
    follow, request = edges[(viewer, "FOLLOWS", user_id)], edges[(viewer, "FOLLOW_REQUESTED", user_id)]
    # The feed filters the author's posts at read time at once; the job (committed only if the
    # follow existed) removes them from the stored FEED list.
    await tao.assoc_delete(viewer, "FOLLOWS", user_id, jobs=[
        *on_relationship_removed(viewer, user_id),
        *(causes.follow(viewer, user_id, follow.time, undo=True) if follow is not None else [])])
    await tao.assoc_delete(viewer, "FOLLOW_REQUESTED", user_id,
                           jobs=causes.follow_request(viewer, user_id, request.time, undo=True) if request else None)
    return FollowStatus.NONE


async def _pending_request(ctx: RequestContext, requester_id: int) -> tuple[int, int]:
    """The viewer and the time of the requester's pending request to follow them."""
    viewer, _ = await _other_user(ctx, requester_id)
    edge = await ctx.loaders.assoc_by_key.load((viewer, "FOLLOW_REQUESTED_BY", requester_id))
    if edge is None:
        raise UserError(FollowErrorCode.REQUEST_NOT_FOUND, "This user has no pending request to follow you.", "userId")
    return viewer, edge.time


async def do_approve_follow_request(tao: Tao, actor_id: int, requester_id: int) -> None:
    viewer, requested_at = await _pending_request(acting_as(tao, actor_id), requester_id)
    await tao.assoc_change_type(requester_id, "FOLLOW_REQUESTED", viewer, "FOLLOWS",
                                jobs=[*on_relationship_added(requester_id, viewer),
                                      *causes.follow_accepted(viewer, requester_id, requested_at, now_ms())])


async def do_reject_follow_request(tao: Tao, actor_id: int, requester_id: int) -> None:
    viewer, requested_at = await _pending_request(acting_as(tao, actor_id), requester_id)
    await tao.assoc_delete(requester_id, "FOLLOW_REQUESTED", viewer,
                           jobs=causes.follow_request(requester_id, viewer, requested_at, undo=True))


# The edges a block ends, both ways.
SEVERED_BY_BLOCK = ("FOLLOWS", "FOLLOW_REQUESTED", "CLOSE_FRIEND")
SEVER_JOB = "follows.sever_blocked"
# The sever job is done by the blocker's call right after the commit; the row only matters if
# that call dies first, so it comes due this much later (the worker then does it instead).
SEVER_GRACE_MS = 10_000


async def sever_blocked(tao: Tao, blocker: int, blocked: int) -> None:
    """End follows, follow requests and close-friend edges both ways between the pair.

    Idempotent (each is an `assoc_delete`, which keeps its count exact, and a second run finds
    nothing), and a no-op once the block is lifted: what the pair did after the unblock stays."""
    if not await tao.assoc_get(blocker, "BLOCKS", [blocked]):
        return
    for atype in SEVERED_BY_BLOCK:
        await tao.assoc_delete(blocker, atype, blocked)
        await tao.assoc_delete(blocked, atype, blocker)


async def do_block_user(tao: Tao, actor_id: int, user_id: int) -> None:
    """Block: the two users vanish from each other everywhere, and follows both ways end.

    One durable unit: the BLOCKS edge commits in one transaction with every job that carries
    out its consequences: severing the follows both ways (`SEVER_JOB`, done here at once as
    well, so the caller reads its own write), both feeds losing the other's posts, and the
    blocked user's likes and comments leaving the blocker's posts. A crash after the commit
    leaves the jobs to a worker; the block is never half done."""
    viewer, _ = await _other_user(acting_as(tao, actor_id), user_id)
    sever_id = tao.ids.next_id(shard_of(viewer))  # its row is on the blocker's shard, with the edge
    jobs: list[tuple] = [(SEVER_JOB, {"blocker": viewer, "blocked": user_id}, SEVER_GRACE_MS, sever_id),
                         *on_relationship_removed(viewer, user_id), *on_relationship_removed(user_id, viewer),
                         *on_block(viewer, user_id),
                         # Search: both accounts' follower counts change once the follows are severed.
                         *index_jobs(tao, [("user", viewer), ("user", user_id)], delay_ms=LISTING_DELAY_MS)]
    # The block first, so the pair is hidden from each other before the follows are removed.
    await tao.assoc_add(viewer, "BLOCKS", user_id, jobs=jobs)
    await sever_blocked(tao, viewer, user_id)
    await tao.outbox.delete(shard_of(viewer), sever_id)  # done; should this fail, the job runs again, harmlessly


async def do_unblock_user(tao: Tao, actor_id: int, user_id: int) -> None:
    viewer, _ = await _other_user(acting_as(tao, actor_id), user_id)
    await tao.assoc_delete(viewer, "BLOCKS", user_id)


async def do_mute_user(tao: Tao, actor_id: int, user_id: int) -> None:
    """Mute: the user's posts leave the viewer's feed; nothing else changes (stories have their own mute)."""
    ctx = acting_as(tao, actor_id)
    viewer, _ = await _other_user(ctx, user_id)
    if await privacy.user_visibility(ctx, user_id) == privacy.Visibility.HIDDEN:
        raise _not_found()
    await tao.assoc_add(viewer, "MUTES", user_id, jobs=on_relationship_removed(viewer, user_id))


async def do_unmute_user(tao: Tao, actor_id: int, user_id: int) -> None:
    viewer, _ = await _other_user(acting_as(tao, actor_id), user_id)
    # Committed only if the mute existed: the job brings the author's recent posts back.
    await tao.assoc_delete(viewer, "MUTES", user_id, jobs=on_relationship_added(viewer, user_id))


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


async def follow_requests(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    """Pending requests to follow the viewer, newest first."""
    ctx.require_self(user_id, "follow requests")
    return await _user_page(ctx, user_id, "FOLLOW_REQUESTED_BY", first, after)


async def blocked_users(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    # The viewer's own block list shows the blocked (they are hidden everywhere else).
    ctx.require_self(user_id, "blocked accounts")
    return await _user_page(ctx, user_id, "BLOCKS", first, after, hide_invisible=False)


async def muted_users(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[User]:
    ctx.require_self(user_id, "muted accounts")
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

async def sever_blocked_job(job: JobContext, payload: dict) -> None:
    """`follows.sever_blocked`: the follows a block ends, when its caller did not finish."""
    await sever_blocked(job.tao, int(payload["blocker"]), int(payload["blocked"]))


async def approve_pending_requests_job(job: JobContext, payload: dict) -> None:
    """After an account goes public: turn every pending request into a follow. Idempotent."""
    tao, user_id = job.tao, payload["user_id"]
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
