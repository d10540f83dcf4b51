"""The events messaging writes put in members' streams (resolvers.realtime): kinds and ids only.

Every write that changes what members see builds its event with `event(...)` before the write,
commits `ev.job` in the write's own transaction (`jobs=`), and calls `ev.deliver(tao)` after
the commit: an event exists exactly when its cause committed, and it is published only after.
A subscriber re-reads what an event names through its own loaders and privacy before it
delivers anything, so an event never shows a member what they may not see (a blocked sender's
message, a declined thread). Typing is ephemeral: published, never stored.

Kinds (ids):
  message.new      thread, message          message.unsent   thread, message, user (its sender)
  message.edited   thread, message
  message.reaction thread, message, user    receipt.read     thread, user, message (read up to)
  thread.added     thread                   thread.updated   thread (name or members changed)
  thread.removed   thread (left, declined)  typing           thread, user, typing (1 or 0); ephemeral
"""

from __future__ import annotations

from collections.abc import Iterable

from resolvers import realtime
from tao import Tao

MESSAGE_NEW = "message.new"
MESSAGE_UNSENT = "message.unsent"
MESSAGE_EDITED = "message.edited"
REACTION = "message.reaction"
READ = "receipt.read"
TYPING = "typing"
THREAD_ADDED = "thread.added"
THREAD_REMOVED = "thread.removed"
THREAD_UPDATED = "thread.updated"
KINDS = (MESSAGE_NEW, MESSAGE_UNSENT, MESSAGE_EDITED, REACTION, READ, TYPING, THREAD_ADDED, THREAD_REMOVED,
         THREAD_UPDATED)


class NoEvent:
    """Stands in when there is no one to tell: no job, nothing to deliver."""

    job = None

    async def deliver(self, tao: Tao) -> list:
        return []


def event(tao: Tao, user_ids: Iterable[int], kind: str, *, near: int, **ids: int) -> realtime.PendingEvent | NoEvent:
    """A stored event for each of `user_ids`, caused by a write on `near`'s shard."""
    users = list(dict.fromkeys(user_ids))
    if not users:
        return NoEvent()
    return realtime.stream_event(tao, users, kind, dict(ids), near=near)


def jobs_of(*events: realtime.PendingEvent | NoEvent) -> list[tuple]:
    return [e.job for e in events if e.job is not None]


async def publish_typing(tao: Tao, user_ids: list[int], thread_id: int, user_id: int, typing: bool) -> None:
    if user_ids:
        await realtime.publish_ephemeral(tao, user_ids, TYPING, {"thread": thread_id, "user": user_id,
                                                                 "typing": int(typing)})
