"""The viewer's own lists around stories: close friends, story mutes, restricted accounts.

Each list is its owner's alone: it lives on the owner's shard (owner -CLOSE_FRIEND-> user,
owner -STORY_MUTES-> user, owner -RESTRICTS-> user), only the owner's `viewer` fields list it,
and nothing tells the other person. Close friends learn nothing either: a close-friends story
is simply visible to them (marked as such), and to nobody else, so a non-member cannot tell it
exists, and a member cannot tell who else is on the list.

A block removes the CLOSE_FRIEND edge both ways (`follows.SEVERED_BY_BLOCK`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.messages.model import PAIR_KEYS
from resolvers.pagination import Cursor, Page, load_assoc_page, make_page
from resolvers.records import User
from resolvers.stories.model import MAX_BATCH, StoryErrorCode
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext


async def _users(tao: Tao, actor_id: int, user_ids: list[int], field: str = "userIds") -> list[int]:
    """The distinct ids, each an account that exists for the actor (not the actor), else nothing is done."""
    if len(user_ids) > MAX_BATCH:
        raise UserError(StoryErrorCode.TOO_MANY_IDS, f"At most {MAX_BATCH} ids per call; split the list.", field)
    ctx = acting_as(tao, actor_id)
    ids = list(dict.fromkeys(user_ids))
    for uid in ids:
        if uid == actor_id or await privacy.addressable_user(ctx, uid) is None:
            raise UserError(StoryErrorCode.USER_NOT_FOUND,
                            "One of the accounts does not exist (or is you); nothing was changed. Check the ids.",
                            field)
    return ids


async def do_add_close_friends(tao: Tao, actor_id: int, user_ids: list[int]) -> int:
    """Add accounts to the actor's close friends (idempotent); returns the list's size. Over
    `stories.close_friends_max` the whole call is refused."""
    ids = await _users(tao, actor_id, user_ids)
    have = await tao.assoc_get(actor_id, "CLOSE_FRIEND", ids) if ids else {}
    new = [u for u in ids if u not in have]
    cap = tao.settings.stories.close_friends_max
    count = await tao.assoc_count(actor_id, "CLOSE_FRIEND")
    if count + len(new) > cap:
        raise UserError(StoryErrorCode.CLOSE_FRIENDS_FULL,
                        f"Close friends hold at most {cap} accounts ({count} now): remove some first.", "userIds")
    if new:
        await tao.assoc_add_many([(actor_id, "CLOSE_FRIEND", u) for u in new])
    return count + len(new)


async def do_remove_close_friends(tao: Tao, actor_id: int, user_ids: list[int]) -> int:
    if len(user_ids) > MAX_BATCH:
        raise UserError(StoryErrorCode.TOO_MANY_IDS, f"At most {MAX_BATCH} ids per call; split the list.", "userIds")
    for uid in dict.fromkeys(user_ids):
        await tao.assoc_delete(actor_id, "CLOSE_FRIEND", uid)
    return await tao.assoc_count(actor_id, "CLOSE_FRIEND")


async def _one_user(tao: Tao, actor_id: int, user_id: int) -> int:
    return (await _users(tao, actor_id, [user_id], "userId"))[0]


async def do_mute_stories(tao: Tao, actor_id: int, user_id: int) -> None:
    """Hide the account's ring from the actor's tray (their posts are not muted by this)."""
    await tao.assoc_add(actor_id, "STORY_MUTES", await _one_user(tao, actor_id, user_id))


async def do_unmute_stories(tao: Tao, actor_id: int, user_id: int) -> None:
    await tao.assoc_delete(actor_id, "STORY_MUTES", await _one_user(tao, actor_id, user_id))


async def do_restrict_user(tao: Tao, actor_id: int, user_id: int) -> None:
    """Restrict: the account's new comments on the actor's posts wait for approval (visible to
    their author only), and its messages land in requests without read receipts: the direct
    thread with it moves to the actor's requests. Never told."""
    uid = await _one_user(tao, actor_id, user_id)
    await tao.assoc_add(actor_id, "RESTRICTS", uid)
    await _move_direct_thread(tao, actor_id, uid, "INBOX", "DM_REQUESTS")


async def do_unrestrict_user(tao: Tao, actor_id: int, user_id: int) -> None:
    uid = await _one_user(tao, actor_id, user_id)
    if await tao.assoc_delete(actor_id, "RESTRICTS", uid):
        await _move_direct_thread(tao, actor_id, uid, "DM_REQUESTS", "INBOX")


async def _move_direct_thread(tao: Tao, owner: int, other: int, src: str, dst: str) -> None:
    lo, hi = sorted((owner, other))
    key = f"{lo}:{hi}"
    thread = (await tao.key_get_many(PAIR_KEYS, [key])).get(key)
    if thread is None:
        return
    if await tao.assoc_get(owner, src, [thread]) and not await tao.assoc_get(owner, dst, [thread]):
        await tao.assoc_change_type(owner, src, thread, dst)


async def is_restricted(tao: Tao, owner: int, user_id: int) -> bool:
    return bool(await tao.assoc_get(owner, "RESTRICTS", [user_id]))


async def _own_list(ctx: RequestContext, atype: str, first: int, after: Cursor | None) -> Page[User]:
    viewer = ctx.require_viewer()
    assocs, has_next = await load_assoc_page(ctx, viewer, atype, first, after)
    users = await privacy.visible_users(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {u.id: u for u in users}, after)


async def close_friends(ctx: RequestContext, first: int, after: Cursor | None) -> Page[User]:
    return await _own_list(ctx, "CLOSE_FRIEND", first, after)


async def story_muted_users(ctx: RequestContext, first: int, after: Cursor | None) -> Page[User]:
    return await _own_list(ctx, "STORY_MUTES", first, after)


async def restricted_users(ctx: RequestContext, first: int, after: Cursor | None) -> Page[User]:
    return await _own_list(ctx, "RESTRICTS", first, after)


async def close_friend_count(ctx: RequestContext) -> int:
    return await ctx.loaders.assoc_count_by_key.load((ctx.require_viewer(), "CLOSE_FRIEND"))
