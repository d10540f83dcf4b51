"""The events each cause produces: plain functions of ids and a time, returning outbox jobs.

A domain action adds these to the `jobs=` of the write that *is* the cause (the LIKES edge, the
comment's parent edge, the FOLLOWS edge), and the matching `undo_*` to the write that undoes it,
so a notification's events commit with their cause. They read nothing: the recording job
checks blocks, mutes, preferences and whether the cause still exists (`record.py`). The one
exception, `leave_notification_groups`, is an account purge's undo of its likes and follows: it
reads the targets' authors and retracts at once (no cause's transaction to commit jobs with).
"""

from __future__ import annotations

import asyncio

from resolvers.notifications.model import ACCOUNT_NOTICES, Event, NotificationType
from resolvers.notifications.record import notify, remove_actor, retract
from resolvers.records import Comment, Post, record_of
from tao import Assoc, Tao

T = NotificationType


def _jobs(events: list[Event], undo: bool = False) -> list[tuple[str, dict]]:
    make = retract if undo else notify
    return [make(e) for e in events if e.actor != e.recipient]


def like_post(actor: int, post_id: int, author: int, at: int, *, undo: bool = False) -> list[tuple[str, dict]]:
    return _jobs([Event(T.LIKE, author, actor, post_id, at, (actor, "LIKES", post_id), post_id)], undo)


def like_comment(actor: int, comment_id: int, author: int, post_id: int, at: int, *,
                 undo: bool = False) -> list[tuple[str, dict]]:
    return _jobs([Event(T.COMMENT_LIKE, author, actor, comment_id, at, (actor, "COMMENT_LIKES", comment_id), post_id)],
                 undo)


def comment(actor: int, comment_id: int, post_id: int, post_author: int, reply_to_author: int | None,
            mentions: list[int], at: int, *, undo: bool = False) -> list[tuple[str, dict]]:
    """A comment tells the post's author (or, for a reply, the author of the comment replied to)
    and each user it mentions (once: a mention of the author adds nothing)."""
    events = []
    if reply_to_author is not None:
        events.append(Event(T.REPLY, reply_to_author, actor, comment_id, at, comment_id, post_id))
    else:
        events.append(Event(T.COMMENT, post_author, actor, comment_id, at, comment_id, post_id))
    told = {events[0].recipient}
    events += [Event(T.MENTION, u, actor, comment_id, at, comment_id, post_id) for u in dict.fromkeys(mentions)
               if u not in told]
    return _jobs(events, undo)


def caption_mentions(actor: int, post_id: int, mentions: list[int], at: int, *,
                     undo: bool = False) -> list[tuple[str, dict]]:
    """A published caption's mentions (at publish, and those a caption edit adds or, with undo,
    takes away). The cause is the post: the group key does not depend on `at`."""
    return _jobs([Event(T.MENTION, u, actor, post_id, at, post_id, post_id) for u in dict.fromkeys(mentions)], undo)


def story_mentions(actor: int, story_id: int, mentions: list[int], at: int) -> list[tuple[str, dict]]:
    """A story's @mention stickers: each mentioned account hears of it (shown while the story
    is visible to them, as every target is)."""
    return _jobs([Event(T.MENTION, u, actor, story_id, at, story_id) for u in dict.fromkeys(mentions)])


def follow(actor: int, user_id: int, at: int, *, undo: bool = False) -> list[tuple[str, dict]]:
    return _jobs([Event(T.FOLLOW, user_id, actor, actor, at, (actor, "FOLLOWS", user_id))], undo)


def follow_request(actor: int, user_id: int, at: int, *, undo: bool = False) -> list[tuple[str, dict]]:
    return _jobs([Event(T.FOLLOW_REQUEST, user_id, actor, actor, at, (actor, "FOLLOW_REQUESTED", user_id))], undo)


def follow_accepted(approver: int, requester: int, requested_at: int, at: int) -> list[tuple[str, dict]]:
    """Approving a request: the requester hears it was accepted, the approver's request
    notification goes, and the approver gains a follower. The FOLLOWS edge keeps the request's
    time (`assoc_change_type`), so the follower event uses it too: the unfollow finds it by it."""
    return [*_jobs([Event(T.FOLLOW_ACCEPTED, requester, approver, approver, at, (requester, "FOLLOWS", approver))]),
            *follow_request(requester, approver, requested_at, undo=True),
            *follow(requester, approver, requested_at)]


def account_notice(kind: NotificationType, user_id: int, at: int, *, undo: bool = False) -> list[tuple[str, dict]]:
    """A security notice (`model.ACCOUNT_NOTICES`: the password or username changed, a data
    export requested): the account hears of it, for the write that makes the change (with undo,
    for the write that takes the change back: the notice made at `at` is withdrawn)."""
    assert kind in ACCOUNT_NOTICES
    event = Event(kind, user_id, user_id, user_id, at, user_id)
    return [retract(event) if undo else notify(event)]


def message_requests(actor: int, recipients: list[int], thread_id: int, message_id: int,
                     at: int) -> list[tuple[str, dict]]:
    """The first message to someone who does not follow the sender (a message request)."""
    return _jobs([Event(T.MESSAGE_REQUEST, r, actor, thread_id, at, message_id) for r in recipients])


def new_device_login(user_id: int, session_id: int, at: int) -> list[tuple[str, dict]]:
    """A log-in from a device the account never used: the account hears of it (the cause is
    the session: revoked before the job ran, nothing is said)."""
    return [notify(Event(T.NEW_DEVICE_LOGIN, user_id, user_id, session_id, at, session_id))]


async def leave_notification_groups(tao: Tao, actor: int, atype: str, edges: list[Assoc]) -> None:
    """An account's likes (LIKES, COMMENT_LIKES) or follows (FOLLOWS) about to be purged: it
    leaves the notification groups they made at once, as their undo would (`record.remove_actor`,
    the window found by each edge's time). Past a group's scan, its count knows of an account
    pending deletion only through its tally on the target (`reads._hidden_beyond_scan`), which
    the purge removes before the NOTIF_ACTOR edges to the account (account_data's `inbound`
    kind): in between it was counted again (docs/notifications.md)."""
    jobs: list[tuple[str, dict]] = []
    if atype == "FOLLOWS":
        jobs = [j for e in edges for j in follow(actor, e.id2, e.time, undo=True)]
    elif atype in ("LIKES", "COMMENT_LIKES"):
        targets = await tao.obj_get([e.id2 for e in edges])
        for e in edges:
            t = record_of(targets[e.id2]) if e.id2 in targets else None
            if isinstance(t, Post) and atype == "LIKES":
                jobs += like_post(actor, t.id, t.author, e.time, undo=True)
            elif isinstance(t, Comment) and atype == "COMMENT_LIKES":
                jobs += like_comment(actor, t.id, t.author, t.post, e.time, undo=True)
    await asyncio.gather(*(remove_actor(tao, Event.from_payload(payload)) for _, payload in jobs))
