"""Sending a message: validation, idempotent retries, sealing, and delivery to every member.

Invariants:
- Bad input stores nothing: every check (text, recipients, the shared post or media, the
  reply, the `clientMessageId`, spam limits) runs before the first write.
- One `clientMessageId` per sender is one message: the key "sender:clientMessageId" is a unique
  key (`dm_client`) naming the message. A retry with the same content returns that message; the
  same id with other content is CLIENT_ID_REUSED. Two racing sends both store a MESSAGE, one
  wins the key and the loser's object is deleted before anyone could see it.
- Delivery is durable: the MESSAGE commits with a `messages.deliver` job, due
  `realtime.redeliver_after_ms` later; the writer delivers at once and then deletes the job,
  which is the repair if the process dies (or a shard fails, or a publish of the message's
  event fails) first. Delivery is idempotent (it lists the message in its thread, moves the
  sender's read marker, bumps each member's folder to the message's own time and appends the
  message.new event to each member's stream) and writes one transaction per shard it touches.
- Delivery reaches the members as the thread's transaction finds them (it checks the member
  list under its lock, `ListCheck`, and is redone when it moved): not who left before it, and
  everyone added before it; a sender no longer a member delivers nothing (THREAD_NOT_FOUND).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from resolvers import privacy, realtime
from resolvers.actor import acting_as
from resolvers.edge_data import MemberState, message_edge_data
from resolvers.errors import UserError
from resolvers.job_context import JobContext
from resolvers.messages import events, limits
from resolvers.messages.access import MEMBER_PAGE, member_edges, viewer_message, viewer_thread
from resolvers.messages.member_state import update_member_state
from resolvers.messages.model import (
    CLIENT_ID_MAX,
    CLIENT_KEYS,
    MEDIA,
    POST,
    TEXT,
    VOICE,
    Message,
    MessageErrorCode,
    Thread,
    cipher,
    client_key,
    is_message,
    message_data,
    thread_not_found,
)
from resolvers.messages.threads import (
    check_recipients,
    do_create_group_thread,
    do_get_or_create_direct_thread,
    folder_edges,
    folder_keys,
    move_request_to_inbox,
)
from resolvers.notifications import causes
from resolvers.posts import claim_media
from resolvers.records import Media, MediaKind, MediaStatus, record_of
from tao import Assoc, ConflictError, ListCheck, Obj, Tao, shard_of, time_of
from tao.errors import DuplicateKeyError
from tao.models import Appended, PlannedObj, now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

DELIVER_JOB = "messages.deliver"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,%d}" % CLIENT_ID_MAX)
_MEDIA_KINDS = {MEDIA: (MediaKind.IMAGE, MediaKind.VIDEO), VOICE: (MediaKind.AUDIO,)}


def _check_client_id(client_id: str) -> None:
    if not _CLIENT_ID.fullmatch(client_id or ""):
        raise UserError(MessageErrorCode.CLIENT_ID_INVALID,
                        f"`clientMessageId` is 1 to {CLIENT_ID_MAX} letters, digits or . _ : - "
                        "(a UUID is a good choice): generate one per message and reuse it only to retry.",
                        "clientMessageId")


def _kind(text: str | None, post_id: int | None, media_id: int | None, voice: bool) -> str:
    if media_id is not None:
        if text or post_id is not None:
            raise UserError(MessageErrorCode.MEDIA_INVALID, "A photo, video or voice message carries no text "
                            "or post: send them as separate messages.", "mediaId")
        return VOICE if voice else MEDIA
    if voice:
        raise UserError(MessageErrorCode.MEDIA_INVALID, "A voice message needs `mediaId` (an audio upload).", "mediaId")
    if post_id is not None:
        return POST
    if not text or not text.strip():
        raise UserError(MessageErrorCode.EMPTY, "Write some text, or share a post, photo, video or voice message.",
                        "text")
    return TEXT


async def _check_content(ctx: RequestContext, kind: str, text: str | None, post_id: int | None,
                         media_id: int | None) -> None:
    viewer = ctx.require_viewer()
    limit = ctx.settings.messages.max_length
    if text is not None and len(text) > limit:
        raise UserError(MessageErrorCode.TOO_LONG, f"A message is at most {limit} characters: split it.", "text")
    if post_id is not None and await privacy.load_visible_object(ctx, post_id) is None:
        raise UserError(MessageErrorCode.POST_NOT_FOUND, "No such post: it was deleted, or you cannot see it.",
                        "postId")
    if media_id is not None:
        obj = await ctx.loaders.object_by_id.load(media_id)
        mine = await ctx.loaders.assoc_by_key.load((viewer, "UPLOADED", media_id))
        in_post = await ctx.loaders.assoc_count_by_key.load((media_id, "MEDIA_OF"))
        if (not isinstance(obj, Media) or mine is None or in_post or obj.kind not in _MEDIA_KINDS[kind]
                or obj.status not in (MediaStatus.PROCESSING, MediaStatus.READY)):
            what = "an audio upload" if kind == VOICE else "a photo or video upload"
            raise UserError(MessageErrorCode.MEDIA_INVALID, f"`mediaId` must be {what} of yours that you completed "
                            "(`completeUpload`), that did not fail and is not in a post.", "mediaId")


def _fingerprint_text(target: str, kind: str, text: str | None, post_id, media_id, reply_to) -> str:
    return "\x1f".join([target, kind, text or "", str(post_id or ""), str(media_id or ""), str(reply_to or "")])


def _result(value: Any) -> Any:
    """A `gather(..., return_exceptions=True)` result: raised in the order the caller reads them,
    so the errors a client sees come in the order the checks are written."""
    if isinstance(value, BaseException):
        raise value
    return value


async def _none() -> None:
    return None


async def _members_and_what_follows(ctx: RequestContext, sender: int, thread_id: int) -> list[Assoc]:
    """The thread's member list; once it is in, the edges the send reads next from it (its
    recipients' relationships, the sender's request edge, the members' folders) are queued
    with the reads the thread's own privacy check makes meanwhile (the other member's
    visibility, whose reads are queued here too), so all go out in one round trip. Read for a
    thread the viewer turns out not to see, they are only dropped: nothing answers from them."""
    members = await member_edges(ctx, thread_id)
    recipients = [a.id2 for a in members if a.id2 != sender]
    ctx.loaders.assoc_by_key.prefetch([*limits.split_keys(sender, thread_id, recipients),
                                       (sender, "DM_REQUESTS", thread_id),
                                       *folder_keys(thread_id, [sender, *recipients], sender)])
    if len(recipients) == 1:  # a direct thread's check reads the other member's visibility
        privacy.prefetch_visibility(ctx, recipients)
    return members


async def _folder_reads(ctx: RequestContext, thread_id: int, members: list[int], sender: int) -> dict:
    """The edges the delivery decides the members' folders from (`folder_keys`), read through
    the request's loaders with its other checks: the delivery needs no read of its own."""
    keys = folder_keys(thread_id, members, sender)
    return dict(zip(keys, await ctx.loaders.assoc_by_key.load_many(keys)))


