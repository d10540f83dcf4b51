"""Highlights: named, ordered sets of at most `stories.highlight_max_stories` of the owner's
stories, shown on the profile past the 24 hours.

A HIGHLIGHT (owner's shard) keeps its stories' order in its data; owner -HAS_HIGHLIGHT->
highlight lists them (`User.highlights`, newest first) and story -IN_HIGHLIGHT-> highlight
(⇄ HIGHLIGHT_OF) is what keeps a story alive past 24 hours (`visibility.story_visible`) and out
of the archive purge. Every action checks everything before its first write. Removing a story
from its last highlight commits a purge job with the removal: an archived story whose time is
up then goes (`actions.purge_if_due`).

Invariant: a story has an IN_HIGHLIGHT edge to a highlight exactly when the highlight lists it,
once the writes settle. Every change of a highlight's list is a compare-and-set of its version
(`_change`: read, compute, `obj_update(..., version=)`, again from the object a lost race
answers), so racing changes each apply to the list the other left (two `addToHighlight` at once
both read the list and the later write dropped the other's story, whose edge then kept it alive
in a highlight that did not list it: found by the fifteenth session's counts probe). The edges
then follow the list (`sync_edges`, also committed as a job with the write, the repair if the
writer dies): it adds and removes edges to match the list it read, then reads the version again
and repeats if the list moved meanwhile, so a sync that acted on a stale list redoes its work.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.errors import UserError
from resolvers.job_context import JobContext
from resolvers.pagination import Cursor, Page, check_first, list_page, load_assoc_page, make_page
from resolvers.records import record_of
from resolvers.stories.actions import PURGE_JOB, purge_due
from resolvers.stories.model import TITLE_MAX, Highlight, Story, StoryErrorCode, highlight_not_found, story_not_found
from resolvers.stories.visibility import highlight_shown, visible_stories, visible_stories_by_id
from resolvers.text_rules import is_blank, name_refused
from tao import Assoc, ConflictError, ListCheck, Tao, VersionConflictError

if TYPE_CHECKING:
    from resolvers.context import RequestContext


def _title(title: str) -> str:
    title = title.strip()
    # A title shows beside others' on a profile: a name's rules (a zero-width space alone, a bell
    # or a text-direction override were taken before the counts probe).
    if not 0 < len(title) <= TITLE_MAX or is_blank(title) or name_refused(title):
        raise UserError(StoryErrorCode.TITLE_INVALID,
                        f"A highlight's title is 1 to {TITLE_MAX} characters that show, without control characters, "
                        "line separators or text-direction overrides.", "title")
    return title


async def _own_stories(tao: Tao, actor: int, story_ids: list[int], field: str = "storyIds") -> dict[int, Story]:
    """The actor's stories by id, in the order given (each once); NOT_FOUND if one is not theirs."""
    ids = list(dict.fromkeys(story_ids))
    objs = await tao.obj_get(ids) if ids else {}
    found: dict[int, Story] = {}
    for sid in ids:
        story = record_of(objs[sid]) if sid in objs else None
        if not isinstance(story, Story) or story.author != actor:
            raise story_not_found(field)
        found[sid] = story
    return found


async def _with_audience(tao: Tao, h: Highlight, data: dict | None) -> dict | None:
    """`data` with `cf`, the close-friends stories of the list it writes, when the list changes (or
    the highlight predates `cf`): only the stories new to the list are read, the others are known."""
    if data is None or ("stories" not in data and h.close_friends is not None):
        return data
    stories = [int(s) for s in data.get("stories", h.stories)]
    known = h.close_friends if h.close_friends is not None else frozenset()
    listed = set(h.stories) if h.close_friends is not None else set()
    unknown = [s for s in stories if s not in listed]
    objs = await tao.obj_get(unknown) if unknown else {}
    fresh = {s for s, o in objs.items() if isinstance(story := record_of(o), Story) and story.close_friends}
    return {**data, "cf": [s for s in stories if s in known or s in fresh]}


def _check_size(tao: Tao, n: int) -> None:
    cap = tao.settings.stories.highlight_max_stories
    if n > cap:
        raise UserError(StoryErrorCode.HIGHLIGHT_FULL, f"A highlight holds at most {cap} stories: make another.",
                        "storyIds")


def _too_many_highlights(cap: int) -> UserError:
    return UserError(StoryErrorCode.TOO_MANY_HIGHLIGHTS,
                     f"A profile holds at most {cap} highlights: delete one, or add these stories to one you have.",
                     "title")


