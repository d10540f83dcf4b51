"""Who may see a story or a highlight, on every surface (tray, profile ring, `node(id:)`,
media URLs, highlights, viewer lists, seen marks, replies): decided here, at read time, by the
store's clock.

A story is visible to its author always (their archive included). To anyone else when all hold:
- its author is FULL to them (`privacy.owner_visible`: public, or private and followed; never
  across a block either way);
- it is for followers, or it is for close friends and they are on the author's list (asked
  with one edge on the author's shard, never shown to anyone);
- it is live (`now < posted_at + 24 h` on `tao.clock`), or it is in one of the author's
  highlights (then it lives on; a close-friends story still only for close friends).
A highlight is visible to its owner, and to whoever sees its owner FULL and at least one of its
stories; its stories are filtered one by one. Which of its stories a viewer may see is decided
without reading them (`highlight_shown`): the highlight keeps which are for close friends, and a
story it lists lives on; so a profile's page of highlights, or a cover, reads no story it does
not show (before the seventeenth session a non-owner's page of 20 read up to 2 000 stories).
(A highlight of close-friends stories only does not
exist for anyone else on any surface: `node(id:)` answered its title to everyone who sees the
owner, e.g. a friend taken off the list who kept its id; found by probe4.)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.records import Record
from resolvers.stories.model import Highlight, Story

if TYPE_CHECKING:
    from resolvers.context import RequestContext


def now_ms(ctx: RequestContext) -> int:
    """The deployment's time for this read (the store's clock)."""
    return ctx.tao.clock.now_ms()


async def is_close_friend(ctx: RequestContext, owner: int, user: int | None) -> bool:
    if user is None:
        return False
    return await ctx.loaders.assoc_by_key.load((owner, "CLOSE_FRIEND", user)) is not None


async def story_visible(ctx: RequestContext, story: Record, *, now: int | None = None) -> bool:
    if not isinstance(story, Story):
        return False
    viewer = ctx.viewer_id
    if story.author == viewer:
        return True
    now = now_ms(ctx) if now is None else now
    live = story.live_at(now)
    checks: list[Any] = [privacy.owner_visible(ctx, story.author)]
    if story.close_friends:
        checks.append(is_close_friend(ctx, story.author, viewer))
    if not live:
        checks.append(_highlighted(ctx, story.id))
    return all(await asyncio.gather(*checks))


async def _highlighted(ctx: RequestContext, story_id: int) -> bool:
    return bool(await ctx.loaders.assoc_count_by_key.load((story_id, "IN_HIGHLIGHT")))


async def highlight_visible(ctx: RequestContext, obj: Record) -> bool:
    if not isinstance(obj, Highlight):
        return False
    if obj.owner == ctx.viewer_id:
        return True
    return await privacy.owner_visible(ctx, obj.owner) and bool(await highlight_shown(ctx, obj))


async def highlight_shown(ctx: RequestContext, h: Highlight) -> list[int]:
    """The ids of the highlight's stories the viewer may see, in order, for a viewer who sees its
    owner FULL (the caller checked): every listed story to its owner and to close friends, the
    others to anyone. At most one read (the close-friend edge, only when it lists such a story);
    a highlight from before `Highlight.close_friends` reads its stories, as everything did before."""
    if h.owner == ctx.viewer_id:
        return list(h.stories)
    if h.close_friends is None:
        return [s.id for s in await visible_stories(ctx, list(h.stories))]
    friend = bool(h.close_friends) and await is_close_friend(ctx, h.owner, ctx.viewer_id)
    return h.shown_to(friend)


async def visible_stories(ctx: RequestContext, ids: list[int]) -> list[Story]:
    """The stories, in order, that exist and the viewer may see now (one clock reading)."""
    now = now_ms(ctx)
    objs = [o for o in await ctx.loaders.object_by_id.load_many(ids) if isinstance(o, Story)]
    seen = await asyncio.gather(*(story_visible(ctx, o, now=now) for o in objs))
    return [o for o, ok in zip(objs, seen) if ok]


async def visible_stories_by_id(ctx: RequestContext, ids: list[int]) -> dict[int, Story]:
    """`visible_stories` by id (a page's `visible`: resolvers.pagination.list_page)."""
    return {s.id: s for s in await visible_stories(ctx, ids)}


privacy.register_object_rule("STORY", story_visible)
privacy.register_object_rule("HIGHLIGHT", highlight_visible)
