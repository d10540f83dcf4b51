"""What members do to a thread besides sending: read receipts, reactions, edit, unsend, typing.

Invariants:
- A read marker only moves forward. The viewer's UNREAD_THREAD edge is removed when they have
  read the newest message, and put back if a message landed meanwhile (a send lists its message
  before it marks the thread unread, so the re-check after the removal always sees it).
- Edit replaces a text message's sealed body in place (one `obj_update`, its event committed
  with it); a retry of the original send still answers with the message (its fingerprint is
  the send's, not the text's).
- A write that changes nothing (the same reaction again, an edit to the same text: a double
  tap, a retry) writes and delivers nothing: every event is stored in every member's stream.
- Unsend removes the message for everyone: its listing, its object and its reactions, and each
  member's stream gets the unsent event, so live clients drop it too.
- Typing is ephemeral: published to the other members' live connections, never stored. A
  `typing: true` repeated within `messages.typing_repeat_seconds` is not published again (a
  client that sends one per keystroke); a stop, and a start after a stop, are, up to
  `messages.typing_changes_per_minute` changes a minute per member (a client alternating them).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from resolvers.actor import acting_as
from resolvers.edge_data import message_sender, reaction_data, reaction_emoji
from resolvers.errors import UserError
from resolvers.messages import events
from resolvers.messages.access import member_edges, viewer_message, viewer_thread
from resolvers.messages.crypto import MessageKeyError
from resolvers.messages.model import (
    CLIENT_KEYS,
    EMOJI_MAX,
    TEXT,
    Message,
    MessageErrorCode,
    Thread,
    cipher,
    client_key,
    message_not_found,
)
from resolvers.messages.send import advance_read_marker
from resolvers.records import record_of
from tao import Bucket, Mode, ObjectNotFoundError, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from config import MessageSettings
    from resolvers.context import RequestContext


async def _member_ids(ctx: RequestContext, thread_id: int) -> list[int]:
    return [a.id2 for a in await member_edges(ctx, thread_id)]


async def do_mark_thread_read(tao: Tao, actor_id: int, thread_id: int, up_to: int | None) -> Thread:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    thread = await viewer_thread(ctx, thread_id)
    newest = await tao.assoc_range(thread_id, "HAS_MESSAGE", 0, 1)
    if up_to is not None:
        msg = await viewer_message(ctx, up_to, "upTo")
        if msg.thread != thread_id:
            raise UserError(MessageErrorCode.MESSAGE_NOT_FOUND, "`upTo` must be a message of this conversation.",
                            "upTo")
        cursor = msg.cursor
    elif newest:
        cursor = (newest[0].time, newest[0].id2)
    else:
        return thread
    receipt = events.event(tao, await _member_ids(ctx, thread_id), events.READ, near=thread_id, thread=thread_id,
                           user=viewer, message=cursor[1])
    moved = await advance_read_marker(tao, thread_id, viewer, cursor, jobs=events.jobs_of(receipt))
    if newest and cursor >= (newest[0].time, newest[0].id2):
        await tao.assoc_delete(viewer, "UNREAD_THREAD", thread_id)
        again = await tao.assoc_range(thread_id, "HAS_MESSAGE", 0, 1)
        if again and (again[0].time, again[0].id2) > cursor and message_sender(again[0].data) != viewer:
            await tao.assoc_add(viewer, "UNREAD_THREAD", thread_id, time=again[0].time)
    if moved:
        await receipt.deliver(tao)
    return thread


_ZWJ = "\u200d"


def _skin_tone(c: str) -> bool:
    return "\U0001f3fb" <= c <= "\U0001f3ff"


def _regional(c: str) -> bool:
    return "\U0001f1e6" <= c <= "\U0001f1ff"


def _one_emoji(emoji: str) -> bool:
    """Exactly one emoji: one symbol ("So": every pictograph, flag letter and dingbat) with its
    modifiers (a skin tone, a variation selector, a keycap or a flag's tag characters), or such
    symbols joined by zero-width joiners into one glyph (a family), or a flag (two regional
    letters). The other characters are only an emoji's modifiers and joiners, and alone they
    were taken as one: "^" or "`" (modifier symbols, Sk), a zero-width space (Cf), a combining
    accent (Mn): a reaction a member sees as nothing, or as punctuation; and two symbols side by
    side ("👍👍") were taken as one reaction."""
    for part in emoji.split(_ZWJ):
        symbols = []
        for c in part:
            cat = unicodedata.category(c)
            if cat == "So":
                symbols.append(c)
            elif not (cat in ("Mn", "Me", "Cf") or (cat == "Sk" and _skin_tone(c))):
                return False
        if not (len(symbols) == 1 or (len(symbols) == 2 and all(map(_regional, symbols)))):
            return False
    return True


def _check_emoji(emoji: str) -> str:
    emoji = emoji.strip()
    if not (0 < len(emoji) <= EMOJI_MAX and _one_emoji(emoji)):
        raise UserError(MessageErrorCode.EMOJI_INVALID, "A reaction is one emoji (up to "
                        f"{EMOJI_MAX} code points with its modifiers); pass null to remove yours.", "emoji")
    return emoji


async def do_react_to_message(tao: Tao, actor_id: int, message_id: int, emoji: str | None) -> Message:
    """Set (or with None, remove) the viewer's reaction to a message: one per member."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    msg = await viewer_message(ctx, message_id)
    emoji = None if emoji is None else _check_emoji(emoji)
    if emoji is not None:
        current = await ctx.loaders.assoc_by_key.load((message_id, "REACTED_BY", viewer))
        if current is not None and reaction_emoji(current.data) == emoji:
            # A double tap: nothing changes, so nothing is written or delivered. Each repeat
            # stored one more event in every member's stream before, and reactions are not
            # throttled: ~1 000 taps a minute pushed the other members' resume cursors past
            # `realtime.max_replay` (CURSOR_EXPIRED at their next reconnect).
            return msg
    ev = events.event(tao, await _member_ids(ctx, msg.thread), events.REACTION, near=message_id,
                      thread=msg.thread, message=message_id, user=viewer)
    if emoji is None:
        changed = await tao.assoc_delete(message_id, "REACTED_BY", viewer, jobs=events.jobs_of(ev))
    else:
        await tao.assoc_add(message_id, "REACTED_BY", viewer, data=reaction_data(emoji), jobs=events.jobs_of(ev))
        changed = True
        # An unsend that ran since the read above may have swept the reactions before this
        # edge was written, which would then stay in the store on a message that is gone. The
        # unsend deletes the object before it sweeps (do_unsend_message), so one of the two
        # always sees the other: its sweep finds this edge, or this look (after the write)
        # finds the object gone. One object read more a reaction (not on a send's path).
        if not await tao.obj_get([message_id]):
            await tao.assoc_delete(message_id, "REACTED_BY", viewer)
            await ev.deliver(tao)  # its event names a message no one can see: skipped by every reader
            raise message_not_found()
    if changed:
        await ev.deliver(tao)
    return msg


async def do_edit_message(tao: Tao, actor_id: int, message_id: int, text: str) -> Message:
    """Replace the text of the viewer's own text message (re-sealed under the active key)."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    msg = await viewer_message(ctx, message_id)
    if msg.sender != viewer:
        raise UserError(MessageErrorCode.NOT_SENDER, "You can only edit your own messages.", "messageId")
    if msg.kind != TEXT:
        raise UserError(MessageErrorCode.NOT_EDITABLE, "Only a text message can be edited: unsend this one "
                        "and send it again.", "messageId")
    limit = ctx.settings.messages.max_length
    if not text.strip():
        raise UserError(MessageErrorCode.EMPTY, "A message cannot be empty: unsend it instead.", "text")
    if len(text) > limit:
        raise UserError(MessageErrorCode.TOO_LONG, f"A message is at most {limit} characters: split it.", "text")
    if _same_text(ctx.settings.messages, msg, text):
        return msg  # nothing to edit: no write, no `editedAt`, no event (a retried or repeated edit)
    ev = events.event(tao, await _member_ids(ctx, msg.thread), events.MESSAGE_EDITED, near=message_id,
                      thread=msg.thread, message=message_id)
    body = cipher(ctx.settings.messages).seal(text, msg.thread, msg.sender)
    try:
        obj = await tao.obj_update(message_id, {"body": body, "edited": now_ms()}, jobs=events.jobs_of(ev))
    except ObjectNotFoundError:
        # Unsent (from another device) since the read above: answered as if the unsend came
        # first. The store's error used to reach the client as INTERNAL_SERVER_ERROR.
        raise message_not_found() from None
    await ev.deliver(tao)
    return record_of(obj)


def _same_text(settings: MessageSettings, msg: Message, text: str) -> bool:
    if msg.body is None:
        return False
    try:
        return cipher(settings).open(msg.body, msg.thread, msg.sender) == text
    except MessageKeyError:  # its key retired: re-sealing it under the active key is a change
        return False


async def do_unsend_message(tao: Tao, actor_id: int, message_id: int) -> int:
    """Remove the viewer's own message for everyone; returns its thread's id."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    msg = await viewer_message(ctx, message_id)
    if msg.sender != viewer:
        raise UserError(MessageErrorCode.NOT_SENDER, "You can only unsend your own messages.", "messageId")
    # The object first (from here no page shows it: pages read the objects), then its listing,
    # then its reactions. A write racing the unsend looks for the object after its own write
    # and takes that write back if it is gone: a reaction (do_react_to_message) and a
    # re-delivery that lists the message again (send.deliver, a retry or its job). With the
    # object gone before the unlisting and the sweep, either that look finds it gone or the
    # unlisting or sweep comes after the racing write and removes it.
    ev = events.event(tao, await _member_ids(ctx, msg.thread), events.MESSAGE_UNSENT, near=message_id,
                      thread=msg.thread, message=message_id, user=viewer)
    if msg.client_id is not None:
        # Its client id stays spent: before the object goes, the key is moved from the message
        # to its thread. (Naming a message no longer stored, it would read as a send that died
        # before storing it, which a retry within RESUME_WINDOW_MS finishes: it would come back.)
        await tao.key_release(CLIENT_KEYS, client_key(viewer, msg.client_id), message_id, to=msg.thread)
    if await tao.obj_delete(message_id, jobs=events.jobs_of(ev)):
        await ev.deliver(tao)
    await tao.assoc_delete(msg.thread, "HAS_MESSAGE", message_id)
    # Every reaction, page by page: a group's turnover can leave more than a page of them (one
    # page of 100 was swept, and the rest stayed in the store on a deleted message).
    while page := await tao.assoc_range(message_id, "REACTED_BY", 0, 100):
        if not [r for r in page if await tao.assoc_delete(message_id, "REACTED_BY", r.id2)]:
            break  # nothing left to delete (a racing sweep took them): never loop on a stale page
    return msg.thread


async def do_set_typing(tao: Tao, actor_id: int, thread_id: int, typing: bool) -> Thread:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    thread = await viewer_thread(ctx, thread_id)
    # One bucket per member and thread (tao.rate_limits: shared by the processes): a start
    # takes its token, a stop gives it back. Before, 100 calls published 100 events to every
    # other member's subscriptions (each built through their loaders and privacy).
    # And every change (a start or a stop, in any thread) from one bucket per member: a stop lets
    # the next start out, so a client alternating true and false had every call published.
    key = f"typing:{viewer}:{thread_id}"
    per_minute = float(ctx.settings.messages.typing_changes_per_minute)
    changes = Bucket(f"typing-changes:{viewer}", per_minute, 60.0)
    if typing:
        repeat = ctx.settings.messages.typing_repeat_seconds
        if not (await tao.rate_limits.take([Bucket(key, 1.0, repeat), changes], 1.0, Mode.TAKE)).ok:
            return thread  # told within `typing_repeat_seconds`, or past the changes a minute
    else:
        await tao.rate_limits.reset([key])
        if not (await tao.rate_limits.take([changes], 1.0, Mode.TAKE)).ok:
            return thread
    others = [m for m in await _member_ids(ctx, thread_id) if m != viewer]
    await events.publish_typing(tao, others, thread_id, viewer, typing)
    return thread
