"""Reading messages: the inbox and requests folders, a thread's messages, unread counts, "seen by".

Unread counts are computed, never kept as counters that could drift: a thread's unread count
is the number of its messages newer than the viewer's read marker, written by others the
viewer may see, read from the newest `messages.unread_cap` + 1 entries of the thread's list
(exact up to the cap, then reported as the cap). The inbox's total is over the viewer's
UNREAD_THREAD list (threads that got a message since the viewer last read them), read the
same way. Everything batches: a page of N threads costs one list read for all their counts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.edge_data import MemberState, message_sender, reaction_emoji
from resolvers.messages.access import member_edge, member_edges, thread_visible, viewer_thread, visible_messages
from resolvers.messages.crypto import MessageKeyError
from resolvers.messages.model import Message, Thread, cipher, is_message, is_thread
from resolvers.pagination import Cursor, Page, load_assoc_page, make_page
from resolvers.records import Media, MediaStatus, Post, User
from tao import Assoc

if TYPE_CHECKING:
    from resolvers.context import RequestContext

log = logging.getLogger("taogram.messages")
FOLDERS = {"INBOX": "INBOX", "REQUESTS": "DM_REQUESTS"}
UNREAD_THREADS_SCAN = 100


async def _visible_threads(ctx: RequestContext, ids: list[int]) -> dict[int, Thread]:
    objs = [o for o in await ctx.loaders.object_by_id.load_many(ids) if is_thread(o)]
    seen = await asyncio.gather(*(thread_visible(ctx, o) for o in objs))
    return {o.id: o for o, ok in zip(objs, seen) if ok}


async def inbox(ctx: RequestContext, folder: str, first: int, after: Cursor | None) -> Page[Thread]:
    """The viewer's threads in a folder, by last activity, newest first."""
    viewer = ctx.require_viewer()
    atype = FOLDERS[folder]
    assocs, has_next = await load_assoc_page(ctx, viewer, atype, first, after)
    threads = await _visible_threads(ctx, [a.id2 for a in assocs])
    if atype == "DM_REQUESTS":  # accepted while a send raced: the inbox copy is the true one
        both = await ctx.loaders.assoc_by_key.load_many([(viewer, "INBOX", t) for t in threads])
        threads = {t: th for (t, th), e in zip(threads.items(), both) if e is None}
    return make_page(assocs, has_next, threads, after)


async def thread_messages(ctx: RequestContext, thread_id: int, first: int, after: Cursor | None) -> Page[Message]:
    await viewer_thread(ctx, thread_id)
    assocs, has_next = await load_assoc_page(ctx, thread_id, "HAS_MESSAGE", first, after)
    msgs = await visible_messages(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {m.id: m for m in msgs}, after)


def message_text(ctx: RequestContext, msg: Message) -> str | None:
    if msg.body is None:
        return None
    try:
        return cipher(ctx.settings.messages).open(msg.body, msg.thread, msg.sender)
    except MessageKeyError as exc:
        log.error("message %s: %s", msg.id, exc)  # a retired key still in use: an operator's error
        return None


async def _newest(ctx: RequestContext, thread_id: int) -> list[Assoc]:
    return await ctx.loaders.assoc_page_by_key.load(
        (thread_id, "HAS_MESSAGE", ctx.settings.messages.unread_cap + 1, None))


async def unread_count(ctx: RequestContext, thread_id: int) -> int:
    viewer = ctx.require_viewer()
    edge, newest = await asyncio.gather(member_edge(ctx, thread_id, viewer), _newest(ctx, thread_id))
    if edge is None:
        return 0
    marker = MemberState.decode(edge.data).read
    unread = [(a, message_sender(a.data)) for a in newest
              if (a.time, a.id2) > marker and message_sender(a.data) != viewer]
    senders = list({s for _, s in unread if s is not None})
    seen = dict(zip(senders, await ctx.loaders.visibility_by_user_id.load_many(senders)))
    n = sum(1 for _, s in unread if s is not None and seen[s] != privacy.Visibility.HIDDEN)
    return min(n, ctx.settings.messages.unread_cap)


async def unread_totals(ctx: RequestContext) -> tuple[int, int]:
    """(threads with unread messages, unread messages in all) over the viewer's visible threads."""
    viewer = ctx.require_viewer()
    marked = await ctx.loaders.assoc_page_by_key.load((viewer, "UNREAD_THREAD", UNREAD_THREADS_SCAN, None))
    threads = await _visible_threads(ctx, [a.id2 for a in marked])
    counts = await asyncio.gather(*(unread_count(ctx, t) for t in threads))
    return sum(1 for c in counts if c), sum(counts)


async def last_message(ctx: RequestContext, thread_id: int) -> Message | None:
    page = await ctx.loaders.assoc_page_by_key.load((thread_id, "HAS_MESSAGE", 10, None))
    msgs = await visible_messages(ctx, [a.id2 for a in page])
    return msgs[0] if msgs else None


