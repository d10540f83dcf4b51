"""Stories' user-data kinds for account export and deletion (resolvers.account_data.registry).

- `highlights` (order 33): the user's highlights; purged first, so the stories they hold are free
  to go (a story's cleanup also drops it from any highlight).
- `stories` (34): live and archived stories with their stickers; purged with the story's own
  cleanup (its edges, its Redis viewer sketch and live hint); the media objects and files go
  with the `media` kind (60), which finds them by UPLOADED.
- `story_views` (36): the stories the user has seen (STORY_SEEN) and, for each, the user's entry
  in that story's viewer list (the exact STORY_VIEWER edge and the Redis recent-viewers set). A
  HyperLogLog keeps no identities (only register maxima of hashes), so nothing of the user can
  be taken out of or read back from it; its count keeps the view.
- `story_lists` (38): story mutes and restricted accounts (the user's own lists); edges others
  hold to the user without an inverse (their STORY_MUTES, RESTRICTS, STORY_VIEWER of the
  user's views) go with the built-in `inbound` kind. Close friends are the built-in
  `close_friends` kind (both directions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from resolvers.account_data.builtin import by_visible_authors, edge_kind, pages, remove_edge, visible_user_ids
from resolvers.account_data.registry import DataContext, DataKind, register_kind, register_scheduled_handler
from resolvers.records import record_of
from resolvers.stories.actions import EXPIRE_JOB, PURGE_JOB, cleanup, viewers_sketch_key
from resolvers.stories.model import Highlight, Story

LISTS = ("STORY_LIVE", "STORY_ARCHIVE")


async def _export_stories(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    for atype in LISTS:
        async for page in pages(ctx.tao, user, atype, ctx.settings.account_data.export_page):
            objs = await ctx.tao.obj_get([a.id2 for a in page])
            stories = [s for a in page if a.id2 in objs and isinstance(s := record_of(objs[a.id2]), Story)]
            # Mentioned accounts the user may still see: one who blocks them, whom they block, or
            # pending deletion is left out (its id was exported, as nowhere in the app).
            shown = await visible_user_ids(ctx, user, list({u for s in stories for u in s.mentions}))
            for s in stories:
                yield {"id": str(s.id), "posted_at": s.posted_at, "audience": s.audience.name,
                       "state": "live" if atype == "STORY_LIVE" else "archived", "media": str(s.media),
                       "mentions": [str(u) for u in s.mentions if u in shown], "hashtag": s.hashtag,
                       "link": s.link}


async def _purge_stories(ctx: DataContext, user: int) -> int:
    tao = ctx.tao
    removed = 0
    for atype in LISTS:
        for a in await tao.assoc_range(user, atype, 0, ctx.batch - removed):
            obj = (await tao.obj_get([a.id2])).get(a.id2)
            story = record_of(obj) if obj is not None else None
            for job_id in story.jobs if isinstance(story, Story) else ():
                await tao.outbox.delete(tao.shard(user), job_id)  # its expiry/purge: nothing left to do
            await tao.obj_delete(a.id2)
            await cleanup(tao, a.id2, user)
            # others' edges to it without an inverse (their seen marks): found by the store's scan
            while edges := await tao.assoc_scan_to([a.id2], 500):
                for id1, t, id2 in edges:
                    await remove_edge(tao, id1, t, id2)
            await ctx.erase([a.id2])
            removed += 1
    return removed


async def _export_highlights(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    async for page in pages(ctx.tao, user, "HAS_HIGHLIGHT"):
        objs = await ctx.tao.obj_get([a.id2 for a in page])
        for a in page:
            h = record_of(objs[a.id2]) if a.id2 in objs else None
            if isinstance(h, Highlight):
                yield {"id": str(h.id), "title": h.title, "cover": str(h.cover) if h.cover else None,
                       "stories": [str(s) for s in h.stories], "created": h.created}


async def _purge_highlights(ctx: DataContext, user: int) -> int:
    tao = ctx.tao
    page = await tao.assoc_range(user, "HAS_HIGHLIGHT", 0, ctx.batch)
    for a in page:
        obj = (await tao.obj_get([a.id2])).get(a.id2)
        h = record_of(obj) if obj is not None else None
        for sid in (h.stories if isinstance(h, Highlight) else ()):
            await tao.assoc_delete(sid, "IN_HIGHLIGHT", a.id2)
        for e in await tao.assoc_range(a.id2, "HIGHLIGHT_OF", 0, 1000):  # any edge the data missed
            await tao.assoc_delete(e.id2, "IN_HIGHLIGHT", a.id2)
        await tao.obj_delete(a.id2)
        await tao.assoc_delete(user, "HAS_HIGHLIGHT", a.id2)
        await ctx.erase([a.id2])
    return len(page)


async def _export_views(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    """Stories the user saw, but not those of an account now hidden from them (blocked either
    way, pending deletion): the export named them until the fifteenth session."""
    async for page in pages(ctx.tao, user, "STORY_SEEN", ctx.settings.account_data.export_page):
        keep = await by_visible_authors(ctx, user, [a.id2 for a in page])
        for a in page:
            if a.id2 in keep:
                yield {"story": str(a.id2), "time": a.time}


async def _purge_views(ctx: DataContext, user: int) -> int:
    tao = ctx.tao
    page = await tao.assoc_range(user, "STORY_SEEN", 0, ctx.batch)
    for a in page:
        await tao.assoc_delete(a.id2, "STORY_VIEWER", user)
        if tao.sketches.available:  # a Redis error fails the batch: the purge is retried
            await tao.sketches.forget(viewers_sketch_key(a.id2), user)
        await tao.assoc_delete(user, "STORY_SEEN", a.id2)
    return len(page)


register_kind(DataKind("highlights", "Story highlights", 33,
                       {"id": "id", "title": "title", "cover": "story id", "stories": "story ids, in order",
                        "created": "ms"}, _export_highlights, _purge_highlights))
register_kind(DataKind("stories", "Stories (live and archived)", 34,
                       {"id": "id", "posted_at": "ms (the store's clock)", "audience": "FOLLOWERS or CLOSE_FRIENDS",
                        "state": "live or archived", "media": "media id (its file is in media/)",
                        "mentions": "user ids (those you may see)", "hashtag": "hashtag sticker",
                        "link": "link sticker"},
                       _export_stories, _purge_stories))
register_kind(DataKind("story_views", "Stories you viewed", 36, {"story": "story id", "time": "when you saw it (ms)"},
                       _export_views, _purge_views))
edge_kind("story_lists", "Story mutes and restricted accounts", 38, ("STORY_MUTES", "RESTRICTS"),
          "accounts whose stories you muted / that you restrict", accounts=("STORY_MUTES", "RESTRICTS"))

# A story's expiry and purge run a day or a month on and touch only that story: an account
# purge does not wait for others' (it deletes its own user's, above).
register_scheduled_handler(EXPIRE_JOB)
register_scheduled_handler(PURGE_JOB)
