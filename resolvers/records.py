"""The domain's records: one small, read-only value per object type, decoded once from the store.

The store answers objects as `Obj(id, otype, version, created, updated, data)` with `data` a
JSON dict; everything above the loaders reads records instead: `post.status is
PostStatus.VISIBLE`, `post.author`, never `obj.data.get("status") == "visible"`. `record_of`
is the one decoder (the loaders call it, so a request decodes each object once); each record's
`decode` is its type's one codec, and the status and kind literals appear only in the enums below.

Invariants: a record never changes (frozen) and carries only what its stored data says plus the
object's id, version and times; a missing optional field has one default, set here. An object
of a type without a record, or whose data its codec cannot read, decodes to `Unknown` (its raw
data, read-only), which no privacy rule shows. A domain package that adds an object type
registers its decoder with `register_record` (the feed's FEED_SESSION does).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from tao import Obj


class PostStatus(enum.Enum):
    VISIBLE = "visible"
    PROCESSING = "processing"
    FAILED = "failed"  # one of its media failed: never published; its author sees why on the media


class PostKind(enum.Enum):
    """What a post shows: one photo, one video, or several (ranking's content-type preference)."""
    PHOTO = "photo"
    VIDEO = "video"
    CAROUSEL = "carousel"


class MediaStatus(enum.Enum):
    UPLOADING = "uploading"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class MediaKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"  # voice messages (resolvers.messages), never posts


class ThreadKind(enum.Enum):
    DIRECT = "direct"
    GROUP = "group"


@dataclass(slots=True, frozen=True)
class Record:
    """What every record has: the object's id and its times (ms since the Unix epoch)."""

    otype: ClassVar[str] = ""
    id: int
    version: int
    created: int
    updated: int


@dataclass(slots=True, frozen=True)
class RecoveryCode:
    """One two-factor recovery code as stored: a public hint (its first characters, to find
    which hash to check) and the argon2id hash of the whole code."""

    hint: str
    hash: str
    used: bool


@dataclass(slots=True, frozen=True)
class TwoFactor:
    """A user's TOTP state (USER data "two_factor"): the shared secret (set while enrolling,
    `enabled` once a code confirmed it), the last accepted time step (a code of that step or an
    earlier one is refused), and the recovery codes of the current generation."""

    secret: str
    enabled: bool
    last_step: int
    generation: int
    codes: tuple[RecoveryCode, ...]

    @classmethod
    def decode(cls, d: Mapping[str, Any] | None) -> TwoFactor | None:
        if not d:
            return None
        codes = tuple(RecoveryCode(str(c["i"]), str(c["h"]), bool(c.get("u"))) for c in d.get("codes") or ())
        return cls(str(d["secret"]), bool(d.get("enabled")), int(d.get("last_step", 0)),
                   int(d.get("generation", 0)), codes)

    def encode(self) -> dict[str, Any]:
        return {"secret": self.secret, "enabled": self.enabled, "last_step": self.last_step,
                "generation": self.generation,
                "codes": [{"i": c.hint, "h": c.hash, "u": c.used} for c in self.codes]}


@dataclass(slots=True, frozen=True)
class User(Record):
    otype: ClassVar[str] = "USER"
    username: str
    full_name: str
    bio: str
    website: str
    is_private: bool
    profile_picture_id: int | None
    is_developer: bool
    password_hash: str | None
    last_active: int | None  # feed: when the account last read its feed
    feed_rebuild: int | None  # feed: set while its feed is being rebuilt after inactivity
    deactivated: bool = False  # account deletion requested (resolvers.account_data): hidden everywhere
    two_factor: TwoFactor | None = None  # resolvers.two_factor: None when never enrolled

    @classmethod
    def decode(cls, obj: Obj) -> User:
        d = obj.data
        picture = d.get("profile_picture_id")
        return cls(obj.id, obj.version, obj.created, obj.updated, d["username"], d.get("full_name", ""),
                   d.get("bio", ""), d.get("website", ""), bool(d.get("is_private")),
                   int(picture) if picture is not None else None, bool(d.get("is_developer")),
                   d.get("password_hash"), d.get("last_active"), d.get("feed_rebuild"), bool(d.get("deletion")),
                   TwoFactor.decode(d.get("two_factor")))


@dataclass(slots=True, frozen=True)
class AuthSession(Record):
    """A signed-in session (SESSION): its token's hash, when it expires, and what the account's
    owner sees of it (resolvers.sessions): the device named from its User-Agent, the client
    address that opened it, and when it was last used (rewritten at most once a minute)."""

    otype: ClassVar[str] = "SESSION"
    user_id: int
    expires_at: int
    token_hash: str
    device: str = ""
    ip: str = ""
    last_used: int = 0

    @classmethod
    def decode(cls, obj: Obj) -> AuthSession:
        d = obj.data
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["user_id"]), int(d["expires_at"]),
                   d.get("token_hash", ""), str(d.get("device", "")), str(d.get("ip", "")),
                   int(d.get("last_used") or obj.created))


