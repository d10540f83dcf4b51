"""Stories' records, error codes and the rules every surface shares.

A STORY lives on its author's shard with data
  author, media (one id), kind ("photo" | "video"), audience (`Audience`), posted_at (ms, the
  store's clock), mentions (user ids), hashtag (name | None), link (url | None)
and edges author -STORY_LIVE-> story (time = posted_at) until the expiry job moves it to
STORY_ARCHIVE, story -HAS_MEDIA-> media (⇄ MEDIA_OF), story -MENTIONS-> user (⇄ MENTIONED_IN).
A HIGHLIGHT lives on its owner's shard with data owner, title, cover (story id), stories (ids,
in display order), cf (the ids among them of close-friends stories: a story's audience never
changes, so who may see which of them is known without reading them) and edges
owner -HAS_HIGHLIGHT-> highlight, story -IN_HIGHLIGHT-> highlight.

The one rule of time: a story is live while `clock.now < posted_at + LIFETIME_MS`, where the
clock is the store's (`tao.clock`), decided at read time; nothing waits for the expiry job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from resolvers.errors import UserError
from resolvers.records import Record, register_record
from tao import Obj

LIFETIME_MS = 24 * 3600 * 1000
MAX_BATCH = 100  # ids per markStorySeen / addCloseFriends call
LINK_MAX = 2000
TITLE_MAX = 50


class Audience(enum.Enum):
    FOLLOWERS = "followers"
    CLOSE_FRIENDS = "close_friends"


class StoryErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    NOT_AUTHOR = "NOT_AUTHOR"
    MEDIA_INVALID = "MEDIA_INVALID"
    MEDIA_NOT_READY = "MEDIA_NOT_READY"
    AUDIENCE_INVALID = "AUDIENCE_INVALID"
    HASHTAG_INVALID = "HASHTAG_INVALID"
    LINK_INVALID = "LINK_INVALID"
    TOO_MANY_MENTIONS = "TOO_MANY_MENTIONS"
    TOO_MANY_IDS = "TOO_MANY_IDS"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    CLOSE_FRIENDS_FULL = "CLOSE_FRIENDS_FULL"
    HIGHLIGHT_NOT_FOUND = "HIGHLIGHT_NOT_FOUND"
    HIGHLIGHT_FULL = "HIGHLIGHT_FULL"
    HIGHLIGHT_INVALID = "HIGHLIGHT_INVALID"
    TOO_MANY_HIGHLIGHTS = "TOO_MANY_HIGHLIGHTS"
    TITLE_INVALID = "TITLE_INVALID"
    REPLY_INVALID = "REPLY_INVALID"
    CANNOT_MESSAGE = "CANNOT_MESSAGE"


def story_not_found(field: str = "storyId") -> UserError:
    return UserError(StoryErrorCode.NOT_FOUND,
                     "No such story: it expired, was deleted, or you cannot see it. Check the id.", field)


def highlight_not_found(field: str = "highlightId") -> UserError:
    return UserError(StoryErrorCode.HIGHLIGHT_NOT_FOUND, "No such highlight of yours. Check the id.", field)


@dataclass(slots=True, frozen=True)
class Story(Record):
    otype: ClassVar[str] = "STORY"
    author: int
    media: int
    kind: str
    audience: Audience
    posted_at: int
    mentions: tuple[int, ...]
    hashtag: str | None
    link: str | None
    jobs: tuple[int, ...] = ()  # its pending expiry / purge jobs' ids (an account purge deletes them)

    @classmethod
    def decode(cls, obj: Obj) -> Story:
        d = obj.data
        jobs = tuple(int(d[k]) for k in ("expire_job", "purge_job") if d.get(k))
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["author"]), int(d["media"]),
                   d.get("kind", "photo"), Audience(d.get("audience", Audience.FOLLOWERS.value)), int(d["posted_at"]),
                   tuple(int(u) for u in d.get("mentions", ())), d.get("hashtag") or None, d.get("link") or None,
                   jobs)

    @property
    def expires_at(self) -> int:
        return self.posted_at + LIFETIME_MS

    @property
    def close_friends(self) -> bool:
        return self.audience is Audience.CLOSE_FRIENDS

    def live_at(self, now: int) -> bool:
        """The one rule of time: live while now < posted_at + 24 h."""
        return now < self.posted_at + LIFETIME_MS


@dataclass(slots=True, frozen=True)
class Highlight(Record):
    otype: ClassVar[str] = "HIGHLIGHT"
    owner: int
    title: str
    cover: int | None
    stories: tuple[int, ...]
    # The close-friends stories among `stories`; None for a highlight written before the
    # seventeenth session that no change has touched since (`python -m resolvers highlights-audience`).
    close_friends: frozenset[int] | None = None

    @classmethod
    def decode(cls, obj: Obj) -> Highlight:
        d = obj.data
        cover, cf = d.get("cover"), d.get("cf")
        return cls(obj.id, obj.version, obj.created, obj.updated, int(d["owner"]), d.get("title", ""),
                   int(cover) if cover else None, tuple(int(s) for s in d.get("stories", ())),
                   frozenset(int(s) for s in cf) if cf is not None else None)

    def shown_to(self, close_friend: bool) -> list[int]:
        """The listed stories a viewer who sees the owner may see, in order (None: not known
        without reading them, see `close_friends`). Deleted stories leave the list with their delete."""
        assert self.close_friends is not None
        return [s for s in self.stories if close_friend or s not in self.close_friends]


def live_low(now: int) -> int:
    """The lowest posted_at (inclusive) of a story live at `now`: posted_at > now - 24 h."""
    return now - LIFETIME_MS + 1


def story_edge_data(story: Story) -> dict:
    """The STORY_LIVE / STORY_ARCHIVE edge's data: what the tray needs without loading the story."""
    return {"cf": 1} if story.close_friends else {}


register_record("STORY", Story.decode)
register_record("HIGHLIGHT", Highlight.decode)