SYNC_JOB = "stories.sync_highlight"
CHANGE_TRIES = 20   # compare-and-set rounds before a change gives up (each loser read the winner)
SYNC_ROUNDS = 20    # edge syncs of one call before it leaves the rest to its job
OF_SCAN = 1000      # a highlight's HIGHLIGHT_OF edges read by a sync (the cap is far below)


async def own_highlight(tao: Tao, actor: int, highlight_id: int) -> Highlight:
    obj = (await tao.obj_get([highlight_id])).get(highlight_id)
    return _own(obj, actor)


def _own(obj: Any, actor: int) -> Highlight:
    h = record_of(obj) if obj is not None else None
    if not isinstance(h, Highlight) or h.owner != actor:
        raise highlight_not_found()
    return h


# A change: the highlight as it stands -> the data to write, or None to delete the highlight.
# It raises a UserError to refuse (checked against the list as it stands, every round).
Change = Callable[[Highlight], "dict | None"]


async def _change(tao: Tao, actor: int, highlight_id: int, change: Change) -> Highlight | None:
    """Apply `change` to the highlight as a compare-and-set of its version, then make its edges
    follow its list. Returns the highlight as written (None: deleted)."""
    h = await own_highlight(tao, actor, highlight_id)
    for _ in range(CHANGE_TRIES):
        data = await _with_audience(tao, h, change(h))
        stories = list(data["stories"]) if data is not None and "stories" in data else list(h.stories)
        jobs = [(SYNC_JOB, {"highlight": h.id, "stories": sorted(set(h.stories) | set(stories))})]
        try:
            if data is None:
                await tao.obj_delete(h.id, version=h.version, jobs=jobs)
                await tao.assoc_delete(actor, "HAS_HIGHLIGHT", h.id)
                written = None
            else:
                written = record_of(await tao.obj_update(h.id, data, version=h.version, jobs=jobs))
        except VersionConflictError as lost:
            h = _own(lost.current, actor)  # another change won: apply this one to its result
            continue
        await sync_edges(tao, h.id, set(h.stories) | set(stories))
        return written
    raise ConflictError(f"highlight {highlight_id} kept changing; try again")


async def sync_edges(tao: Tao, highlight_id: int, touched: Iterable[int]) -> bool:
    """Make the IN_HIGHLIGHT edges to the highlight match its list (none once it is deleted):
    among `touched`, the listed stories and the stories with an edge to it. A story leaving its
    last highlight past its archive time is purged by a job committed with the removal. Returns
    whether it settled (False: the list kept moving; the job committed with the change goes on)."""
    candidates = set(touched)
    for _ in range(SYNC_ROUNDS):
        obj = (await tao.obj_get([highlight_id])).get(highlight_id)
        h = record_of(obj) if obj is not None else None
        listed = set(h.stories) if isinstance(h, Highlight) else set()
        candidates |= listed | {e.id2 for e in await tao.assoc_range(highlight_id, "HIGHLIGHT_OF", 0, OF_SCAN)}
        keys = [(s, "IN_HIGHLIGHT", highlight_id) for s in sorted(candidates)]
        edges = await tao.assoc_get_many(keys) if keys else {}
        have = {k[0] for k, e in edges.items() if e is not None}
        if listed - have:
            await tao.assoc_add_many([(s, "IN_HIGHLIGHT", highlight_id) for s in sorted(listed - have)])
        await _release(tao, highlight_id, sorted(have - listed))
        again = (await tao.obj_get([highlight_id])).get(highlight_id)
        if (again.version if again is not None else None) == (obj.version if obj is not None else None):
            return True
    return False


async def sync_highlight_job(job: JobContext, payload: dict) -> None:
    """`stories.sync_highlight`: the repair of a change whose writer died before its edges
    followed (idempotent: a sync of a settled highlight writes nothing)."""
    if not await sync_edges(job.tao, int(payload["highlight"]), [int(s) for s in payload.get("stories", ())]):
        raise ConflictError(f"highlight {payload['highlight']} kept changing; the job runs again")


def _cover(cover: int | None, stories: list[int]) -> int | None:
    if cover is not None and cover not in stories:
        raise UserError(StoryErrorCode.HIGHLIGHT_INVALID, "The cover must be one of the highlight's stories.",
                        "coverStoryId")
    return cover if cover is not None else (stories[0] if stories else None)