def _record(obj: Obj | None) -> Any:
    return record_of(obj) if obj is not None else None


async def _existing(ctx: RequestContext, sender: int, client_id: str, canonical: Callable[[str], str],
                    target: str, thread_id: int | None, recipients: list[int], *,
                    fresh: bool = False) -> Message | None:
    """The message a previous send with this id stored, if any; CLIENT_ID_REUSED if its content
    differs. `canonical(target)`: this send's content, aimed at `target` ("t:<thread>" or
    "u:<recipients>"); the stored send may have named the same conversation the other way
    (`_other_target`). `fresh`: read the message from SQL (a duplicate insert of its id just
    said it is there; its writer installs it in the cache only after its delivery commits)."""
    key = client_key(sender, client_id)
    # CLIENT_KEYS is declared uncached (tao/types.py: every read, claim and release): a key is
    # read when a send may create a thread or move one out of requests, and when its claim
    # failed (a retry); a fill would only be replaced by the claim's install a moment later.
    held = (await ctx.tao.key_get_many(CLIENT_KEYS, [key])).get(key)
    if held is None:
        return None
    msg = _record((await ctx.tao.obj_get([held], fresh=fresh)).get(held))
    if not is_message(msg) or msg.fp is None:  # unsent since: the id is spent
        raise _reused()
    box = cipher(ctx.settings.messages)
    if box.same_content(msg.fp, canonical(target)):
        return msg
    other = await _other_target(ctx, sender, msg, thread_id, recipients)
    if other is not None and box.same_content(msg.fp, canonical(other)):
        return msg
    raise _reused()


