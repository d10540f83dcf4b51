"""Follow-graph mutations: follow, unfollow, follow requests, block, mute.

Each takes `input: { userId }` (a User's global id) and returns the target `user` (null when it
is not visible to the viewer any more, e.g. after a block) plus typed `errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry import Info

from resolvers import follows, users
from resolvers.context import RequestContext
from resolvers.throttle import Action
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.relay import from_global_id
from schema.users import FollowStatus, User

# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
FollowErrorCode = follows.FollowErrorCode
strawberry.enum(follows.FollowErrorCode)
Ctx = Info[RequestContext, None]


@strawberry.type
class FollowError(Error):
    code: FollowErrorCode
    message: str
    field: str | None


@strawberry.input(description="The account to follow (or ask to follow, if private).")
class UserFollowInput:
    user_id: strawberry.ID


@strawberry.input(description="The account to stop following, or whose pending request to withdraw.")
class UserUnfollowInput:
    user_id: strawberry.ID


@strawberry.input(description="The account whose request to follow the viewer to accept.")
class FollowRequestApproveInput:
    user_id: strawberry.ID


@strawberry.input(description="The account whose request to follow the viewer to decline.")
class FollowRequestRejectInput:
    user_id: strawberry.ID


@strawberry.input(description="The account to block.")
class UserBlockInput:
    user_id: strawberry.ID


@strawberry.input(description="The account to unblock.")
class UserUnblockInput:
    user_id: strawberry.ID


@strawberry.input(description="The account whose posts and stories to hide from the viewer's feed.")
class UserMuteInput:
    user_id: strawberry.ID


@strawberry.input(description="The account to unmute.")
class UserUnmuteInput:
    user_id: strawberry.ID


@strawberry.type(description="The result of a follow-graph mutation.")
class FollowPayload:
    user: User | None = None
    status: FollowStatus | None = strawberry.field(
        default=None, description="The viewer's follow status toward `user` afterwards.")
    errors: list[FollowError] = strawberry.field(default_factory=list)


async def _run(info: Ctx, user_global_id: str, action: Callable[..., Awaitable[Any]]) -> FollowPayload:
    ctx = info.context
    _, user_id = from_global_id(user_global_id, ctx.settings.store.logical_shards, expected="User", arg="userId")
    await action(ctx.tao, actor(info), user_id)
    obj = await users.get_user(ctx, user_id)
    return FollowPayload(
        user=User.from_record(obj) if obj is not None else None,
        status=await follows.viewer_follow_status(ctx, user_id),
    )


@strawberry.type
class FollowsMutation:
    @mutation(description="Follow a public account; for a private one, send a follow request (status REQUESTED).",
              action=Action.FOLLOWS)
    async def follow(self, info: Ctx, input: UserFollowInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_follow_user)

    @mutation()
    async def unfollow(self, info: Ctx, input: UserUnfollowInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_unfollow_user)

    @mutation()
    async def approve_follow_request(self, info: Ctx, input: FollowRequestApproveInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_approve_follow_request)

    @mutation()
    async def reject_follow_request(self, info: Ctx, input: FollowRequestRejectInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_reject_follow_request)

    @mutation(description="Block: removes follows both ways; each disappears from the other's view everywhere.")
    async def block(self, info: Ctx, input: UserBlockInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_block_user)

    @mutation()
    async def unblock(self, info: Ctx, input: UserUnblockInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_unblock_user)

    @mutation()
    async def mute(self, info: Ctx, input: UserMuteInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_mute_user)

    @mutation()
    async def unmute(self, info: Ctx, input: UserUnmuteInput) -> FollowPayload:
        return await _run(info, input.user_id, follows.do_unmute_user)