@dataclass(slots=True, frozen=True)
class LogInChallenge(Record):
    """The second step of a log-in to an account with two-factor on (LOGIN_CHALLENGE, on the
    user's shard): its token's hash, when it expires, the wrong codes tried so far, and the
    device and address the session will record."""

    otype: ClassVar[str] = "LOGIN_CHALLENGE"
    user_id: int
    expires_at: int
    token_hash: str
    attempts: int
    device_name: str
    device_family: str
    ip: str
    password_tag: str | None = None  # which password earned it (resolvers.two_factor.password_tag)

    @classmethod
    def decode(cls, obj: Obj) -> LogInChallenge:
        d = obj.data
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["user_id"]), int(d["expires_at"]),
                   str(d["token_hash"]), int(d.get("attempts", 0)), str(d.get("device_name", "")),
                   str(d.get("device_family", "")), str(d.get("ip", "")), d.get("pw"))


@dataclass(slots=True, frozen=True)
class Post(Record):
    otype: ClassVar[str] = "POST"
    author: int
    caption: str
    status: PostStatus
    kind: PostKind
    hashtags: tuple[str, ...]
    hashtag_ids: tuple[int, ...]
    mentions: tuple[int, ...]
    location: int | None
    media: tuple[int, ...]
    published_at: int | None

    @classmethod
    def decode(cls, obj: Obj) -> Post:
        d = obj.data
        location = d.get("location")
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["author"]), d.get("caption", ""),
                   PostStatus(d.get("status", PostStatus.VISIBLE.value)), PostKind(d.get("kind", PostKind.PHOTO.value)),
                   tuple(d.get("hashtags", ())), tuple(int(i) for i in d.get("hashtag_ids", ())),
                   tuple(int(i) for i in d.get("mentions", ())), int(location) if location else None,
                   tuple(int(i) for i in d.get("media", ())), d.get("published_at") or None)

    @property
    def time(self) -> int:
        """Its place in time for feeds and lists: when it was published, else created."""
        return int(self.published_at or self.created)

    @property
    def is_visible(self) -> bool:
        return self.status is PostStatus.VISIBLE


@dataclass(slots=True, frozen=True)
class Comment(Record):
    otype: ClassVar[str] = "COMMENT"
    post: int
    author: int
    text: str
    reply_to: int | None  # the top-level comment this replies to (replies are one level deep)
    # By an account the post's author restricts: listed by PENDING_COMMENT, seen by its author
    # (and the post's author, who may approve it) until approved (resolvers.comments).
    pending: bool = False

    @classmethod
    def decode(cls, obj: Obj) -> Comment:
        d = obj.data
        reply_to = d.get("reply_to")
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["post"]), int(d["author"]), d["text"],
                   int(reply_to) if reply_to else None, bool(d.get("pending")))


@dataclass(slots=True, frozen=True)
class Media(Record):
    otype: ClassVar[str] = "MEDIA"
    owner: int
    kind: MediaKind
    status: MediaStatus
    upload_id: str | None
    width: int | None
    height: int | None
    duration: float | None
    blurhash: str | None
    dominant_color: str | None
    variants: tuple[Mapping[str, Any], ...]  # {name, key, width, height, content_type, codecs?}, read-only
    failure_reason: str | None
    dm: bool  # sent in a direct message: never a post's
    media_key: str | None  # the uploaded source in object storage, once completed
    share_location: bool
    focal_point: tuple[float, float] | None  # fractions of the upright picture

    @classmethod
    def decode(cls, obj: Obj) -> Media:
        d = obj.data
        focal = d.get("focal_point")
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["owner"]), MediaKind(d["kind"]),
                   MediaStatus(d["status"]), d.get("upload_id"), d.get("width"), d.get("height"), d.get("duration"),
                   d.get("blurhash") or None, d.get("dominant_color") or None,
                   tuple(MappingProxyType(v) for v in d.get("variants") or ()),  # shared records: immutable
                   d.get("failure_reason"), bool(d.get("dm")), d.get("media_key"), bool(d.get("share_location")),
                   (float(focal[0]), float(focal[1])) if focal else None)