async def _other_target(ctx: RequestContext, sender: int, msg: Message, thread_id: int | None,
                        recipients: list[int]) -> str | None:
    """The other way to name the conversation `msg` is in, as its send may have named it: a
    first message sent by `recipientIds` whose answer was lost is retried by `threadId` by an
    app that learned the thread meanwhile (from its inbox events), and the other way round.
    By id: the message's own thread; by recipients: the thread's members but the sender, as
    this request finds them."""
    if thread_id is not None:
        return "u:" + ",".join(map(str, sorted(recipients))) if msg.thread == thread_id else None
    members = sorted(a.id2 for a in await member_edges(ctx, msg.thread) if a.id2 != sender)
    return f"t:{msg.thread}" if members == sorted(recipients) else None


def _reused() -> UserError:
    return UserError(MessageErrorCode.CLIENT_ID_REUSED,
                     "This `clientMessageId` was already used for a different message: generate a new one for each "
                     "message, and reuse one only to retry the very same send.", "clientMessageId")


class Sent(NamedTuple):
    """A send's message, and its thread's record when the send read or made it (None: a retry
    answered before reading it); the thread object is not changed by a send, so a payload
    needs no second read of it."""
    message: Message
    thread: Thread | None


async def do_send_message(tao: Tao, actor_id: int, *, client_id: str, thread_id: int | None = None,
                          recipient_ids: list[int] | None = None, text: str | None = None, post_id: int | None = None,
                          media_id: int | None = None, voice: bool = False, reply_to: int | None = None,
                          story_id: int | None = None, story_reaction: bool = False) -> Sent:
    """Send a message. `story_id`: it quotes that story (a story reply, or with `story_reaction`
    an emoji reaction; the caller, resolvers.stories.replies, checked the sender may see it)."""
    ctx = acting_as(tao, actor_id)
    sender = actor_id
    _check_client_id(client_id)
    if (thread_id is None) == (recipient_ids is None):
        raise UserError(MessageErrorCode.THREAD_NOT_FOUND, "Give either `threadId` or `recipientIds`.", "threadId")
    kind = _kind(text, post_id, media_id, voice)
    await _check_content(ctx, kind, text, post_id, media_id)
    thread: Thread | None = None
    if thread_id is not None:
        # The thread (with the viewer's membership, its privacy) and its member list in one
        # round of loader batches; a thread the viewer may not see still answers first.
        seen, listed = await asyncio.gather(viewer_thread(ctx, thread_id),
                                            _members_and_what_follows(ctx, sender, thread_id),
                                            return_exceptions=True)
        thread = _result(seen)
        recipients = [a.id2 for a in _result(listed) if a.id2 != sender]
        target = f"t:{thread_id}"
    else:
        recipients = await check_recipients(ctx, recipient_ids or [], "recipientIds")
        target = "u:" + ",".join(map(str, sorted(recipients)))
    if reply_to is not None:
        replied = await viewer_message(ctx, reply_to, "replyToId")
        if thread is None or replied.thread != thread.id:
            raise UserError(MessageErrorCode.MESSAGE_NOT_FOUND, "You can only reply to a message of this conversation.",
                            "replyToId")
    def canonical(aimed_at: str) -> str:
        content = _fingerprint_text(aimed_at, kind, text, post_id, media_id, reply_to)
        return content if story_id is None else content + f"\x1fs:{story_id}:{int(story_reaction)}"
    async def earlier_try(fresh: bool = False) -> Message | None:
        # The message an earlier try of this send stored (CLIENT_ID_REUSED if it differs),
        # its delivery finished: a retry after a crash finishes what the first try began.
        done = await _existing(ctx, sender, client_id, canonical, target, thread_id, recipients, fresh=fresh)
        if done is not None:
            await deliver(tao, done.id)
        return done

    if thread is None:
        # A send by recipients may create the thread: an earlier try is looked for first, or a
        # retry would make a second group. A send into a thread finds an earlier try when its
        # claim of the client key fails (below): one round trip to the store less a send.
        if (done := await earlier_try()) is not None:
            return Sent(done, None)
    # The recipients' edges, the sender's own request edge and, into a thread that exists, the
    # edges its delivery decides each member's folder from: one loader batch.
    split: Any
    request_edge: Any
    folder_reads: Any
    split, request_edge, folder_reads = await asyncio.gather(
        limits.split_recipients(ctx, thread.id if thread else None, recipients),
        ctx.loaders.assoc_by_key.load((sender, "DM_REQUESTS", thread.id)) if thread is not None else _none(),
        _folder_reads(ctx, thread.id, [sender, *recipients], sender) if thread is not None else _none(),
        return_exceptions=True)
    requests, new = _result(split)
    try:
        await limits.check_send_limits(ctx, requests, new)
    except UserError:
        if thread_id is None or (done := await earlier_try()) is None:
            raise
        return Sent(done, thread if thread is not None and thread.id == done.thread else None)  # a retry's answer
    # What the delivery may take from the reads above: not if this request moves the thread
    # between folders first (below), nor errors (the delivery reads those keys itself).
    known = folder_reads if isinstance(folder_reads, dict) else None
    if thread is not None and _result(request_edge) is not None:
        # Replying to a request accepts it (the thread and the request edge are read above; a
        # quick second reply finding it accepted already is not an error). A refused send
        # changes nothing: an earlier try is looked for before the request is moved.
        if (done := await earlier_try()) is not None:
            return Sent(done, thread if thread.id == done.thread else None)
        await move_request_to_inbox(tao, sender, thread.id)
        known = None
    if thread is None:
        thread = (await do_get_or_create_direct_thread(tao, sender, recipients[0]) if len(recipients) == 1
                  else await do_create_group_thread(tao, sender, recipients, None, limited=False))
    box = cipher(ctx.settings.messages)
    data = message_data(thread.id, sender, kind, body=box.seal(text, thread.id, sender) if text else None,
                        post=post_id, media=media_id, reply_to=reply_to, client_id=client_id,
                        fp=box.fingerprint(canonical(target)), story=story_id, story_reaction=story_reaction)
    members = [sender, *recipients]
    # The message's id and time first, nothing written: the client key is claimed under the
    # id, then the delivery's transaction on the thread's shard inserts the message with its
    # job (before, the message and its job were a transaction of their own, before the claim).
    planned = tao.obj_plan("MESSAGE", data, owner=thread.id)
    key = client_key(sender, client_id)
    if not await tao.key_claim(CLIENT_KEYS, key, planned.obj.id):
        # An earlier or racing try of this send holds the key: answer with its message (or
        # refuse), or finish what it began if it stored nothing under the id.
        unfinished = await _unfinished_try(tao, key, thread.id)
        if unfinished is None:
            if (done := await earlier_try()) is None:
                raise _reused()
            return Sent(done, thread if thread.id == done.thread else None)
        planned = tao.obj_plan("MESSAGE", data, owner=thread.id, id=unfinished)
    made = planned.obj.id
    msg = record_of(planned.obj)
    if media_id is not None:
        # An upload is in one post, story or message (resolvers.posts.claim_media): the checks
        # above read it free, but a createPost (or another send) racing this one read it free
        # too. Claimed after the client key, so a racing retry of this very send answers with
        # its message rather than losing the media to itself.
        if not await claim_media(tao, made, [media_id]):
            await _withdraw(tao, msg)
            raise UserError(MessageErrorCode.MEDIA_INVALID, "This photo, video or voice message is already in a "
                            "post, story or message (was it shared twice?).", "mediaId")
        # A message's media is seen through the message only (resolvers.media).
        await tao.obj_update(media_id, {"dm": True})
    await limits.record_send(tao, sender, requests, new, msg.created)
    # The message's event is delivered with the message, and one job repairs both: the
    # delivery job, under the event's id, appends it to the members it finds (checked as the
    # writer's delivery is) and publishes it again until the broker takes it. The writer
    # delivers at once; the job repairs only what it did not finish. The sender rides along
    # (ids only): a subscriber reads its visibility with the message.
    event = realtime.stream_event(tao, members, events.MESSAGE_NEW,
                                  {"thread": thread.id, "message": made, "sender": sender}, near=thread.id)
    redeliver = (DELIVER_JOB, {"message": made, "thread": thread.id, "event": event.event_id, "sender": sender},
                 tao.settings.realtime.redeliver_after_ms, event.event_id)
    jobs = [redeliver, *causes.message_requests(sender, requests, thread.id, made, now_ms())]
    # The members as this request read them (`member_edges`, through its loaders): the
    # delivery needs no second read of the list (it checks it in the thread's transaction).
    # The message and its job commit in the thread's transaction, with its listing; the
    # message.new event is appended to each member's stream in the delivery's transactions
    # and published after they all committed; then its job (the delivery's) is deleted,
    # unless a publish failed (the job publishes again).
    try:
        appended = await deliver(tao, made, sent=msg, memberships=await member_edges(ctx, thread.id), event=event,
                                 known=known, create=(planned, jobs))
    except DuplicateKeyError:
        # Finishing an unfinished try, and that try (or another retry) stored the message first
        if (done := await earlier_try(fresh=True)) is None:
            raise _reused() from None
        return Sent(done, thread if thread.id == done.thread else None)
    await event.published(tao, appended)
    return Sent(msg, thread)


