"""Highlights: named, ordered sets of at most `stories.highlight_max_stories` of the owner's
stories, shown on the profile past the 24 hours.

A HIGHLIGHT (owner's shard) keeps its stories' order in its data; owner -HAS_HIGHLIGHT->
highlight lists them (`User.highlights`, newest first) and story -IN_HIGHLIGHT-> highlight
(⇄ HIGHLIGHT_OF) is what keeps a story alive past 24 hours (`visibility.story_visible`) and out
of the archive purge. Every action checks everything before its first write. Removing a story
from its last highlight commits a purge job with the removal: an archived story whose time is
up then goes (`actions.purge_if_due`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.errors import UserError
from resolvers.records import record_of
from resolvers.stories.actions import PURGE_JOB, purge_due
from resolvers.stories.model import TITLE_MAX, Highlight, Story, StoryErrorCode, highlight_not_found, story_not_found
from resolvers.stories.visibility import visible_stories
from tao import Assoc, ListCheck, Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext


def _title(title: str) -> str:
    title = title.strip()
    if not 0 < len(title) <= TITLE_MAX:
        raise UserError(StoryErrorCode.TITLE_INVALID, f"A highlight's title is 1 to {TITLE_MAX} characters.", "title")
    return title


async def _own_stories(tao: Tao, actor: int, story_ids: list[int], field: str = "storyIds") -> list[int]:
    ids = list(dict.fromkeys(story_ids))
    objs = await tao.obj_get(ids) if ids else {}
    for sid in ids:
        story = record_of(objs[sid]) if sid in objs else None
        if not isinstance(story, Story) or story.author != actor:
            raise story_not_found(field)
    return ids


def _check_size(tao: Tao, n: int) -> None:
    cap = tao.settings.stories.highlight_max_stories
    if n > cap:
        raise UserError(StoryErrorCode.HIGHLIGHT_FULL, f"A highlight holds at most {cap} stories: make another.",
                        "storyIds")


def _too_many_highlights(cap: int) -> UserError:
    return UserError(StoryErrorCode.TOO_MANY_HIGHLIGHTS,
                     f"A profile holds at most {cap} highlights: delete one, or add these stories to one you have.",
                     "title")


async def own_highlight(tao: Tao, actor: int, highlight_id: int) -> Highlight:
    obj = (await tao.obj_get([highlight_id])).get(highlight_id)
    h = record_of(obj) if obj is not None else None
    if not isinstance(h, Highlight) or h.owner != actor:
        raise highlight_not_found()
    return h


def _cover(cover: int | None, stories: list[int]) -> int | None:
    if cover is not None and cover not in stories:
        raise UserError(StoryErrorCode.HIGHLIGHT_INVALID, "The cover must be one of the highlight's stories.",
                        "coverStoryId")
    return cover if cover is not None else (stories[0] if stories else None)


async def do_create_highlight(tao: Tao, actor_id: int, title: str, story_ids: list[int],
                              cover_story_id: int | None = None) -> Highlight:
    name = _title(title)
    _check_size(tao, len(set(story_ids)))
    ids = await _own_stories(tao, actor_id, story_ids)
    if not ids:
        raise UserError(StoryErrorCode.HIGHLIGHT_INVALID, "A highlight needs at least one story.", "storyIds")
    cover = _cover(cover_story_id, ids)
    cap = tao.settings.stories.max_highlights
    if await tao.assoc_count(actor_id, "HAS_HIGHLIGHT") >= cap:  # the usual refusal: before any write
        raise _too_many_highlights(cap)
    hid = await tao.obj_add("HIGHLIGHT", {"owner": actor_id, "title": name, "cover": cover, "stories": ids},
                            owner=actor_id)

    def room(highlights: list[Assoc]) -> None:
        if len(highlights) >= cap:
            raise _too_many_highlights(cap)
    try:  # checked under the list's lock: racing creates cannot pass the cap together
        await tao.assoc_add_and_append([(actor_id, "HAS_HIGHLIGHT", hid)], [],
                                       check=ListCheck(actor_id, "HAS_HIGHLIGHT", room))
    except UserError:
        await tao.obj_delete(hid)  # a racing create took the last place: nothing of this one stays
        raise
    await tao.assoc_add_many([(sid, "IN_HIGHLIGHT", hid) for sid in ids])
    return await own_highlight(tao, actor_id, hid)


async def _set_stories(tao: Tao, h: Highlight, ids: list[int], cover: int | None) -> Highlight:
    """Write the highlight's new story list and cover, then its membership edges follow."""
    removed = [s for s in h.stories if s not in ids]
    added = [s for s in ids if s not in h.stories]
    updated = record_of(await tao.obj_update(h.id, {"stories": ids, "cover": cover}))
    if added:
        await tao.assoc_add_many([(sid, "IN_HIGHLIGHT", h.id) for sid in added])
    await _release(tao, h.id, removed)
    return updated


