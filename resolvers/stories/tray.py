"""The story tray and profile rings: pulled at read time (docs/stories.md, "Push or pull").

A tray read is a fixed number of batched reads whatever the viewer follows: the viewer's
FOLLOWS list, the live hints of those accounts (with Redis: one script call answering one flag
per account, so accounts without a live story cost no cache read), the live window
(`posted_at > now - 24 h`) of the remaining accounts' STORY_LIVE lists (one many-keys read: one
cache round trip per memcached server), then, for the accounts with live stories only, in
parallel: the viewer's story mutes, their visibility (blocks, private accounts), close-friends
membership where a ring holds a close-friends story, the viewer's seen marks, and the feed's
affinity signals. Posting writes nothing per follower.

Order: the viewer's own ring first; then rings with an unseen story, then fully seen ones; each
group by the viewer's affinity with the author (the feed's signal, `Scorer.author_affinity`),
then by the newest story. A ring's stories are oldest first.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.feed.ranking import Scorer, load_signals
from resolvers.pagination import Cursor, Page, check_first, list_page
from resolvers.stories.actions import live_hint_key
from resolvers.stories.model import Story, live_low
from resolvers.stories.visibility import is_close_friend, now_ms, visible_stories, visible_stories_by_id
from tao import Assoc, TaoError

if TYPE_CHECKING:
    from resolvers.context import RequestContext
    from resolvers.loaders import Loaders


_NONE_SEEN: Mapping[int, Assoc] = MappingProxyType({})  # a ring built elsewhere knows no seen marks
MARKS_SCAN = 1000  # a viewer's seen marks of the last 24 h (or story mutes) read as one list up to this
LIVE_READ = 100  # an author's live stories read at once (the tray's rings, the profile ring)


@dataclass(slots=True)
class Ring:
    author: int
    story_ids: list[int]  # oldest first: only stories the viewer may see
    has_unseen: bool
    latest_at: int
    close_friends: bool
    affinity: float = 0.0
    own: bool = False
    member: bool = False  # the viewer may see the author's close-friends stories (own ring, or on the list)
    # What the tray read learnt, shared by all its rings: the viewer's seen marks of live stories
    # (their `viewerHasSeen`), and the viewer's follow edge to this author (its visibility).
    seen: Mapping[int, Assoc] = _NONE_SEEN
    follow: Assoc | None = None


def _ring(author: int, edges: list[Assoc], seen: dict[int, Assoc], member: bool, own: bool) -> Ring | None:
    """The ring of one author's live edges (newest first, as the list keeps them)."""
    if own or member:
        shown = edges
    else:
        shown = [e for e in edges if not e.data.get("cf")]
        if not shown:
            return None
    ids = [e.id2 for e in reversed(shown)]  # the list's order is (time, id2) descending
    return Ring(author, ids, not all(i in seen for i in ids), shown[0].time,
                (own or member) and any(e.data.get("cf") for e in shown), own=own, member=own or member, seen=seen)


async def tray_rings(ctx: RequestContext) -> list[Ring]:
    """Every ring of the viewer's tray, in tray order."""
    return await _visible(ctx, await _candidates(ctx))


# One read of the tray per request (its loaders): a request that asks for the tray twice (an
# alias for the stories of the first rings, beside the page of rings) reads it once.
_READS: weakref.WeakKeyDictionary[Loaders, asyncio.Future[list[Ring]]] = weakref.WeakKeyDictionary()


async def _candidates(ctx: RequestContext) -> list[Ring]:
    """The tray's rings in tray order, before the authors' visibility (`_visible`): the ring of
    every followed account with live stories the viewer may see if its author is FULL to them,
    and is not story-muted. Read once per request."""
    read = _READS.get(ctx.loaders)
    if read is None:
        read = _READS[ctx.loaders] = asyncio.ensure_future(_read_candidates(ctx))
    return await asyncio.shield(read)