@dataclass(slots=True, frozen=True)
class Hashtag(Record):
    otype: ClassVar[str] = "HASHTAG"
    name: str

    @classmethod
    def decode(cls, obj: Obj) -> Hashtag:
        return cls(obj.id, obj.version, obj.created, obj.updated, obj.data["name"])


@dataclass(slots=True, frozen=True)
class Location(Record):
    otype: ClassVar[str] = "LOCATION"
    name: str
    latitude: float | None
    longitude: float | None

    @classmethod
    def decode(cls, obj: Obj) -> Location:
        d = obj.data
        return cls(obj.id, obj.version, obj.created, obj.updated, d["name"], d.get("latitude"), d.get("longitude"))


@dataclass(slots=True, frozen=True)
class Thread(Record):
    """A conversation (THREAD): direct (`pair` holds its two members) or a named group."""

    otype: ClassVar[str] = "THREAD"
    kind: ThreadKind
    name: str | None
    creator: int
    pair: tuple[int, ...]

    @classmethod
    def decode(cls, obj: Obj) -> Thread:
        d = obj.data
        return cls(obj.id, obj.version, obj.created, obj.updated, ThreadKind(d["kind"]), d.get("name"),
                   int(d["creator"]), tuple(int(u) for u in d.get("pair") or ()))

    @property
    def is_group(self) -> bool:
        return self.kind is ThreadKind.GROUP


@dataclass(slots=True, frozen=True)
class Message(Record):
    """A message (MESSAGE) on its thread's shard; `body` is sealed (resolvers.messages.crypto)."""

    otype: ClassVar[str] = "MESSAGE"
    thread: int
    sender: int
    kind: str  # resolvers.messages.model: TEXT, POST, MEDIA, VOICE
    body: dict[str, str] | None  # sealed: {k: key id, n: nonce, c: ciphertext}
    post: int | None
    media: int | None
    reply_to: int | None
    client_id: str | None
    fp: str | None
    edited: int | None
    story: int | None = None  # the story a reply or reaction quotes (resolvers.stories.replies)
    story_reaction: bool = False  # the text is an emoji reaction to `story`

    @classmethod
    def decode(cls, obj: Obj) -> Message:
        d = obj.data
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["thread"]), int(d["sender"]), d["kind"],
                   d.get("body"), d.get("post"), d.get("media"), d.get("reply_to"), d.get("client_id"), d.get("fp"),
                   d.get("edited"), d.get("story"), bool(d.get("story_reaction")))

    @property
    def cursor(self) -> tuple[int, int]:
        return (self.created, self.id)


@dataclass(slots=True, frozen=True)
class Unknown:
    """An object of a type without a record (or with data its codec cannot read): its raw
    data, read-only. Not a `Record`: nothing shows it."""

    id: int
    version: int
    created: int
    updated: int
    otype: str
    data: Mapping[str, Any]

    @classmethod
    def decode(cls, obj: Obj) -> Unknown:
        return cls(obj.id, obj.version, obj.created, obj.updated, obj.otype, MappingProxyType(obj.data))


_DECODERS: dict[str, Callable[[Obj], Any]] = {
    cls.otype: cls.decode for cls in (User, AuthSession, LogInChallenge, Post, Comment, Media, Hashtag, Location,
                                      Thread, Message)
}


def register_record(otype: str, decode: Callable[[Obj], Any]) -> None:
    """Declare the record of a domain package's own object type (at import, next to the record)."""
    _DECODERS[otype] = decode


def record_of(obj: Obj) -> Any:
    """The record of a stored object: its type's record, else (no record for the type, or data
    its codec cannot read) `Unknown`, which no privacy rule shows."""
    decode = _DECODERS.get(obj.otype)
    if decode is not None:
        try:
            return decode(obj)
        except (KeyError, TypeError, ValueError):
            pass
    return Unknown.decode(obj)