async def _release(tao: Tao, highlight_id: int, story_ids: list[int]) -> None:
    """Take stories out of a highlight; one whose archive time is already up is purged by a job
    committed with its removal (one not yet due is left to its expiry's purge job)."""
    objs = await tao.obj_get(story_ids) if story_ids else {}
    days, now = tao.settings.stories.archive_days, tao.clock.now_ms()
    for sid in story_ids:
        story = record_of(objs[sid]) if sid in objs else None
        due = isinstance(story, Story) and now >= purge_due(story, days)
        await tao.assoc_delete(sid, "IN_HIGHLIGHT", highlight_id, jobs=[(PURGE_JOB, {"story": sid})] if due else None)


async def do_edit_highlight(tao: Tao, actor_id: int, highlight_id: int, *, title: str | None = None,
                            cover_story_id: int | None = None) -> Highlight:
    h = await own_highlight(tao, actor_id, highlight_id)
    changes: dict = {}
    if title is not None:
        changes["title"] = _title(title)
    if cover_story_id is not None:
        changes["cover"] = _cover(cover_story_id, list(h.stories))
    if changes:
        return record_of(await tao.obj_update(h.id, changes))
    return h


async def do_add_to_highlight(tao: Tao, actor_id: int, highlight_id: int, story_ids: list[int]) -> Highlight:
    h = await own_highlight(tao, actor_id, highlight_id)
    # The cap first, on the ids as sent (as createHighlight does): a 2 MB request holds ~55 000 ids,
    # which were all read before the cap refused them.
    _check_size(tao, len(h.stories) + len(set(story_ids) - set(h.stories)))
    new = [s for s in await _own_stories(tao, actor_id, story_ids) if s not in h.stories]
    return await _set_stories(tao, h, list(h.stories) + new, h.cover)


async def do_remove_from_highlight(tao: Tao, actor_id: int, highlight_id: int, story_ids: list[int]) -> Highlight:
    h = await own_highlight(tao, actor_id, highlight_id)
    gone = set(story_ids)
    ids = [s for s in h.stories if s not in gone]
    if not ids:
        raise UserError(StoryErrorCode.HIGHLIGHT_INVALID,
                        "A highlight keeps at least one story: delete the highlight instead.", "storyIds")
    return await _set_stories(tao, h, ids, h.cover if h.cover in ids else ids[0])


async def do_reorder_highlight(tao: Tao, actor_id: int, highlight_id: int, story_ids: list[int]) -> Highlight:
    h = await own_highlight(tao, actor_id, highlight_id)
    if sorted(story_ids) != sorted(h.stories):
        raise UserError(StoryErrorCode.HIGHLIGHT_INVALID,
                        "`storyIds` must list each of the highlight's stories exactly once, in the new order.",
                        "storyIds")
    return record_of(await tao.obj_update(h.id, {"stories": list(story_ids)}))


async def do_delete_highlight(tao: Tao, actor_id: int, highlight_id: int) -> None:
    h = await own_highlight(tao, actor_id, highlight_id)
    await tao.obj_delete(h.id)
    await tao.assoc_delete(actor_id, "HAS_HIGHLIGHT", h.id)
    await _release(tao, h.id, list(h.stories))


async def drop_from_highlights(tao: Tao, owner: int, story_id: int) -> None:
    """A deleted story leaves every highlight (a highlight left empty is deleted)."""
    while page := await tao.assoc_range(story_id, "IN_HIGHLIGHT", 0, 100):
        for edge in page:
            obj = (await tao.obj_get([edge.id2])).get(edge.id2)
            h = record_of(obj) if obj is not None else None
            if isinstance(h, Highlight):
                ids = [s for s in h.stories if s != story_id]
                if ids:
                    await tao.obj_update(h.id, {"stories": ids, "cover": h.cover if h.cover in ids else ids[0]})
                else:
                    await tao.obj_delete(h.id)
                    await tao.assoc_delete(owner, "HAS_HIGHLIGHT", h.id)
            await tao.assoc_delete(story_id, "IN_HIGHLIGHT", edge.id2)


async def user_highlights(ctx: RequestContext, user_id: int) -> list[Highlight]:
    """`User.highlights`, newest first: the viewer must see the profile in full (blocks hide them)."""
    if user_id != ctx.viewer_id and await privacy.user_visibility(ctx, user_id) != privacy.Visibility.FULL:
        return []
    edges = await ctx.loaders.assoc_page_by_key.load((user_id, "HAS_HIGHLIGHT", 100, None))
    objs = [h for h in await ctx.loaders.object_by_id.load_many([e.id2 for e in edges]) if isinstance(h, Highlight)]
    if user_id == ctx.viewer_id:
        return objs
    # A highlight of close-friends stories only does not exist for anyone else (nothing to infer).
    shown = await asyncio.gather(*(highlight_stories(ctx, h) for h in objs))
    return [h for h, stories in zip(objs, shown) if stories]


async def highlight_stories(ctx: RequestContext, h: Highlight) -> list[Story]:
    """The highlight's stories the viewer may see, in its order (close-friends ones to close friends)."""
    return await visible_stories(ctx, list(h.stories))


async def highlight_cover(ctx: RequestContext, h: Highlight) -> Story | None:
    shown = await highlight_stories(ctx, h)
    for s in shown:
        if s.id == h.cover:
            return s
    return shown[0] if shown else None