async def _read_candidates(ctx: RequestContext) -> list[Ring]:
    viewer = ctx.require_viewer()
    tao = ctx.tao
    loaders = ctx.loaders
    now = now_ms(ctx)
    follows = await tao.assoc_range(viewer, "FOLLOWS", 0, ctx.settings.stories.tray_max_following)
    authors = [viewer] + await _maybe_live([a.id2 for a in follows if a.id2 != viewer], ctx, now)
    lives = await tao.assoc_time_range_many([(a, "STORY_LIVE") for a in authors], low=live_low(now), limit=LIVE_READ)
    live = {a: edges for a in authors if (edges := lives.get((a, "STORY_LIVE")))}
    others = [a for a in live if a != viewer]
    cf_authors = [a for a in others if any(e.data.get("cf") for e in live[a])]
    story_ids = [e.id2 for edges in live.values() for e in edges]
    mutes, members, seen, signals = await asyncio.gather(
        _own_marks(ctx, viewer, "STORY_MUTES", others, None),
        loaders.assoc_by_key.load_many([(a, "CLOSE_FRIEND", viewer) for a in cf_authors]),
        _own_marks(ctx, viewer, "STORY_SEEN", story_ids, live_low(now)),
        load_signals(ctx, viewer) if others else _none())
    member = {a for a, m in zip(cf_authors, members) if m is not None and not isinstance(m, BaseException)}
    followed = {f.id2: f for f in follows}
    rings: list[Ring] = []
    if viewer in live and (own := _ring(viewer, live[viewer], seen, True, True)) is not None:
        rings.append(own)
    scorer = Scorer(signals, ctx.settings.feed, now) if signals is not None else None
    theirs = []
    for a in others:
        if a not in mutes and (ring := _ring(a, live[a], seen, a in member, False)) is not None:
            ring.affinity = scorer.author_affinity(a) if scorer is not None else 0.0
            ring.follow = followed.get(a)
            theirs.append(ring)
    theirs.sort(key=lambda r: (not r.has_unseen, -r.affinity, -r.latest_at, -r.author))
    return rings + theirs


async def _visible(ctx: RequestContext, rings: list[Ring]) -> list[Ring]:
    """The rings whose author is FULL to the viewer (`privacy.user_visibility`, in one batch:
    exists and not deactivated, no block either way, public or followed). A ring whose author
    could not be read (a shard down) is left out: the tray shows what it can."""
    viewer, edges = ctx.viewer_id, ctx.loaders.assoc_by_key
    for r in rings:  # a private author's visibility asks for the follow edge this read has
        if r.follow is not None:
            edges.prime((viewer, "FOLLOWS", r.author), r.follow)
    found = await ctx.loaders.visibility_by_user_id.load_each([r.author for r in rings])
    return [r for r, v in zip(rings, found) if v is privacy.Visibility.FULL]


async def _maybe_live(authors: list[int], ctx: RequestContext, now: int) -> list[int]:
    """The followed accounts that may have a live story: with Redis, those whose live hint
    (`actions.set_live_hint`: set when they post, expiring 24 h after their newest story) is
    at least the live window's low end, one script call answering with one flag per account;
    the authority is still each one's STORY_LIVE list, read next. Without Redis, or if it does
    not answer, every followed account."""
    sketches = ctx.tao.sketches
    if not sketches.available or not authors:
        return authors
    try:
        flags = await sketches.hints_at_least([live_hint_key(a) for a in authors], live_low(now))
    except TaoError:
        return authors
    return [a for a, live in zip(authors, flags) if live]


async def _own_marks(ctx: RequestContext, viewer: int, atype: str, ids: list[int], low: int | None
                     ) -> dict[int, Assoc]:
    """The viewer's (id1 = viewer) `atype` edges to those of `ids` it holds: read as the list
    itself (newest first, from `low`: a seen mark is never older than its live story), one cache
    key, instead of one key per id; a list longer than MARKS_SCAN falls back to per-id edges."""
    if not ids:
        return {}
    page = await ctx.tao.assoc_time_range(viewer, atype, low=low, limit=MARKS_SCAN)
    if len(page) < MARKS_SCAN:
        wanted = set(ids)
        return {a.id2: a for a in page if a.id2 in wanted}
    return await ctx.tao.assoc_get(viewer, atype, ids)


async def _none() -> None:
    return None


async def _true() -> bool:
    return True