async def do_create_highlight(tao: Tao, actor_id: int, title: str, story_ids: list[int],
                              cover_story_id: int | None = None) -> Highlight:
    name = _title(title)
    _check_size(tao, len(set(story_ids)))
    stories = await _own_stories(tao, actor_id, story_ids)
    ids = list(stories)
    if not ids:
        raise UserError(StoryErrorCode.HIGHLIGHT_INVALID, "A highlight needs at least one story.", "storyIds")
    cover = _cover(cover_story_id, ids)
    cap = tao.settings.stories.max_highlights
    if await tao.assoc_count(actor_id, "HAS_HIGHLIGHT") >= cap:  # the usual refusal: before any write
        raise _too_many_highlights(cap)
    cf = [s for s in ids if stories[s].close_friends]
    hid = await tao.obj_add("HIGHLIGHT", {"owner": actor_id, "title": name, "cover": cover, "stories": ids, "cf": cf},
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


async def _release(tao: Tao, highlight_id: int, story_ids: list[int]) -> None:
    """Take stories out of a highlight; one whose archive time is already up is purged by a job
    committed with its removal (one not yet due is left to its expiry's purge job)."""
    objs = await tao.obj_get(story_ids) if story_ids else {}
    days, now = tao.settings.stories.archive_days, tao.clock.now_ms()
    for sid in story_ids:
        story = record_of(objs[sid]) if sid in objs else None
        due = isinstance(story, Story) and now >= purge_due(story, days)
        await tao.assoc_delete(sid, "IN_HIGHLIGHT", highlight_id, jobs=[(PURGE_JOB, {"story": sid})] if due else None)


def _written(h: Highlight | None) -> Highlight:
    assert h is not None  # only a deleting change answers None
    return h


async def do_edit_highlight(tao: Tao, actor_id: int, highlight_id: int, *, title: str | None = None,
                            cover_story_id: int | None = None) -> Highlight:
    name = _title(title) if title is not None else None

    def change(h: Highlight) -> dict:
        changes: dict = {} if name is None else {"title": name}
        if cover_story_id is not None:
            changes["cover"] = _cover(cover_story_id, list(h.stories))
        return changes
    if name is None and cover_story_id is None:
        return await own_highlight(tao, actor_id, highlight_id)
    return _written(await _change(tao, actor_id, highlight_id, change))


async def do_add_to_highlight(tao: Tao, actor_id: int, highlight_id: int, story_ids: list[int]) -> Highlight:
    h = await own_highlight(tao, actor_id, highlight_id)
    # The cap first, on the ids as sent (as createHighlight does): a 2 MB request holds ~55 000 ids,
    # which were all read before the cap refused them.
    _check_size(tao, len(h.stories) + len(set(story_ids) - set(h.stories)))
    ids = list(await _own_stories(tao, actor_id, story_ids))

    def change(h: Highlight) -> dict:
        new = [s for s in ids if s not in h.stories]
        _check_size(tao, len(h.stories) + len(new))  # again on the list as it stands
        return {"stories": list(h.stories) + new}
    return _written(await _change(tao, actor_id, highlight_id, change))


async def do_remove_from_highlight(tao: Tao, actor_id: int, highlight_id: int, story_ids: list[int]) -> Highlight:
    gone = set(story_ids)

    def change(h: Highlight) -> dict:
        ids = [s for s in h.stories if s not in gone]
        if not ids:
            raise UserError(StoryErrorCode.HIGHLIGHT_INVALID,
                            "A highlight keeps at least one story: delete the highlight instead.", "storyIds")
        return {"stories": ids, "cover": h.cover if h.cover in ids else ids[0]}
    return _written(await _change(tao, actor_id, highlight_id, change))


async def do_reorder_highlight(tao: Tao, actor_id: int, highlight_id: int, story_ids: list[int]) -> Highlight:
    def change(h: Highlight) -> dict:
        if sorted(story_ids) != sorted(h.stories):
            raise UserError(StoryErrorCode.HIGHLIGHT_INVALID,
                            "`storyIds` must list each of the highlight's stories exactly once, in the new order.",
                            "storyIds")
        return {"stories": list(story_ids)}
    return _written(await _change(tao, actor_id, highlight_id, change))


async def do_delete_highlight(tao: Tao, actor_id: int, highlight_id: int) -> None:
    await _change(tao, actor_id, highlight_id, lambda h: None)


async def drop_from_highlights(tao: Tao, owner: int, story_id: int) -> None:
    """A deleted story leaves every highlight (a highlight left empty is deleted)."""
    def change(h: Highlight) -> dict | None:
        ids = [s for s in h.stories if s != story_id]
        return {"stories": ids, "cover": h.cover if h.cover in ids else ids[0]} if ids else None
    while page := await tao.assoc_range(story_id, "IN_HIGHLIGHT", 0, 100):
        for edge in page:
            try:
                await _change(tao, owner, edge.id2, change)
            except UserError:
                pass  # not a highlight of the owner's (gone): only the edge is left
            await tao.assoc_delete(story_id, "IN_HIGHLIGHT", edge.id2)


async def user_highlights(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[Highlight]:
    """`User.highlights`, a page newest first: the viewer must see the profile in full (blocks hide
    them). A highlight of close-friends stories only does not exist for anyone else (nothing to
    infer): it is not paged, nor counted by `hasNextPage`."""
    if user_id != ctx.viewer_id and await privacy.user_visibility(ctx, user_id) != privacy.Visibility.FULL:
        check_first(ctx, first)
        return Page(end_cursor=after, has_previous=after is not None)
    if user_id == ctx.viewer_id or first == 0:
        assocs, has_next = await load_assoc_page(ctx, user_id, "HAS_HIGHLIGHT", first, after)
        objs = await ctx.loaders.object_by_id.load_many([a.id2 for a in assocs])
        return make_page(assocs, has_next, {h.id: h for h in objs if isinstance(h, Highlight)}, after)
    # Another's: read on past the highlights hidden from this viewer until the page and one more
    # are found, so that neither a short page nor `hasNextPage` tells of a hidden one (before the
    # eighteenth session's `shedding` branch each was an empty page with `hasNextPage` to a
    # non-member, one at a time). Decided without reading the stories (`highlight_shown`).
    want, cursor = first + 1, after
    batch = min(want, ctx.settings.limits.max_page_size)  # one object past the page: one round, as a rule
    shown: list[tuple[Cursor, Highlight]] = []
    while len(shown) < want:
        assocs, more = await load_assoc_page(ctx, user_id, "HAS_HIGHLIGHT", batch, cursor)
        found = await ctx.loaders.object_by_id.load_many([a.id2 for a in assocs])
        objs = [h for h in found if isinstance(h, Highlight)]
        stories = await asyncio.gather(*(highlight_shown(ctx, h) for h in objs))
        ok = {h.id: h for h, listed in zip(objs, stories) if listed}
        shown += [((a.time, a.id2), ok[a.id2]) for a in assocs if a.id2 in ok]
        if not more or not assocs:
            break
        cursor = (assocs[-1].time, assocs[-1].id2)
    items = shown[:first]
    return Page(items=items, has_next=len(shown) > first, end_cursor=items[-1][0] if items else after,
                has_previous=after is not None)


async def highlight_stories_page(ctx: RequestContext, h: Highlight, first: int, after: Cursor | None) -> Page[Story]:
    """`Highlight.stories`, a page in the highlight's order. The cursor is (place, story): paging
    on continues after that story wherever it now stands, or at its place if it left the list.
    Only the stories the viewer may see are paged (`highlight_shown`, none to a viewer who does
    not see the owner FULL), so neither a page nor `hasNextPage` counts a close-friends story to
    a non-member (before the eighteenth session's `shedding` branch each was an empty page with
    `hasNextPage`); each page still checks its stories (`visible_stories_by_id`)."""
    if h.owner != ctx.viewer_id and not await privacy.owner_visible(ctx, h.owner):
        check_first(ctx, first)
        return Page(end_cursor=after, has_previous=after is not None)
    shown = set(await highlight_shown(ctx, h))
    start = 0
    if after is not None:
        place, story = after
        start = h.stories.index(story) + 1 if story in h.stories else max(place, 0)
    entries = [((i, s), s) for i, s in enumerate(h.stories) if i >= start and s in shown]
    return await list_page(ctx, entries, first, after, functools.partial(visible_stories_by_id, ctx))


async def highlight_cover(ctx: RequestContext, h: Highlight) -> Story | None:
    """The chosen cover if the viewer may see it, else the first story they may see: at most
    these two stories are read (before the seventeenth session, every story of the highlight)."""
    shown = await highlight_shown(ctx, h)
    candidates = list(dict.fromkeys(([h.cover] if h.cover in shown else []) + shown[:1]))
    found = await visible_stories(ctx, candidates)
    return found[0] if found else None


async def record_audiences(tao: Tao) -> AsyncIterator[int]:
    """The upgrade of highlights written before `cf` (`python -m resolvers highlights-audience`):
    each gets its close-friends stories recorded by a change that rewrites nothing else (a change
    made meanwhile records them too); yields each highlight's id."""
    for shard in range(tao.n_shards):
        after = 0
        while objs := await tao.obj_scan(shard, "HIGHLIGHT", after, 500):
            after = objs[-1].id
            for obj in objs:
                h = record_of(obj)
                if isinstance(h, Highlight) and h.close_friends is None:
                    await _change(tao, h.owner, h.id, lambda h: {})
                    yield h.id