async def deliver(tao: Tao, message_id: int, *, sent: Message | None = None,
                  memberships: list[Assoc] | None = None, event: realtime.PendingEvent | None = None,
                  known: dict | None = None, create: tuple[PlannedObj, list] | None = None) -> list[Appended]:
    """List the message in its thread, move the sender's read marker to it and bump every
    member's folder: one transaction per shard (the thread's, each member's), in parallel.
    Idempotent; also the job. `sent`: the message its writer just stored and whose client key
    it holds (the job and a retry read the message and claim the key again); `memberships`:
    the thread's HAS_MEMBER edges, if the caller has them; `known`: the `folder_keys` edges of
    those members, if the caller has just read them (a first try uses them, not a redo);
    `event`: its stream appends are
    committed in the same transactions (returned, for `event.published`); `create`: the
    message `sent` names, planned and not yet stored (`Tao.obj_plan`), with its jobs: both are
    inserted in the thread's transaction (a duplicate id raises DuplicateKeyError: another try
    stored it). The thread's shard commits first, so an event found in a stream names a
    message already listed.

    The members are those of the thread's transaction, not of the read: that transaction
    locks the member list and checks that it still holds what the writes were computed from
    (who, who declined, the sender's state), and is redone from the list it found if not. So
    a member who left (or declined) before it committed gets nothing, one added before it gets
    everything, and a sender no longer a member delivers nothing: the message is withdrawn
    (deleted, its client key released) and the send answers THREAD_NOT_FOUND."""
    msg = sent if sent is not None else await _stored_message(tao, message_id)
    if msg is None:
        return []  # unsent, or a race's loser
    if memberships is None:
        memberships = await tao.assoc_range(msg.thread, "HAS_MEMBER", 0, MEMBER_PAGE)
    for _ in range(MAX_DELIVERY_TRIES):
        try:
            appended = await _deliver_to(tao, msg, memberships, event, fresh=sent is not None, known=known,
                                         create=create)
        except _MembersMoved as moved:
            memberships, known = moved.members, None
            continue
        if sent is None and not await tao.obj_get([msg.id]):
            # Unsent since the read above (a retry or the job racing an unsend from another
            # device): the listing just written would stay, a message edge with no message,
            # counted unread by every other member for good. The unsend deletes the object
            # before it unlists it, so either its unlisting comes after this write or this look
            # finds the object gone. One object read a retry or job, none on a first send.
            await tao.assoc_delete(msg.thread, "HAS_MESSAGE", msg.id)
        return appended
    raise ConflictError(f"the members of thread {msg.thread} kept changing during a delivery; its job redoes it")


