"""Edge payloads: one codec per association type whose edges carry data.

Edge data is stored with short keys (a FEED list holds hundreds of edges per viewer, and every
key is repeated in each edge and in the cache's copy of the list), so nothing outside this
module reads or writes those keys: writers call the `*_data` encoders, readers the decoders
(plain functions or a small record: a feed read decodes hundreds of edges, so the hot ones
build nothing).

| atype | data | codec |
|---|---|---|
| FEED (viewer -> post) | `{"a": author, "k": kind, "s": shown at}` | `feed_edge_data`; as LIKES, and `edge_shown` |
| LIKES (user -> post) | `{"a": author, "k": kind}` | `like_data`; `edge_author`, `edge_kind` |
| AUTHORED (user -> post) | `{"k": kind}` | `authored_data`; `edge_kind` |
| HAS_MESSAGE (thread -> message) | `{"s": sender}` | `message_edge_data`, `message_sender` |
| REACTED_BY (message -> user) | `{"e": emoji}` | `reaction_data`, `reaction_emoji` |
| HAS_MEMBER (thread -> user) | `{"read": [time, message id], "declined": bool}` | `member_data`; `MemberState` |
| BIG_ACCOUNT (registry -> author) | `{"until": ms or null}` | `big_account_data`, `big_until` |
| STREAM_EVENT (user -> event) | `{"k": kind, "i": {name: id}}` | `stream_event_data`, `StreamEntry` |

`messages.member_state.set_member_state` merges its keywords, which are `member_data`'s keys, into a
HAS_MEMBER edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resolvers.records import Post

EdgeData = Mapping[str, Any]


# FEED, LIKES, AUTHORED: what ranking needs of a post without loading it ----------------------

def edge_author(data: EdgeData) -> int | None:
    """The post's author as a FEED or LIKES edge says (None: a like written before edges said)."""
    author = data.get("a")
    return int(author) if author else None


def edge_kind(data: EdgeData) -> str | None:
    """The post's kind (`PostKind` value) as a FEED, LIKES or AUTHORED edge says, or None."""
    return data.get("k")


def edge_shown(data: EdgeData) -> bool:
    """Whether the viewer was shown (scrolled past) the post of this FEED edge."""
    return "s" in data


def feed_edge_data(author: int, kind: str | None, shown: int | None = None) -> dict[str, Any]:
    """A FEED edge's data: the author (so a removal can find the author's edges) and the post's
    kind (ranking's content-type preference), and when it was shown."""
    data: dict[str, Any] = {"a": author}
    if kind:
        data["k"] = kind
    if shown is not None:
        data["s"] = shown
    return data


def like_data(post: Post) -> dict[str, Any]:
    """A LIKES edge's data: the liked post's author and kind, so the viewer's affinities can be
    ranked from the likes list alone."""
    return {"a": post.author, "k": post.kind.value}


def authored_data(post: Post) -> dict[str, Any]:
    """An AUTHORED edge's data: the post's kind, so feed ranking need not load pulled posts."""
    return {"k": post.kind.value}


# Direct messages -----------------------------------------------------------------------------

def message_edge_data(sender: int) -> dict[str, Any]:
    return {"s": sender}


def message_sender(data: EdgeData) -> int | None:
    sender = data.get("s")
    return int(sender) if sender is not None else None


def reaction_data(emoji: str) -> dict[str, Any]:
    return {"e": emoji}


def reaction_emoji(data: EdgeData) -> str:
    return str(data["e"])


@dataclass(slots=True, frozen=True)
class MemberState:
    """A thread member's state: the newest message they have read, as (time, message id), and
    whether they declined the thread (a message request)."""

    read: tuple[int, int]
    declined: bool

    @classmethod
    def decode(cls, data: EdgeData) -> MemberState:
        read = data.get("read") or (0, 0)
        return cls((int(read[0]), int(read[1])), bool(data.get("declined")))


def member_data(read: tuple[int, int] | None = None, declined: bool | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if read is not None:
        data["read"] = [read[0], read[1]]
    if declined is not None:
        data["declined"] = declined
    return data


# The feed's registry of big accounts --------------------------------------------------------

def big_account_data(until: int | None) -> dict[str, Any]:
    return {"until": until}


def big_until(data: EdgeData) -> int | None:
    """When the account stopped being big (None: it still is)."""
    return data.get("until")


# Event streams -------------------------------------------------------------------------------

def stream_event_data(kind: str, ids: Mapping[str, int]) -> dict[str, Any]:
    return {"k": kind, "i": dict(ids)}


@dataclass(slots=True, frozen=True)
class StreamEntry:
    kind: str
    ids: dict[str, int]

    @classmethod
    def decode(cls, data: EdgeData) -> StreamEntry:
        return cls(data.get("k", ""), {k: int(v) for k, v in (data.get("i") or {}).items()})