async def members(ctx: RequestContext, thread_id: int) -> list[User]:
    return await privacy.visible_users(ctx, [a.id2 for a in await member_edges(ctx, thread_id)])


async def seen_by(ctx: RequestContext, msg: Message) -> list[User]:
    """Members other than the sender whose read marker is at or past the message, and who
    show the viewer their reads (`shows_activity`)."""
    readers = [a.id2 for a in await member_edges(ctx, msg.thread)
               if a.id2 != msg.sender and MemberState.decode(a.data).read >= msg.cursor]
    if readers:
        shown = await shows_activity(ctx, msg.thread, readers)
        readers = [r for r, ok in zip(readers, shown) if ok]
    return await privacy.visible_users(ctx, readers)


async def shows_activity(ctx: RequestContext, thread_id: int, readers: list[int]) -> list[bool]:
    """For each member: whether their activity in the thread (their reads, their typing) is shown
    to the viewer. Not when the member restricts the viewer (never told why), nor while the
    thread is a message request the member has not accepted: as on Instagram, opening a request
    does not tell its sender it was seen (it did before the sixteenth session's `privacy`
    branch: a stranger learned when, and whether, their request was read). The viewer's own
    activity is always shown to them."""
    viewer = ctx.viewer_id
    keys: list[tuple[int, str, int]] = []
    for r in readers:
        keys += [(r, "DM_REQUESTS", thread_id), (r, "INBOX", thread_id)]
        if viewer is not None:
            keys.append((r, "RESTRICTS", viewer))
    found = iter(await ctx.loaders.assoc_by_key.load_many(keys))
    out = []
    for r in readers:
        request, inbox = next(found), next(found)
        restricting = next(found) if viewer is not None else None
        out.append(r == viewer or (restricting is None and (request is None or inbox is not None)))
    return out


# How far back a read receipt looks, from the message it names, for one the viewer may see.
RECEIPT_SCAN = 20


async def visible_read_point(ctx: RequestContext, thread_id: int, message_id: int) -> Message | None:
    """The message a read receipt up to `message_id` may name to the viewer: that message when
    they may see it, else the newest one before it they may see (within RECEIPT_SCAN), else
    None. A receipt up to a hidden sender's message (a block either way, an account pending
    deletion) named it: an id the viewer never saw, telling them when that member wrote.
    None too when the message is gone (unsent): its sender can no longer be known."""
    msg = await privacy.load_visible_object(ctx, message_id)
    if is_message(msg):
        return msg if msg.thread == thread_id else None
    obj = await ctx.loaders.object_by_id.load(message_id)
    if not is_message(obj) or obj.thread != thread_id:
        return None
    page = await ctx.loaders.assoc_page_by_key.load((thread_id, "HAS_MESSAGE", RECEIPT_SCAN, obj.cursor))
    earlier = await visible_messages(ctx, [a.id2 for a in page])
    return earlier[0] if earlier else None


async def reactions(ctx: RequestContext, msg: Message) -> list[tuple[User, str]]:
    edges = await ctx.loaders.assoc_page_by_key.load((msg.id, "REACTED_BY", 64, None))
    users = {u.id: u for u in await privacy.visible_users(ctx, [a.id2 for a in edges])}
    return [(users[a.id2], reaction_emoji(a.data)) for a in edges if a.id2 in users]


async def is_muted(ctx: RequestContext, thread_id: int) -> bool:
    return await ctx.loaders.assoc_by_key.load((ctx.require_viewer(), "MUTED_THREAD", thread_id)) is not None


async def is_request(ctx: RequestContext, thread_id: int) -> bool:
    viewer = ctx.require_viewer()
    req, box = await ctx.loaders.assoc_by_key.load_many([(viewer, "DM_REQUESTS", thread_id),
                                                         (viewer, "INBOX", thread_id)])
    return req is not None and box is None


async def shared_post(ctx: RequestContext, msg: Message) -> Post | None:
    """The shared post if the reader may see it now (its author's privacy, blocks, deletion)."""
    obj = await privacy.load_visible_object(ctx, msg.post) if msg.post is not None else None
    return obj if isinstance(obj, Post) else None


async def message_media(ctx: RequestContext, msg: Message) -> Media | None:
    """The message's photo, video or voice note, once ready (to the sender at any stage)."""
    if msg.media is None:
        return None
    obj = await ctx.loaders.object_by_id.load(msg.media)
    if not isinstance(obj, Media):
        return None
    return obj if obj.status is MediaStatus.READY or msg.sender == ctx.viewer_id else None


async def replied_message(ctx: RequestContext, msg: Message) -> Message | None:
    if msg.reply_to is None:
        return None
    obj = await privacy.load_visible_object(ctx, msg.reply_to)
    return obj if is_message(obj) else None