MAX_DELIVERY_TRIES = 4  # a try is redone only when the members changed under it


class _MembersMoved(Exception):
    """The thread's members changed between the delivery's read of them and its transaction."""

    def __init__(self, members: list[Assoc]) -> None:
        super().__init__("the thread's members changed")
        self.members = members


def _reach(members: list[Assoc], sender: int) -> tuple[frozenset, dict | None]:
    """What a delivery's writes depend on in the member list: who is in it and who declined,
    and the sender's own state but its read marker (the delivery rewrites the state with its
    marker moved; where another write moved the marker meanwhile, `_deliver_to` keeps the
    newer one rather than redo the delivery)."""
    mine = next((a.data for a in members if a.id2 == sender), None)
    return (frozenset((a.id2, MemberState.decode(a.data).declined) for a in members),
            None if mine is None else {k: v for k, v in mine.items() if k != "read"})


async def _deliver_to(tao: Tao, msg: Message, memberships: list[Assoc], event: realtime.PendingEvent | None,
                      *, fresh: bool, known: dict | None = None,
                      create: tuple[PlannedObj, list] | None = None) -> list[Appended]:
    """One try of `deliver` with these members; _MembersMoved if the thread's transaction
    found others."""
    mine = next((a for a in memberships if a.id2 == msg.sender), None)
    if mine is None and (fresh or not await tao.assoc_get(msg.thread, "HAS_MESSAGE", [msg.id])):
        await _withdraw(tao, msg)  # the sender left (or was removed) before the message was listed
        raise thread_not_found()
    edges = [(msg.thread, "HAS_MESSAGE", msg.id, msg.created, message_edge_data(msg.sender))]
    if mine is not None and tuple(msg.cursor) > MemberState.decode(mine.data).read:
        # the sender has read their own message (as advance_read_marker: never back, join time kept)
        edges.append((msg.thread, "HAS_MEMBER", msg.sender, mine.time, {**mine.data, "read": list(msg.cursor)}))
    folders, _ = await folder_edges(tao, msg.thread, [a.id2 for a in memberships], msg.sender, msg.created, msg.id,
                                    states={a.id2: a for a in memberships}, known=known)
    seen = _reach(memberships, msg.sender)

    def same_members(current: list[Assoc]) -> list[tuple[int, str, int]]:
        if _reach(current, msg.sender) != seen:
            raise _MembersMoved(current)
        # The sender's marker as it stands now: another send (of a newer message, say) may have
        # moved it past this one, and a marker never goes back: leave this write's out.
        now = next((a for a in current if a.id2 == msg.sender), None)
        if now is not None and MemberState.decode(now.data).read >= tuple(msg.cursor):
            return [(msg.thread, "HAS_MEMBER", msg.sender)]
        return []
    check = ListCheck(msg.thread, "HAS_MEMBER", same_members)
    home = shard_of(msg.thread)
    writes = edges + folders
    appends = [] if event is None else replace(event, user_ids=[a.id2 for a in memberships]).appends()
    # The new message's and both transactions' cache installs go together after the second
    # commit (nothing here reads back what it wrote): one exchange per memcached server and
    # step, not one per transaction and the message's own. Publishing comes after, so a live
    # subscriber's re-read finds them installed.
    async with tao.installs_together():
        _, first = await tao.assoc_add_and_append([e for e in writes if shard_of(e[0]) == home],
                                                  [a for a in appends if shard_of(a[0]) == home], check=check,
                                                  create=None if create is None else [create[0]],
                                                  jobs_by_shard=None if create is None else {home: create[1]})
        _, rest = await tao.assoc_add_and_append([e for e in writes if shard_of(e[0]) != home],
                                                 [a for a in appends if shard_of(a[0]) != home])
    return first + rest


