"""Direct messages' stored shapes (THREAD and MESSAGE, read as `resolvers.records.Thread` and
`Message`), error codes, limits.

A THREAD lives on its creator's shard with data {kind (`ThreadKind`), name, creator, pair}.
A MESSAGE lives on its thread's shard (`obj_add(..., owner=thread)`) with data
  thread, sender, kind ("text" | "post" | "media" | "voice"), body (sealed text, see crypto),
  post, media, reply_to, client_id, fp (HMAC of the send's content, for idempotent retries),
  edited (ms, once edited).
Edges (tao/types.py): thread -HAS_MEMBER-> user (⇄ MEMBER_OF; data: the member's read marker
`read` = [time, message id] and `declined`), thread -HAS_MESSAGE-> message (time = sent, data:
sender; `edge_data.MemberState`, `message_sender`), user -INBOX-> / -DM_REQUESTS-> thread
(time = last activity), user -UNREAD_THREAD-> thread, user -MUTED_THREAD-> thread,
message -REACTED_BY-> user (data: emoji).
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import TypeGuard

from config.settings import ConfigError, MessageSettings
from resolvers.errors import UserError
from resolvers.messages.crypto import BodyCipher
from resolvers.records import Message, Thread, ThreadKind
from tao.types import DM_CLIENT_KEYS

DIRECT, GROUP = ThreadKind.DIRECT.value, ThreadKind.GROUP.value
TEXT, POST, MEDIA, VOICE = "text", "post", "media", "voice"
THREAD_NAME_MAX = 100
EMOJI_MAX = 16
CLIENT_ID_MAX = 64
PAIR_KEYS = "dm_pair"          # unique-key namespace: "lo:hi" user ids -> their direct thread
CLIENT_KEYS = DM_CLIENT_KEYS  # unique-key namespace: "sender:clientMessageId" -> message; uncached (tao/types.py)


def client_key(sender: int, client_id: str) -> str:
    """A send's key in CLIENT_KEYS: it names the message (or, once unsent, its thread)."""
    return f"{sender}:{client_id}"


class MessageErrorCode(enum.Enum):
    THREAD_NOT_FOUND = "THREAD_NOT_FOUND"
    MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    CANNOT_MESSAGE_SELF = "CANNOT_MESSAGE_SELF"
    TOO_LONG = "TOO_LONG"
    EMPTY = "EMPTY"
    TOO_MANY_MEMBERS = "TOO_MANY_MEMBERS"
    NOT_A_GROUP = "NOT_A_GROUP"
    NAME_INVALID = "NAME_INVALID"
    CLIENT_ID_INVALID = "CLIENT_ID_INVALID"
    CLIENT_ID_REUSED = "CLIENT_ID_REUSED"
    POST_NOT_FOUND = "POST_NOT_FOUND"
    MEDIA_INVALID = "MEDIA_INVALID"
    EMOJI_INVALID = "EMOJI_INVALID"
    NOT_SENDER = "NOT_SENDER"
    NOT_EDITABLE = "NOT_EDITABLE"
    REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"


def thread_not_found(field: str = "threadId") -> UserError:
    # The same error for a thread that does not exist and one the viewer is not in: no leak.
    return UserError(MessageErrorCode.THREAD_NOT_FOUND, "No such conversation: check the id.", field)


def message_not_found(field: str = "messageId") -> UserError:
    return UserError(MessageErrorCode.MESSAGE_NOT_FOUND, "No such message: it was unsent, or check the id.", field)


def message_data(thread: int, sender: int, kind: str, *, body: dict | None, post: int | None, media: int | None,
                 reply_to: int | None, client_id: str | None, fp: str | None, story: int | None = None,
                 story_reaction: bool | None = None) -> dict:
    data = {"thread": thread, "sender": sender, "kind": kind, "body": body, "post": post, "media": media,
            "reply_to": reply_to, "client_id": client_id, "fp": fp, "story": story,
            "story_reaction": story_reaction or None}
    return {k: v for k, v in data.items() if v is not None}


def is_thread(obj: object) -> TypeGuard[Thread]:
    return isinstance(obj, Thread)


def is_message(obj: object) -> TypeGuard[Message]:
    return isinstance(obj, Message)


@lru_cache(maxsize=16)
def _cipher(active: str, keys: tuple[tuple[str, str], ...]) -> BodyCipher:
    return BodyCipher(MessageSettings(encryption_keys=dict(keys), active_key=active))


def cipher(settings: MessageSettings) -> BodyCipher:
    """The process's cipher for these settings (built once: key parsing is not free)."""
    return _cipher(settings.active_key, tuple(sorted(settings.encryption_keys.items())))


def check_keys(settings: MessageSettings) -> None:
    """Refuse to start with message keys that cannot seal (a server must not fail at the first send)."""
    try:
        cipher(settings)
    except ValueError as exc:
        raise ConfigError(f"{exc} (see docs/messages.md, \"Encryption at rest and key rotation\")") from None
