"""The feed's read entry points, called by schema/feed.py: `home_feed` (one page of
`viewer.feed`), `new_posts_count`, `do_record_profile_visit`.

A first page (no cursor) touches the viewer's activity, gathers and filters candidates, ranks
them (or orders them by time), and stores the order as a feed session; a later page reads the
session. Either way the page shown is re-filtered (removal is immediate), and FEED edges found
unshowable are handed to a repair job. The re-filter's block and mute checks are answered from
the viewer's MUTES / BLOCKS / BLOCKED_BY lists, read whole (`ShutOut.prime`), not looked up
per author.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.errors import PermissionDeniedError, UserError
from resolvers.feed import candidates, ranking
from resolvers.feed.activity import record_profile_visit, touch_active
from resolvers.feed.removal import REMOVE_POSTS_JOB
from resolvers.feed.sessions import FeedCursor, Session, create_session, load_session, record_seen
from resolvers.pagination import check_first
from resolvers.records import Post, User
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext


class FeedErrorCode(enum.Enum):
    USER_NOT_FOUND = "USER_NOT_FOUND"


class FeedMode(enum.Enum):
    RANKED = "RANKED"
    CHRONOLOGICAL = "CHRONOLOGICAL"


@dataclass
class FeedItem:
    post: Post
    cursor: FeedCursor
    debug: dict[str, float] | None = None


@dataclass
class FeedPage:
    items: list[FeedItem] = field(default_factory=list)
    has_next: bool = False
    end_cursor: FeedCursor | None = None
    has_previous: bool = False
    session: Session | None = None
    # Whether the viewer may see the ranking scores (`debug_allowed`).
    debug_allowed: bool = False


SCORES_FORBIDDEN = "Feed scores are for developers: ask for the developer flag on your account."


def debug_allowed(ctx: RequestContext, viewer: User | None) -> bool:
    """Whether the viewer may see ranking scores (`SCORES_FORBIDDEN` otherwise): the server runs
    in debug mode, or their account has the developer flag."""
    return bool(ctx.settings.server.debug or (viewer is not None and viewer.is_developer))


async def _viewer(ctx: RequestContext) -> User:
    viewer_id = ctx.require_viewer()
    obj = await ctx.loaders.object_by_id.load(viewer_id)
    if not isinstance(obj, User):
        raise PermissionDeniedError("Your account no longer exists: log in again.")
    return obj


async def user_home_feed(ctx: RequestContext, user_id: int, first: int, after: FeedCursor | None,
                         mode: FeedMode) -> FeedPage:
    """`User.feed`: the home feed, for the account itself only."""
    if ctx.require_viewer() != user_id:
        raise PermissionDeniedError("Only the account itself can read its home feed: use `viewer { feed }`.")
    return await home_feed(ctx, first, after, mode)


async def home_feed(ctx: RequestContext, first: int, after: FeedCursor | None, mode: FeedMode) -> FeedPage:
    check_first(ctx, first)
    viewer = await _viewer(ctx)
    if after is None:
        viewer = await touch_active(ctx.tao, viewer, ctx.settings.feed)
        ctx.loaders.object_by_id.clear(viewer.id).prime(viewer.id, viewer)
        ordered, shut = await _ranked(ctx, viewer, mode)
        start = 0
        cands = [candidates.Candidate(x.cand.post, x.cand.author, x.cand.time, pushed=True) for x in ordered[:first]]
        shut.prime(ctx.loaders, viewer.id, {c.author for c in cands})
        # Storing the snapshot and checking its first page are independent: one wait for both.
        session, (kept, drop) = await asyncio.gather(
            create_session(ctx, viewer.id, mode.value, ordered, debug_allowed(ctx, viewer)),
            candidates.keep_visible(ctx, viewer.id, cands))
    else:
        # The shut-out lists (three cached keys) stand in for three edge lookups per author.
        session, shut = await asyncio.gather(load_session(ctx, viewer.id, after),
                                             candidates.shut_authors(ctx, viewer.id))
        start = after[1] + 1
        cands = [candidates.Candidate(p, a, 0, pushed=True)
                 for p, a in zip(session.ids[start:start + first], session.authors[start:start + first])]
        shut.prime(ctx.loaders, viewer.id, {c.author for c in cands})
        _, (kept, drop) = await asyncio.gather(record_seen(ctx, session, after),
                                               candidates.keep_visible(ctx, viewer.id, cands))
    ids = session.ids[start:start + first]
    await _repair(ctx, viewer.id, drop)
    shown = {c.post: c.obj for c in kept if c.obj is not None}  # kept: loaded and visible
    items = [FeedItem(shown[p], (session.id, start + i, start), session.debug_of(start + i))
             for i, p in enumerate(ids) if p in shown]
    # The cursor of the page's last position, even for an empty page (index start - 1: paging on
    # starts at `start`), so `endCursor` is always set, as the schema promises.
    return FeedPage(items=items, has_next=start + len(ids) < len(session.ids),
                    end_cursor=(session.id, start + len(ids) - 1, start),
                    has_previous=after is not None, session=session, debug_allowed=debug_allowed(ctx, viewer))


async def _ranked(ctx: RequestContext, viewer: User, mode: FeedMode
                  ) -> tuple[list[ranking.Scored], candidates.ShutOut]:
    """The new snapshot's order (candidates gathered, prefiltered, then ranked or by time),
    and the viewer's shut-out lists it read. What needs only the viewer (the candidates, the
    shut-out lists, the viewer's signals) is read concurrently: the cache tier answers it in
    shared round trips."""
    ranked = mode is FeedMode.RANKED
    cands, shut, signals = await asyncio.gather(
        candidates.gather(ctx, viewer), candidates.shut_authors(ctx, viewer.id),
        ranking.load_signals(ctx, viewer.id) if ranked else _none())
    kept, drop = await candidates.prefilter(ctx, viewer.id, cands, shut.authors)
    await _repair(ctx, viewer.id, drop)
    if not ranked:
        return ranking.chronological(kept), shut
    s = ctx.settings.feed
    assert signals is not None  # loaded for a ranked feed
    signals.seen = {c.post for c in kept if c.seen}
    scorer = ranking.Scorer(signals, s)
    await ranking.load_engagement(ctx.tao, ranking.second_pass(kept, scorer), signals)
    return ranking.rank(kept, signals, s, scorer=scorer), shut


async def _none() -> None:
    return None


async def _repair(ctx: RequestContext, viewer: int, drop: list[int]) -> None:
    if drop:
        await ctx.tao.enqueue(viewer, REMOVE_POSTS_JOB, {"viewer": viewer, "posts": drop})


async def new_posts_count(ctx: RequestContext, session: Session) -> int:
    """Showable posts that arrived after the session's snapshot: the client offers a refresh."""
    viewer = await _viewer(ctx)
    low = session.created - ctx.settings.feed.new_posts_lookback_seconds * 1000
    known = set(session.ids)
    fresh = [c for c in await candidates.gather(ctx, viewer, low=low, limit=ctx.settings.limits.max_page_size)
             if c.post not in known]
    kept, _ = await candidates.keep_visible(ctx, viewer.id, fresh)
    return len(kept)


async def do_record_profile_visit(tao: Tao, actor_id: int, user_id: int) -> None:
    """Record that the actor opened `user_id`'s profile (an affinity signal for ranking)."""
    if await privacy.user_visibility(acting_as(tao, actor_id), user_id) == privacy.Visibility.HIDDEN:
        raise UserError(FeedErrorCode.USER_NOT_FOUND, "No such user: check the id.", "userId")
    await record_profile_visit(tao, actor_id, user_id)