RESUME_WINDOW_MS = 120_000


async def _unfinished_try(tao: Tao, key: str, thread_id: int) -> int | None:
    """The id an earlier try of this send claimed `key` for and stored no message under: that
    try died between its claim and its delivery's commit, or is between them now. This try then
    stores the message under that id (of two tries doing so, the second insert of the id fails
    and that try answers with the other's message). None: a message holds the key (or the id
    is spent: a message unsent since, whose claim is older than RESUME_WINDOW_MS or was made
    for another thread)."""
    held = (await tao.key_get_many(CLIENT_KEYS, [key])).get(key)
    if not held or shard_of(held) != shard_of(thread_id) or now_ms() - time_of(held) > RESUME_WINDOW_MS:
        return None
    if (await tao.obj_get([held])).get(held) is not None:
        return None
    return held


async def _withdraw(tao: Tao, msg: Message) -> None:
    """Take back a message that was never listed: delete it and free its client key (a retry
    is then refused as the send was: the sender is not in the thread)."""
    await tao.obj_delete(msg.id)
    if msg.client_id is not None:
        await tao.key_release(CLIENT_KEYS, client_key(msg.sender, msg.client_id), msg.id)


async def _stored_message(tao: Tao, message_id: int) -> Message | None:
    """The message, if it is stored and its client key names it (claiming the key if no one
    did: the job of a send whose writer died before its claim); None otherwise."""
    msg = _record((await tao.obj_get([message_id])).get(message_id))
    if not is_message(msg):
        return None
    key = None if msg.client_id is None else client_key(msg.sender, msg.client_id)
    if key is not None and not await tao.key_claim(CLIENT_KEYS, key, msg.id):
        await tao.obj_delete(msg.id)  # the job of a send that lost the key: its writer deletes it too
        return None
    return msg


