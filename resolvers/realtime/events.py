"""What a real-time event is: `StreamEvent`, its cursor, its channel, and the close codes.

An event names ids only (`ids`, e.g. `{"thread": 1, "message": 2}`), never content: whoever
delivers it re-reads the objects through the subscriber's own loaders and privacy. A *stored*
event (in the user's stream: `STREAM_EVENT` edges) has a `cursor` that orders the user's stream
in commit order and an `event_id`; an *ephemeral* one (typing) has neither and is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resolvers.errors import BadInputError

STREAM_ATYPE = "STREAM_EVENT"

# WebSocket close codes the real-time layer uses (graphql-transport-ws keeps 44xx for the protocol).
CLOSE_GOING_AWAY = 1001          # the server process is shutting down: reconnect (to another one)
CLOSE_TRY_AGAIN_LATER = 1013     # the store failed for seconds: reconnect and resume by cursor
CLOSE_SLOW_CONSUMER = 1013       # "try again later" too: events queued past realtime.queue_size
CLOSE_FORBIDDEN = 4403           # no valid session: bad token, logged out, revoked or expired
CLOSE_RATE_LIMITED = 4429        # more client messages than realtime.messages_per_second allows

# Kinds of the layer itself; domains define their own (e.g. "message.new") next to their writes.
KIND_NEW_FOLLOWER = "follow.new"          # ids: {"user": follower}            (stored)
KIND_FOLLOW_REQUEST = "follow.request"    # ids: {"user": requester}           (stored)
KIND_SESSION_REVOKED = "session.revoked"  # ids: {"session": session id}       (ephemeral)


def user_channel(user_id: int) -> str:
    """The broker channel of one user's stream: every event for the user is published here."""
    return f"u:{user_id}"


@dataclass(slots=True)
class StreamEvent:
    user_id: int                      # whose stream
    kind: str
    ids: dict[str, int] = field(default_factory=dict)
    position: int | None = None       # the stream position (STREAM_EVENT edge time); None: ephemeral
    prev: int | None = None           # the position of the stream's event before this one
    event_id: int | None = None       # the STREAM_EVENT edge's id2; None: ephemeral

    @property
    def stored(self) -> bool:
        return self.position is not None

    @property
    def cursor(self) -> str | None:
        """The opaque resume cursor (`after:`) of a stored event."""
        return None if self.position is None else encode_cursor(self.position)

    def to_message(self) -> dict[str, Any]:
        """The broker message: ids only."""
        msg: dict[str, Any] = {"u": self.user_id, "k": self.kind, "i": self.ids}
        if self.position is not None:
            msg.update(c=self.position, p=self.prev, e=self.event_id)
        return msg

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> StreamEvent:
        return cls(int(msg["u"]), str(msg["k"]), {str(k): int(v) for k, v in dict(msg.get("i") or {}).items()},
                   msg.get("c"), msg.get("p"), msg.get("e"))


CURSOR_PREFIX = "s"


def encode_cursor(position: int) -> str:
    return f"{CURSOR_PREFIX}{position}"


def decode_cursor(cursor: str | None, field_name: str = "after") -> int | None:
    """The stream position after which to resume; None (live events only) for None."""
    if cursor is None:
        return None
    body = cursor[len(CURSOR_PREFIX):] if cursor.startswith(CURSOR_PREFIX) else ""
    if not body.isascii() or not body.isdigit() or len(body) > 19:
        raise BadInputError(f"`{field_name}` is not a stream cursor: pass the `cursor` of the last event "
                            "you received, or omit it to start from the stored events you have not seen.")
    return int(body)
