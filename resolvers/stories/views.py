"""Seen marks and a story's viewers: exact up to a threshold, then a HyperLogLog.

`do_mark_stories_seen` writes, per newly seen story, one STORY_SEEN edge on the viewer's shard
(the tray's "unseen" state; spread over viewers, never hot) and, on the author's side:
- with Redis (`tao.sketches.available`): PFADD into the story's HyperLogLog and ZADD into its
  newest-viewers set (trimmed to `stories.recent_viewers`), and a STORY_VIEWER edge only while
  the story has at most `stories.exact_viewers` (one more row marks the overflow): past that no
  SQL row of the story's shard is written per view, so a hot story's views cost O(1) Redis
  commands each;
- without Redis (the embedded default): the STORY_VIEWER edge always (exact, one count row per
  story: fine for one SQLite process, the wrong choice at scale: docs/stories.md).
`viewerCount` is exact (`viewerCountIsExact`) while the exact list is under the threshold, else
the HyperLogLog's estimate (never below the threshold). Viewer lists and counts are the
author's only, and hide users the author may not see (a viewer who blocked the author is not
listed); a mark on a story the viewer may not see is refused and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.errors import PermissionDeniedError, UserError
from resolvers.pagination import Cursor, Page, check_first, load_assoc_page, make_page
from resolvers.records import User
from resolvers.stories.actions import viewers_sketch_key
from resolvers.stories.model import LIFETIME_MS, MAX_BATCH, Story, StoryErrorCode, story_not_found
from resolvers.stories.visibility import visible_stories
from tao import Tao, TaoError

if TYPE_CHECKING:
    from resolvers.context import RequestContext

log = logging.getLogger(__name__)


sketch_key = viewers_sketch_key


def _ttl_seconds(tao: Tao) -> int:
    return int((LIFETIME_MS + tao.settings.stories.archive_days * 86_400_000) / 1000) + 3600


async def do_mark_stories_seen(tao: Tao, actor_id: int, story_ids: list[int]) -> list[Story]:
    """Mark stories seen (idempotent; one batch). Any id the actor may not see refuses the whole
    call, nothing written. Returns the stories."""
    if not 0 < len(story_ids) <= MAX_BATCH:
        raise UserError(StoryErrorCode.TOO_MANY_IDS, f"Mark between 1 and {MAX_BATCH} stories per call.", "storyIds")
    ids = list(dict.fromkeys(story_ids))
    ctx = acting_as(tao, actor_id)
    stories = await visible_stories(ctx, ids)
    if len(stories) != len(ids):
        raise story_not_found("storyIds")
    now = tao.clock.now_ms()
    have = await tao.assoc_get(actor_id, "STORY_SEEN", ids)
    new = [s for s in stories if s.id not in have]
    if not new:
        return stories
    await tao.assoc_add_many([(actor_id, "STORY_SEEN", s.id, now) for s in new])
    others = [s for s in new if s.author != actor_id]  # the author's own views are not views
    if not others:
        return stories
    s = tao.settings.stories
    if tao.sketches.available:
        for story in others:
            try:
                await tao.sketches.record(sketch_key(story.id), actor_id, now, s.recent_viewers, _ttl_seconds(tao))
            except TaoError as exc:  # an estimate may lose a view; the exact part below still holds
                log.warning("story %d: view not counted in its sketch: %s", story.id, exc)
        counts = await tao.assoc_count_many([(st.id, "STORY_VIEWER") for st in others])
        # Up to one row past the threshold: that row is what says "more than the threshold".
        exact = [st for st in others if counts.get((st.id, "STORY_VIEWER"), 0) <= s.exact_viewers]
    else:
        exact = others
    if exact:
        await tao.assoc_add_many([(st.id, "STORY_VIEWER", actor_id, now) for st in exact])
    return stories


@dataclass(slots=True)
class ViewerCount:
    count: int
    exact: bool


def _own(ctx: RequestContext, story: Story) -> None:
    if ctx.require_viewer() != story.author:
        raise PermissionDeniedError("Only a story's author sees who viewed it.")


async def _exact(ctx: RequestContext, story: Story) -> bool:
    if not ctx.tao.sketches.available:
        return True
    n = await ctx.loaders.assoc_count_by_key.load((story.id, "STORY_VIEWER"))
    return n <= ctx.settings.stories.exact_viewers


async def viewer_count(ctx: RequestContext, story: Story) -> ViewerCount:
    _own(ctx, story)
    if await _exact(ctx, story):
        # Exact: the listed viewers (at most the threshold without Redis... or any number in the
        # embedded mode), minus those the author may not see.
        ids: list[int] = []
        after: Cursor | None = None
        while True:
            page = await ctx.tao.assoc_time_range(story.id, "STORY_VIEWER", limit=1000, after=after)
            ids += [a.id2 for a in page]
            if len(page) < 1000:
                break
            after = (page[-1].time, page[-1].id2)
        return ViewerCount(len(await privacy.visible_user_ids(ctx, ids)), True)
    n = await ctx.loaders.assoc_count_by_key.load((story.id, "STORY_VIEWER"))
    try:
        estimate = await ctx.tao.sketches.count(sketch_key(story.id))
    except TaoError:
        estimate = 0
    return ViewerCount(max(estimate, n), False)


async def viewers(ctx: RequestContext, story: Story, first: int, after: Cursor | None) -> Page[User]:
    """Who viewed the story, newest view first: all of them while exact, else the newest
    `stories.recent_viewers`."""
    _own(ctx, story)
    if await _exact(ctx, story):
        assocs, has_next = await load_assoc_page(ctx, story.id, "STORY_VIEWER", first, after)
        users = await privacy.visible_users(ctx, [a.id2 for a in assocs])
        return make_page(assocs, has_next, {u.id: u for u in users}, after)
    check_first(ctx, first)
    rows = await ctx.tao.sketches.recent(sketch_key(story.id), after, first + 1)
    shown, has_next = rows[:first], len(rows) > first
    found = {u.id: u for u in await privacy.visible_users(ctx, [m for m, _ in shown])}
    items = [((t, m), found[m]) for m, t in shown if m in found]
    return Page(items=items, has_next=has_next, end_cursor=(shown[-1][1], shown[-1][0]) if shown else after)


async def viewer_has_seen(ctx: RequestContext, story: Story) -> bool:
    viewer = ctx.viewer_id
    if viewer is None:
        return False
    return await ctx.loaders.assoc_by_key.load((viewer, "STORY_SEEN", story.id)) is not None


async def viewer_has_seen_many(ctx: RequestContext, stories: list[Story]) -> list[bool | BaseException]:
    """`viewer_has_seen` of each story, one batch (a story whose mark could not be read: its error).
    The tray primes these keys from the seen marks it read, so a tray page reads nothing more."""
    viewer = ctx.viewer_id
    if viewer is None:
        return [False] * len(stories)
    marks = await ctx.loaders.assoc_by_key.load_each([(viewer, "STORY_SEEN", s.id) for s in stories])
    return [m if isinstance(m, BaseException) else m is not None for m in marks]