async def story_tray(ctx: RequestContext, first: int, after: Cursor | None) -> Page[Ring]:
    """A page of the tray; the cursor is (position, author), so paging on re-reads the tray and
    continues after the last ring shown (a ring that moved meanwhile may be shown again or skipped).
    Only the rings a page shows have their authors' visibility read (one more, to know whether a
    next page holds any), in order, a batch at a time: not every live author's."""
    check_first(ctx, first)
    rings = await _candidates(ctx)
    start = 0
    if after is not None:
        pos, author = after
        start = next((i + 1 for i, r in enumerate(rings) if r.author == author), pos + 1)
    positions = {id(r): i for i, r in enumerate(rings)}
    chosen: list[Ring] = []
    i = start
    while len(chosen) <= first and i < len(rings):
        batch = rings[i:i + first + 1 - len(chosen)]
        chosen += await _visible(ctx, batch)
        i += len(batch)
    items = [((positions[id(r)], r.author), r) for r in chosen[:first]]
    return Page(items=items, has_next=len(chosen) > first, end_cursor=items[-1][0] if items else after,
                has_previous=start > 0)


async def ring_stories(ctx: RequestContext, ring: Ring) -> list[Story]:
    """A ring's stories the viewer may see, oldest first (`rings_stories` for one ring)."""
    stories = (await rings_stories(ctx, [ring]))[0]
    if isinstance(stories, BaseException):
        raise stories
    return stories


async def rings_stories(ctx: RequestContext, rings: list[Ring]) -> list[list[Story] | BaseException]:
    """Each ring's stories the viewer may see, oldest first (or the error of a story that could
    not be read). The tray read decided, in this request, what holds for the whole ring (the
    author is FULL to the viewer; the viewer is or is not on the author's close friends); each
    story is re-checked here for what the tray read only as an edge: that it exists, is the
    author's, is live now on the store's clock, and is for close friends only if the viewer is
    one. One batched object read for all the rings of a page, no per-story checks to schedule."""
    now = now_ms(ctx)
    ids = [i for r in rings for i in r.story_ids]
    viewer, edges = ctx.viewer_id, ctx.loaders.assoc_by_key
    for r in rings:  # the tray read's seen marks answer these stories' `viewerHasSeen`
        if r.seen is not _NONE_SEEN:
            for i in r.story_ids:
                edges.prime((viewer, "STORY_SEEN", i), r.seen.get(i))
    objs = dict(zip(ids, await ctx.loaders.object_by_id.load_each(ids)))
    out: list[list[Story] | BaseException] = []
    for r in rings:
        found = [objs[i] for i in r.story_ids]
        failed = next((o for o in found if isinstance(o, BaseException)), None)
        out.append(failed if failed is not None else
                   [o for o in found if isinstance(o, Story) and o.author == r.author and o.live_at(now)
                    and (r.member or not o.close_friends)])
    return out


async def user_stories(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[Story]:
    """`User.stories`: a page of the user's live stories the viewer may see, oldest first (the
    profile ring); the cursor is a story's (time, id), so paging on continues after it. Only the
    stories the viewer may see are paged (an author not FULL to them: none; close-friends stories
    only for the list's members, from the edges' `cf`), so neither a page nor `hasNextPage`
    counts hidden ones: they told a stranger a private account's number of live stories, and a
    non-member that an account posts for close friends (one empty page with `hasNextPage` each,
    until the eighteenth session's `shedding` branch). Each page still checks its stories
    (`visible_stories_by_id`: existing, live on the store's clock, the audience from the object)."""
    viewer = ctx.viewer_id
    now = now_ms(ctx)
    # The author's visibility is read beside the list (one round, as before), not ahead of it.
    visible, edges = await asyncio.gather(
        privacy.owner_visible(ctx, user_id) if user_id != viewer else _true(),
        ctx.tao.assoc_time_range(user_id, "STORY_LIVE", low=live_low(now), limit=LIVE_READ))
    if not visible:
        check_first(ctx, first)
        return Page(end_cursor=after, has_previous=after is not None)
    if user_id != viewer and any(e.data.get("cf") for e in edges) and not await is_close_friend(ctx, user_id, viewer):
        edges = [e for e in edges if not e.data.get("cf")]
    entries = sorted(((e.time, e.id2), e.id2) for e in edges)
    if after is not None:
        entries = [e for e in entries if e[0] > after]
    return await list_page(ctx, entries, first, after, functools.partial(visible_stories_by_id, ctx))


async def story_archive(ctx: RequestContext, first: int, after: Cursor | None) -> Page[Story]:
    """The viewer's archive (expired stories the expiry job moved), newest first."""
    from resolvers.pagination import load_assoc_page, make_page

    viewer = ctx.require_viewer()
    assocs, has_next = await load_assoc_page(ctx, viewer, "STORY_ARCHIVE", first, after)
    stories = await visible_stories(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {s.id: s for s in stories}, after)