async def advance_read_marker(tao: Tao, thread_id: int, user_id: int, cursor: tuple[int, int],
                              jobs: list[tuple] | None = None) -> bool:
    """Move the member's read marker forward to `cursor` (never back), committing `jobs` with
    the move; True if it moved. Compared with the marker as the write finds it (a newer mark
    from another device, or the member's own send, may have moved it past `cursor` meanwhile)."""
    def forward(data: dict) -> dict | None:
        return {**data, "read": list(cursor)} if tuple(cursor) > MemberState.decode(data).read else None
    return await update_member_state(tao, thread_id, user_id, forward, jobs=jobs)


async def deliver_job(job: JobContext, payload: dict) -> None:
    """The repair of a send whose writer did not finish: deliver (idempotently) and, for the
    message's event (its id is the job's), append it to the members found and publish every
    member's copy again, raising (the outbox retries with backoff) until the broker takes them
    all. A job written before events rode with it has no "event": its event has a job of its own."""
    tao = job.tao
    message = int(payload["message"])
    event = None
    if "event" in payload:
        # The ids its writer appended, exactly (an append is idempotent only for the same data);
        # a job written before events named their sender has none.
        ids = {"thread": int(payload["thread"]), "message": message}
        if "sender" in payload:
            ids["sender"] = int(payload["sender"])
        event = realtime.PendingEvent(int(payload["event"]), [], events.MESSAGE_NEW, ids, ())
    try:
        appended = await deliver(tao, message, event=event)
    except UserError:
        return  # withdrawn: its sender was no longer in the thread, and nothing was delivered
    if event is not None:
        _, published = await realtime.publish_appended(tao, appended, event.kind, event.ids, republish=True)
        if not published:
            raise RuntimeError("the broker did not take every publish of a message's event; retrying")
