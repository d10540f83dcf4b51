"""Threads: direct (1:1, one per pair of users) and group threads, their members, folders and requests.

Invariants:
- One direct thread per pair: the pair "lo:hi" is a unique key (`dm_pair`) naming the thread,
  so two first messages racing from both sides land in one thread.
- A group has at most `messages.max_members` members, the creator included.
- Each member's folder: a thread is in a member's INBOX, or in their DM_REQUESTS while it is a
  request (first reached them from someone they do not follow), never both once `accept` has
  run (`assoc_change_type` moves the edge in one transaction, keeping its time).
- Declining a request hides the thread from the decliner only; the sender's view is unchanged.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.edge_data import MemberState
from resolvers.errors import UserError
from resolvers.messages import events, limits
from resolvers.messages.access import member_edges, viewer_thread
from resolvers.messages.member_state import MAX_STATE_TRIES, set_member_state
from resolvers.messages.model import (
    DIRECT,
    GROUP,
    PAIR_KEYS,
    THREAD_NAME_MAX,
    MessageErrorCode,
    Thread,
    is_thread,
    thread_not_found,
)
from resolvers.records import record_of
from resolvers.text_rules import is_blank, name_refused
from tao import Assoc, ConflictError, ListCheck, ObjectNotFoundError, Tao, shard_of
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

_VIEWER_FOLDERS = ("INBOX", "DM_REQUESTS", "UNREAD_THREAD", "MUTED_THREAD")


def _user_not_found(field: str) -> UserError:
    return UserError(MessageErrorCode.USER_NOT_FOUND, "No such user: check the id.", field)


async def check_recipients(ctx: RequestContext, user_ids: list[int], field: str) -> list[int]:
    """Distinct users the viewer may message: each exists and no block stands either way."""
    viewer = ctx.require_viewer()
    ids = list(dict.fromkeys(user_ids))
    if viewer in ids:
        raise UserError(MessageErrorCode.CANNOT_MESSAGE_SELF,
                        "You cannot message yourself: leave your own id out of the recipients.", field)
    if not ids:
        raise UserError(MessageErrorCode.USER_NOT_FOUND, "Name at least one recipient.", field)
    if len(ids) + 1 > ctx.settings.messages.max_members:
        raise _too_many(ctx, field)
    seen = await ctx.loaders.visibility_by_user_id.load_many(ids)
    if any(v == privacy.Visibility.HIDDEN for v in seen):
        raise _user_not_found(field)  # missing, deleted or blocked either way: the same answer
    return ids


def _too_many(ctx: RequestContext, field: str) -> UserError:
    return _too_many_of(ctx.settings.messages.max_members, field)


def _too_many_of(n: int, field: str) -> UserError:
    return UserError(MessageErrorCode.TOO_MANY_MEMBERS, f"A group holds at most {n} people, you included.", field)


def check_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    # Shown beside the members' names in every member's inbox: a name's rules (resolvers/text_rules),
    # as a full name's and a highlight's title's. A zero-width space alone, a bell or a
    # text-direction override were taken.
    if not name or len(name) > THREAD_NAME_MAX or is_blank(name) or name_refused(name):
        raise UserError(MessageErrorCode.NAME_INVALID,
                        f"A group name is 1 to {THREAD_NAME_MAX} characters that show, without control characters, "
                        "line separators or text-direction overrides.", "name")
    return name


class _MembersMoved(Exception):
    """Someone an add meant to add became a member (another add) between its read and its write."""

    def __init__(self, members: set[int]) -> None:
        super().__init__("the thread's members changed")
        self.members = members


async def _add_members(tao: Tao, thread_id: int, user_ids: list[int], time: int,
                       tell: list[int] | None = None, *, adder: int | None = None,
                       limit: int | None = None) -> list[int]:
    """Add the members missing from the thread (present ones keep their state) in one
    transaction, with a `thread.added` event for the new ones and `thread.updated` for `tell`.

    The write is checked under the member list's lock (`ListCheck`, in the lock's own
    statements) against the list as it stands: the group stays within `limit` members
    (TOO_MANY_MEMBERS), the `adder` is still a member (THREAD_NOT_FOUND, as if the leave came
    first), and no one is added twice; a racing add of the same people computes it again.
    Checked on a read alone, two adds at once each passed (a group of 32 grew past it, and past
    the 64 edges every member-list read takes, which cut its oldest members out of deliveries)."""
    have: Collection[int] = await tao.assoc_get(thread_id, "HAS_MEMBER", user_ids)
    for _ in range(MAX_STATE_TRIES):
        new = [u for u in user_ids if u not in have]
        if not new:
            return []

        def fits(current: list[Assoc], new: list[int] = new) -> None:
            ids = {a.id2 for a in current}
            if adder is not None and adder not in ids:
                raise thread_not_found()
            if ids.intersection(new):
                raise _MembersMoved(ids)
            if limit is not None and len(ids) + len(new) > limit:
                raise _too_many_of(limit, "userIds")
        added = events.event(tao, new, events.THREAD_ADDED, near=thread_id, thread=thread_id)
        updated = events.event(tao, [u for u in tell or [] if u not in new], events.THREAD_UPDATED, near=thread_id,
                               thread=thread_id)
        try:
            await tao.assoc_add_and_append([(thread_id, "HAS_MEMBER", u, time, {}) for u in new], [],
                                           check=ListCheck(thread_id, "HAS_MEMBER", fits),
                                           jobs_by_shard={shard_of(thread_id): events.jobs_of(added, updated)})
        except _MembersMoved as moved:
            have = moved.members  # as the lock found them (a re-read could still miss the racing add's install)
            continue
        for ev in (added, updated):
            await ev.deliver(tao)
        return new
    raise ConflictError(f"the members of thread {thread_id} kept changing during an add; try again")


async def do_get_or_create_direct_thread(tao: Tao, actor_id: int, other_id: int, field: str = "recipientIds") -> Thread:
    """The viewer's direct thread with `other_id`, made on first use (a race makes one, not two)."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    (other,) = await check_recipients(ctx, [other_id], field)
    lo, hi = sorted((viewer, other))
    key = f"{lo}:{hi}"
    thread_id = (await tao.key_get_many(PAIR_KEYS, [key])).get(key)
    if thread_id is None:
        made = await tao.obj_add("THREAD", {"kind": DIRECT, "creator": viewer, "pair": [lo, hi]}, owner=viewer)
        if await tao.key_claim(PAIR_KEYS, key, made):
            thread_id = made
        else:  # the other side made it first: use theirs, drop ours (no client ever saw its id)
            await tao.obj_delete(made)
            thread_id = (await tao.key_get_many(PAIR_KEYS, [key]))[key]
    found = (await tao.obj_get([thread_id])).get(thread_id)
    obj = record_of(found) if found is not None else None
    if not is_thread(obj):
        raise thread_not_found(field)
    await _add_members(tao, thread_id, [lo, hi], obj.created)
    mine = await tao.assoc_get(thread_id, "HAS_MEMBER", [viewer])
    if mine.get(viewer) is not None and MemberState.decode(mine[viewer].data).declined:
        # Writing into a thread one declined takes it back: it is the decliner's choice.
        await set_member_state(tao, thread_id, viewer, declined=None)
    return obj


