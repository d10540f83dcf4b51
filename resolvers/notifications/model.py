"""What a notification is: its types, its record, and the group key that folds events together.

A NOTIFICATION object is one *group*: every event with the same group key inside one window
(a like of post P between 12:00 and 24:00; new followers on one UTC day), or one ungrouped
event (a comment, a mention, a follow request, a message request). Its data is small and fixed
at creation: {"t": type, "tg": target id, "p": the post a comment target belongs to, "s": the
window's start}. What changes as events arrive is kept in the store's own exact lists:

- `(notification, NOTIF_ACTOR, actor)`: who did it; its count is the exact number of distinct
  actors and its head the latest few (an undo deletes the edge);
- `(recipient, NOTIFIED, notification)`: the recipient's list, its time the latest update, so a
  group moves to the top when a new actor joins.

`Notification` is the record the rest of the domain reads; `decode` is the one place that reads
the stored dict (`Obj.data`); the loaders return it through `resolvers.records.record_of`.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import ClassVar

from resolvers.records import Record, register_record
from tao import Obj

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class NotificationType(enum.Enum):
    LIKE = "LIKE"                          # someone liked your post             (grouped per post, window)
    COMMENT_LIKE = "COMMENT_LIKE"          # someone liked your comment          (grouped per comment, window)
    COMMENT = "COMMENT"                    # someone commented on your post
    REPLY = "REPLY"                        # someone replied to your comment
    MENTION = "MENTION"                    # someone mentioned you in a caption or a comment
    FOLLOW = "FOLLOW"                      # someone followed you                (grouped per UTC day)
    FOLLOW_REQUEST = "FOLLOW_REQUEST"      # someone asked to follow your private account
    FOLLOW_ACCEPTED = "FOLLOW_ACCEPTED"    # someone accepted your follow request
    MESSAGE_REQUEST = "MESSAGE_REQUEST"    # someone you do not follow sent you a message request
    NEW_DEVICE_LOGIN = "NEW_DEVICE_LOGIN"  # your account was logged in to from a device it never used
    PASSWORD_CHANGED = "PASSWORD_CHANGED"  # your account's password was changed
    USERNAME_CHANGED = "USERNAME_CHANGED"  # your account's username was changed
    DATA_EXPORT_REQUESTED = "DATA_EXPORT_REQUESTED"  # a download of your account's data was requested


class Level(enum.Enum):
    """Instagram's three levels per type: who may notify you."""
    OFF = "OFF"
    FOLLOWING = "FOLLOWING"  # only people you follow
    EVERYONE = "EVERYONE"


# Grouping windows. Likes fold per target for 12 hours (Mastodon's grouped notifications use a
# 12-hour span too): long enough that a viral post's hour of likes is one row, short enough that
# "liked your post" from yesterday and today are separate lines with honest times. New followers
# fold per UTC day, as Instagram shows them. Every other type is one notification per event.
GROUP_WINDOW_MS: dict[NotificationType, int] = {
    NotificationType.LIKE: 12 * HOUR_MS,
    NotificationType.COMMENT_LIKE: 12 * HOUR_MS,
    NotificationType.FOLLOW: DAY_MS,
}

# Security notices: a change to the account's credentials or data that its owner must hear of
# ("your password was changed"), whoever made it. The cause is the account itself, and each
# change is its own notification (its time is in the group key).
ACCOUNT_NOTICES = frozenset({NotificationType.PASSWORD_CHANGED, NotificationType.USERNAME_CHANGED,
                             NotificationType.DATA_EXPORT_REQUESTED})
# About the recipient's own account: the actor is the recipient (its target, the session or the
# account, is not shown: it says nothing the preview does not), and no block, mute or level but
# OFF applies.
SELF_TYPES = frozenset({NotificationType.NEW_DEVICE_LOGIN, *ACCOUNT_NOTICES})
# Types whose target is the actor (no separate object is loaded for them).
ACTOR_IS_TARGET = frozenset({NotificationType.FOLLOW, NotificationType.FOLLOW_REQUEST,
                             NotificationType.FOLLOW_ACCEPTED, *SELF_TYPES})

# Pushed at once; the other types' pushes are batched per group (docs/notifications.md).
IMMEDIATE_PUSH = frozenset({NotificationType.MENTION, NotificationType.MESSAGE_REQUEST, *SELF_TYPES})

LATEST_ACTORS = 3  # how many actors a notification names ("ada, bob and 10 others")


@dataclass(frozen=True, slots=True)
class Event:
    """One notifiable event: `actor` did `type` to `target`, telling `recipient`.

    `cause` is the edge or object whose existence *is* the event (the LIKES edge, the comment):
    the recording job checks it still exists, so an event undone before its job ran never shows.
    `at` is the cause's time (ms): it picks the group window, for the record and for the undo.
    `post` is the post a comment target belongs to (for privacy and the preview)."""

    type: NotificationType
    recipient: int
    actor: int
    target: int
    at: int
    cause: tuple[int, str, int] | int
    post: int | None = None

    def payload(self) -> dict:
        cause = list(self.cause) if isinstance(self.cause, tuple) else self.cause
        return {"t": self.type.value, "r": self.recipient, "a": self.actor, "tg": self.target, "at": self.at,
                "c": cause, "p": self.post}

    @classmethod
    def from_payload(cls, p: dict) -> Event:
        c = p["c"]
        cause = (int(c[0]), str(c[1]), int(c[2])) if isinstance(c, list) else int(c)
        return cls(NotificationType(p["t"]), int(p["r"]), int(p["a"]), int(p["tg"]), int(p["at"]), cause,
                   None if p.get("p") is None else int(p["p"]))

    @property
    def grouped(self) -> bool:
        return self.type in GROUP_WINDOW_MS

    def window_start(self) -> int:
        window = GROUP_WINDOW_MS.get(self.type)
        return self.at - self.at % window if window else self.at

    def group_key(self) -> str:
        """The unique key (per recipient) of the notification this event joins. Grouped: type,
        target and window; ungrouped: type and the cause itself, so a retried job finds the
        notification it made instead of making a second."""
        if self.type is NotificationType.FOLLOW:
            base = f"{self.type.value}:{self.window_start()}"
        elif self.grouped:
            base = f"{self.type.value}:{self.target}:{self.window_start()}"
        else:
            cause = ":".join(map(str, self.cause)) if isinstance(self.cause, tuple) else str(self.cause)
            base = f"{self.type.value}:{self.target}:{cause}"
            if self.type in ACCOUNT_NOTICES:  # the cause (the account) is one for every change
                base += f":{self.at}"
        # unique keys are at most 255 characters; a digest keeps every key short and uniform
        return f"{self.recipient}:{hashlib.sha1(base.encode()).hexdigest()}"


@dataclass(slots=True, frozen=True)
class Notification(Record):
    """One notification (a group) as the domain reads it: the loaders return it (`record_of`)."""

    otype: ClassVar[str] = "NOTIFICATION"
    type: NotificationType
    target: int
    post: int | None
    window_start: int

    @classmethod
    def decode(cls, obj: Obj) -> Notification:
        """The NOTIFICATION codec: the only reader of its stored dict (KeyError/ValueError on
        data it cannot read, which `record_of` turns into `Unknown`)."""
        d = obj.data
        post = d.get("p")
        return cls(obj.id, obj.version, obj.created, obj.updated, NotificationType(d["t"]), int(d["tg"]),
                   None if post is None else int(post), int(d.get("s", obj.created)))


register_record(Notification.otype, Notification.decode)


def encode(event: Event) -> dict:
    return {"t": event.type.value, "tg": event.target, "p": event.post, "s": event.window_start()}
