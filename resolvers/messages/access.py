"""Who may see a thread and its messages: the messaging rules registered with `resolvers.privacy`.

- A thread is visible to its members only, except a member who declined it (a declined request
  vanishes for the decliner; its sender is not told), and a direct thread vanishes for both
  sides while either blocks the other (a blocked user has no conversation to write into).
- A message is visible when its thread is and its sender is not HIDDEN from the viewer: in a
  group, a member never sees what someone they block, or who blocks them, writes.
- Anything else about a thread (unknown id, not a member) answers exactly like a missing
  thread, so an id reveals nothing.
Membership is read from the thread's side (thread -HAS_MEMBER-> user, the primary edge, on the
thread's shard): the authoritative copy, written in the same transaction as the member's state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.edge_data import MemberState
from resolvers.messages.model import Message, Thread, is_message, is_thread, message_not_found, thread_not_found
from resolvers.records import Record, ThreadKind
from tao import Assoc

if TYPE_CHECKING:
    from resolvers.context import RequestContext

MEMBER_PAGE = 64  # more than messages.max_members: one page is the whole member list


async def member_edge(ctx: RequestContext, thread_id: int, user_id: int) -> Assoc | None:
    return await ctx.loaders.assoc_by_key.load((thread_id, "HAS_MEMBER", user_id))


def member_list_key(thread_id: int) -> tuple[int, str, int, None]:
    """The thread's member list as the page loader's key (one page is all of it)."""
    return (thread_id, "HAS_MEMBER", MEMBER_PAGE, None)


async def member_edges(ctx: RequestContext, thread_id: int) -> list[Assoc]:
    """Every member's edge (oldest member last: newest-first by join time)."""
    return await ctx.loaders.assoc_page_by_key.load(member_list_key(thread_id))


def other_in_pair(thread: Thread, viewer: int) -> int | None:
    return next((u for u in thread.pair if u != viewer), None)


async def thread_visible(ctx: RequestContext, obj: Record) -> bool:
    viewer = ctx.viewer_id
    if not is_thread(obj) or viewer is None:
        return False
    # Membership from the thread's member list (one page is all of it), not the viewer's own
    # edge: a send reads the list anyway, in the same round of reads as the thread, so the
    # check costs it no round trip of its own (the edge cost one, between the thread's read
    # and the other member's).
    edge = next((a for a in await member_edges(ctx, obj.id) if a.id2 == viewer), None)
    if edge is None or MemberState.decode(edge.data).declined:
        return False
    if obj.kind is ThreadKind.DIRECT:
        other = other_in_pair(obj, viewer)
        return other is not None and await privacy.user_visibility(ctx, other) != privacy.Visibility.HIDDEN
    return True


async def message_visible(ctx: RequestContext, obj: Record) -> bool:
    if not is_message(obj):
        return False
    thread = await ctx.loaders.object_by_id.load(obj.thread)
    if thread is None or not await thread_visible(ctx, thread):
        return False
    sender = obj.sender
    return sender == ctx.viewer_id or await privacy.user_visibility(ctx, sender) != privacy.Visibility.HIDDEN


privacy.register_object_rule("THREAD", thread_visible)
privacy.register_object_rule("MESSAGE", message_visible)


async def viewer_thread(ctx: RequestContext, thread_id: int, field: str = "threadId") -> Thread:
    """The thread if the viewer may see it; THREAD_NOT_FOUND otherwise (missing or not theirs alike)."""
    ctx.require_viewer()
    obj = await privacy.load_visible_object(ctx, thread_id)
    if not is_thread(obj):
        raise thread_not_found(field)
    return obj


async def viewer_message(ctx: RequestContext, message_id: int, field: str = "messageId") -> Message:
    ctx.require_viewer()
    obj = await privacy.load_visible_object(ctx, message_id)
    if not is_message(obj):
        raise message_not_found(field)
    return obj


async def visible_messages(ctx: RequestContext, ids: list[int]) -> list[Message]:
    objs = [o for o in await ctx.loaders.object_by_id.load_many(ids) if is_message(o)]
    seen = await asyncio.gather(*(message_visible(ctx, o) for o in objs))
    return [o for o, ok in zip(objs, seen) if ok]