async def _within_request_limits(ctx: RequestContext, thread_id: int | None, users: list[int]) -> tuple[list, list]:
    """The spam limits of a first message (limits.py), for making a group of `users` or adding
    them: it puts the thread, its name and its members in the requests folder of each who does
    not follow the viewer, as a first message does. Without them a new account made groups of
    31 strangers, named as it liked, as fast as it could ask (5 groups: 155 requests, where 5 an
    hour are allowed), and added strangers to groups the same way. (requests, new)."""
    requests, new = await limits.split_recipients(ctx, thread_id, users)
    await limits.check_send_limits(ctx, requests, new, "userIds")
    return requests, new


async def do_create_group_thread(tao: Tao, actor_id: int, user_ids: list[int], name: str | None, *,
                                 limited: bool = True) -> Thread:
    """`limited=False`: the caller checks and records the spam limits (a send that makes it)."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    name = check_name(name)
    others = await check_recipients(ctx, user_ids, "userIds")
    requests, new = await _within_request_limits(ctx, None, others) if limited else ([], [])
    data = {"kind": GROUP, "creator": viewer, **({"name": name} if name else {})}
    thread_id = await tao.obj_add("THREAD", data, owner=viewer)
    obj = record_of((await tao.obj_get([thread_id]))[thread_id])
    members = [viewer, *others]
    await _add_members(tao, thread_id, members, obj.created)
    await place_in_folders(tao, thread_id, members, viewer, obj.created)
    await limits.record_send(tao, viewer, requests, new, obj.created)
    return obj


async def _viewer_group(ctx: RequestContext, thread_id: int) -> Thread:
    thread = await viewer_thread(ctx, thread_id)
    if not thread.is_group:
        raise UserError(MessageErrorCode.NOT_A_GROUP, "Only a group conversation has members to add, a name, "
                        "or a way to leave: start a group instead.", "threadId")
    return thread


async def do_add_thread_members(tao: Tao, actor_id: int, thread_id: int, user_ids: list[int]) -> Thread:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    thread = await _viewer_group(ctx, thread_id)
    current = {a.id2 for a in await member_edges(ctx, thread_id)}
    new = [u for u in await check_recipients(ctx, [u for u in user_ids if u != viewer] or user_ids, "userIds")
           if u not in current]
    if len(current) + len(new) > ctx.settings.messages.max_members:
        raise _too_many(ctx, "userIds")
    if new:
        requests, contacted = await _within_request_limits(ctx, thread_id, new)
        ts = now_ms()
        new = await _add_members(tao, thread_id, new, ts, tell=sorted(current), adder=viewer,
                                 limit=ctx.settings.messages.max_members)
        await place_in_folders(tao, thread_id, new, viewer, ts)
        await limits.record_send(tao, viewer, [u for u in requests if u in new], [u for u in contacted if u in new], ts)
    return thread


async def do_leave_thread(tao: Tao, actor_id: int, thread_id: int) -> None:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    await _viewer_group(ctx, thread_id)
    others = [a.id2 for a in await member_edges(ctx, thread_id) if a.id2 != viewer]
    removed = events.event(tao, [viewer], events.THREAD_REMOVED, near=thread_id, thread=thread_id)
    updated = events.event(tao, others, events.THREAD_UPDATED, near=thread_id, thread=thread_id)
    # Delivered only if this call left (a second leave at once, a double tap, deletes nothing
    # and commits no job: delivering its events anyway told everyone twice, two event ids).
    if await tao.assoc_delete(thread_id, "HAS_MEMBER", viewer, jobs=events.jobs_of(removed, updated)):
        for ev in (removed, updated):
            await ev.deliver(tao)
    for atype in _VIEWER_FOLDERS:
        await tao.assoc_delete(viewer, atype, thread_id)


async def do_rename_thread(tao: Tao, actor_id: int, thread_id: int, name: str | None) -> Thread:
    ctx = acting_as(tao, actor_id)
    thread = await _viewer_group(ctx, thread_id)
    name = check_name(name)
    if name == thread.name:
        return thread  # nothing changes: no write, and no event in every member's stream
    members = [a.id2 for a in await member_edges(ctx, thread.id)]
    ev = events.event(tao, members, events.THREAD_UPDATED, near=thread_id, thread=thread_id)
    obj = await tao.obj_update(thread_id, {"name": name}, jobs=events.jobs_of(ev))
    await ev.deliver(tao)
    return record_of(obj)


async def do_mute_thread(tao: Tao, actor_id: int, thread_id: int, muted: bool) -> Thread:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    thread = await viewer_thread(ctx, thread_id)
    if muted:
        await tao.assoc_add(viewer, "MUTED_THREAD", thread_id)
        # A leave since the check above (another device) may have cleared the folders before
        # this edge was written: it would stay, and a member added back would find the thread
        # muted. The leave deletes the membership before the folders, so this look (after the
        # write) finds it gone, or the leave's clearing comes after and removes the edge.
        if not await tao.assoc_get(thread_id, "HAS_MEMBER", [viewer]):
            await tao.assoc_delete(viewer, "MUTED_THREAD", thread_id)
            raise thread_not_found()
    else:
        await tao.assoc_delete(viewer, "MUTED_THREAD", thread_id)
    return thread


async def _pending_request(ctx: RequestContext, thread_id: int) -> Thread:
    viewer = ctx.require_viewer()
    thread = await viewer_thread(ctx, thread_id)
    if await ctx.loaders.assoc_by_key.load((viewer, "DM_REQUESTS", thread_id)) is None:
        raise UserError(MessageErrorCode.REQUEST_NOT_FOUND,
                        "This conversation is not a message request of yours: it is already in your inbox.", "threadId")
    return thread


async def do_accept_message_request(tao: Tao, actor_id: int, thread_id: int) -> Thread:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    thread = await _pending_request(ctx, thread_id)
    await move_request_to_inbox(tao, viewer, thread_id)
    return thread


async def move_request_to_inbox(tao: Tao, user_id: int, thread_id: int) -> None:
    """Move the thread from the user's requests to their inbox (accepting it). Idempotent, and
    safe against itself: two accepts at once (two devices, or two quick replies, each of which
    accepts) both read the request and then both moved it; the second found no edge to move and
    its store error reached the client as INTERNAL_SERVER_ERROR (3 of 4 quick replies failed)."""
    if await tao.assoc_get(user_id, "INBOX", [thread_id]):
        await tao.assoc_delete(user_id, "DM_REQUESTS", thread_id)  # a racing send put it in both
        return
    try:
        await tao.assoc_change_type(user_id, "DM_REQUESTS", thread_id, "INBOX")
    except ObjectNotFoundError:
        pass  # moved by a racing accept since the read above (or removed by a decline, which came last)


async def do_decline_message_request(tao: Tao, actor_id: int, thread_id: int, block: bool) -> None:
    """Decline (and optionally block the other side: the direct partner, or a group's creator).
    Nothing reaches the sender: their thread, messages and receipts look as before."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    thread = await _pending_request(ctx, thread_id)
    removed = events.event(tao, [viewer], events.THREAD_REMOVED, near=thread_id, thread=thread_id)
    if await set_member_state(tao, thread_id, viewer, declined=True, jobs=events.jobs_of(removed)):
        await removed.deliver(tao)  # not if a decline at once (a double tap) did it: its job is not committed
    for atype in ("DM_REQUESTS", "UNREAD_THREAD"):
        await tao.assoc_delete(viewer, atype, thread_id)
    if block:
        from resolvers.follows import do_block_user  # follows' block severs follows too; one way to block

        obj = await ctx.loaders.object_by_id.load(thread_id)
        target = next((u for u in obj.pair if u != viewer), thread.creator) if is_thread(obj) else thread.creator
        if target != viewer:
            await do_block_user(tao, viewer, int(target))


# Shared by sends, group creation and member adds ----------------------------------------------

async def place_in_folders(tao: Tao, thread_id: int, members: list[int], sender: int, time: int,
                           message_id: int | None = None) -> list[int]:
    """Bump the thread to `time` in each member's folder (INBOX, or DM_REQUESTS for a request)
    and, for a message, mark it unread for the members other than the sender. Idempotent:
    re-running with the same time changes nothing more. Returns the members it reached (not
    those who declined, left, or stand in a block with the sender)."""
    edges, reached = await folder_edges(tao, thread_id, members, sender, time, message_id)
    if edges:
        await tao.assoc_add_many(edges)  # one transaction per member shard, shards in parallel
    return reached


def folder_keys(thread_id: int, members: list[int], sender: int) -> list[tuple[int, str, int]]:
    """The edges `folder_edges` decides from: each member's folders of the thread, and each
    other member's relationship to the sender."""
    keys = [(m, t, thread_id) for m in members for t in ("INBOX", "DM_REQUESTS")]
    keys += [(m, t, sender) for m in members if m != sender for t in ("FOLLOWS", "BLOCKS", "BLOCKED_BY", "RESTRICTS")]
    return keys


async def folder_edges(tao: Tao, thread_id: int, members: list[int], sender: int, time: int,
                       message_id: int | None = None, *, states: dict[int, Assoc] | None = None,
                       known: dict[tuple[int, str, int], Any] | None = None) -> tuple[list[tuple], list[int]]:
    """The edges `place_in_folders` writes, and the members it reaches: for a caller that
    writes them together with its own edges. `states`: the members' HAS_MEMBER edges, if the
    caller has just read them; `known`: `folder_keys` edges it has just read (the keys it
    lacks, or that failed, are read here)."""
    if states is None:
        states = await tao.assoc_get(thread_id, "HAS_MEMBER", members)
    keys = folder_keys(thread_id, members, sender)
    have = {k: v for k, v in (known or {}).items() if not isinstance(v, BaseException)}
    missing = [k for k in keys if k not in have]
    if missing:
        have.update(await tao.assoc_get_many(missing))
    reached, edges, placed = [], [], []
    for m in members:
        state = states.get(m)
        if state is None or MemberState.decode(state.data).declined:
            continue  # not a member (left meanwhile), or declined: nothing reaches them
        if have.get((m, "BLOCKS", sender)) or have.get((m, "BLOCKED_BY", sender)):
            continue  # a block either way: no new activity of the sender's reaches them
        reached.append(m)
        inbox, request = have[(m, "INBOX", thread_id)], have[(m, "DM_REQUESTS", thread_id)]
        if (inbox or request) is not None and (inbox or request).time >= time:
            # Already placed at this time or later: a re-run, a newer message, or a member
            # added after this message was written (placed at the add's time). Only the
            # unread mark may be missing: the last case, if they have not read this far.
            if m != sender and message_id is not None and MemberState.decode(state.data).read < (time, message_id):
                placed.append(m)
            continue
        if have.get((m, "RESTRICTS", sender)) and inbox is None:
            folder = "DM_REQUESTS"  # a restricted sender's messages wait in requests (resolvers.stories.social)
        elif inbox is not None or request is None and (m == sender or have.get((m, "FOLLOWS", sender))):
            folder = "INBOX"
        else:
            folder = "DM_REQUESTS"
        if m != sender and message_id is not None:
            edges.append((m, "UNREAD_THREAD", thread_id, time))
        edges.append((m, folder, thread_id, time))
    if placed:  # rare (see above): one more batched read, not on a plain send's way
        keys = [(m, "UNREAD_THREAD", thread_id) for m in placed]
        unread = await tao.assoc_get_many(keys)
        edges += [(*k, time) for k in keys if unread[k] is None]
    return edges, reached
