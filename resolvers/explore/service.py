"""Explore's read entry points, called by schema/explore.py: `explore` (one page of the grid),
`suggested_users`, `do_dismiss_suggestion`; trending hashtags are `trends.trending_hashtags`.

A first page reads, concurrently, the viewer's pool (one cached edge), shut-out lists (MUTES,
BLOCKS, BLOCKED_BY: three cached lists) and seen set (one SQL statement); drops the candidates
those exclude; ranks the rest (`ranking.rank`: first pass, one per author, second pass, mix of
kinds) and stores the order as a session. Every page, first or later, is checked before it is
returned (`_check`): the post exists and is visible (not processing), its author is FULL to the
viewer by `resolvers.privacy` (no block either way, not a private account they are not approved
for), is not the viewer, is not followed, not muted, not private, and the post was not served by
another Explore session. A page checks a few more positions than it serves, so a skipped post
is replaced by the next one; the cursor names the last position consumed.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.explore import ranking
from resolvers.explore.pool import Suggestion, pool_for
from resolvers.explore.sessions import (
    ExploreCursor,
    create_session,
    load_session,
    record_served,
    seen_elsewhere,
    seen_posts,
)
from resolvers.feed.candidates import ShutOut, shut_authors
from resolvers.pagination import check_first
from resolvers.records import Post, User
from tao import Assoc, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext


class ExploreErrorCode(enum.Enum):
    USER_NOT_FOUND = "USER_NOT_FOUND"
    CANNOT_DISMISS_SELF = "CANNOT_DISMISS_SELF"


@dataclass
class ExploreItem:
    post: Post
    cursor: ExploreCursor


@dataclass
class ExplorePage:
    items: list[ExploreItem] = field(default_factory=list)
    has_next: bool = False
    end_cursor: ExploreCursor | None = None
    has_previous: bool = False


FOLLOWS_SCAN = 1000  # the viewer's follows read per page, to answer the check's FOLLOWS lookups


async def _shut_and_follows(ctx: RequestContext, viewer: int) -> tuple[ShutOut, list[Assoc]]:
    """The shut-out lists and the viewer's follows (up to FOLLOWS_SCAN), read concurrently."""
    shut, follows = await asyncio.gather(shut_authors(ctx, viewer),
                                         ctx.tao.assoc_range(viewer, "FOLLOWS", 0, FOLLOWS_SCAN))
    return shut, follows


def _slack(first: int) -> int:
    """Extra positions a page checks, to replace posts that fail the check."""
    return max(4, first // 4)


async def explore(ctx: RequestContext, first: int, after: ExploreCursor | None) -> ExplorePage:
    check_first(ctx, first)
    viewer = ctx.require_viewer()
    if after is None:
        pool, (shut, follows), seen = await asyncio.gather(pool_for(ctx, viewer), _shut_and_follows(ctx, viewer),
                                                           seen_posts(ctx, viewer))
        out = shut.authors
        cands = [c for c in pool.cands if c.post not in seen and c.author not in out and c.author != viewer]
        ranked = await ranking.rank(ctx.tao, cands, pool.kind_likes, ctx.settings.explore, now_ms())
        posts, authors = [x.cand.post for x in ranked], [x.cand.author for x in ranked]
        start = 0
        window = list(zip(posts[:first + _slack(first)], authors[:first + _slack(first)]))
        session, (kept, consumed) = await asyncio.gather(
            create_session(ctx, viewer, posts, authors), _check(ctx, viewer, None, window, first, shut, follows))
    else:
        session, (shut, follows) = await asyncio.gather(load_session(ctx, viewer, after),
                                                        _shut_and_follows(ctx, viewer))
        start = after[1] + 1
        end = start + first + _slack(first)
        window = list(zip(session.ids[start:end], session.authors[start:end]))
        kept, consumed = await _check(ctx, viewer, session.id, window, first, shut, follows)
    await record_served(ctx, viewer, session.id, [p.id for _, p in kept])
    items = [ExploreItem(p, (session.id, start + i)) for i, p in kept]
    last = start + consumed - 1
    return ExplorePage(items=items, has_next=last + 1 < len(session.ids), end_cursor=(session.id, last),
                       has_previous=after is not None)


async def _check(ctx: RequestContext, viewer: int, session: int | None, window: list[tuple[int, int]], first: int,
                 shut: ShutOut, follow_list: list[Assoc]) -> tuple[list[tuple[int, Post]], int]:
    """The authoritative check of a page's positions: ([(offset, post)] of at most `first` that
    pass, positions consumed). `session` None: a first page, whose seen set was just read.
    The lists read for this page (shut-out lists, follows) answer the viewer's edges to the
    authors in the request's edge loader, so the check and privacy look none of them up; a
    list as long as its read's limit may be cut short and answers nothing."""
    if not window or first == 0:
        return [], 0
    loaders = ctx.loaders
    authors = list(dict.fromkeys(a for _, a in window))
    shut.prime(loaders, viewer, authors)
    if len(follow_list) < FOLLOWS_SCAN:
        followed = {e.id2: e for e in follow_list}
        for a in authors:
            loaders.assoc_by_key.prime((viewer, "FOLLOWS", a), followed.get(a))
    objs, users, vis, follows, mutes, elsewhere = await asyncio.gather(
        loaders.object_by_id.load_many([p for p, _ in window]),
        loaders.object_by_id.load_many(authors),
        loaders.visibility_by_user_id.load_many(authors),
        loaders.assoc_by_key.load_many([(viewer, "FOLLOWS", a) for a in authors]),
        loaders.assoc_by_key.load_many([(viewer, "MUTES", a) for a in authors]),
        seen_elsewhere(ctx, viewer, session, [p for p, _ in window]) if session is not None else _no_posts())
    ok_authors = {a for a, u, v, f, m in zip(authors, users, vis, follows, mutes)
                  if a != viewer and isinstance(u, User) and not u.is_private and v == privacy.Visibility.FULL
                  and f is None and m is None}
    visible = await privacy.posts_visible(ctx, list(objs))  # the authoritative rule, for the whole window at once
    kept: list[tuple[int, Post]] = []
    consumed = 0
    for i, ((pid, author), o, ok) in enumerate(zip(window, objs, visible)):
        if len(kept) == first:
            break
        consumed = i + 1
        if (ok and isinstance(o, Post) and o.author == author and author in ok_authors and o.is_visible
                and pid not in elsewhere):
            kept.append((i, o))
    return kept, consumed


async def _no_posts() -> set[int]:
    return set()


@dataclass
class SuggestedUser:
    user: User
    reason: str
    mutuals: int
    follows_you: bool


def reason_of(s: Suggestion, mutual_name: str | None) -> str:
    """"followed by ada and 3 others", "followed by ada", "follows you", or a count when the first
    mutual cannot be named (no longer visible)."""
    if s.mutuals > 0:
        if mutual_name is None:
            return f"followed by {s.mutuals} account{'s' if s.mutuals != 1 else ''} you follow"
        others = s.mutuals - 1
        return f"followed by {mutual_name}" + (f" and {others} other{'s' if others != 1 else ''}" if others else "")
    return "follows you" if s.follows_you else "suggested for you"


async def suggested_users(ctx: RequestContext, first: int) -> list[SuggestedUser]:
    """Accounts the viewer may know, re-checked now: not the viewer, not followed or requested,
    no block either way, not muted, not dismissed lately, and visible by privacy."""
    check_first(ctx, first)
    viewer = ctx.require_viewer()
    if first == 0:
        return []
    pool, shut = await asyncio.gather(pool_for(ctx, viewer), shut_authors(ctx, viewer))
    out = shut.authors
    cands = [x for x in pool.suggestions if x.user != viewer and x.user not in out][:2 * first + 5]
    ids = [x.user for x in cands]
    mutual_ids = list({x.first_mutual for x in cands if x.first_mutual})
    shut.prime(ctx.loaders, viewer, ids + mutual_ids)
    recent = now_ms() - int(ctx.settings.explore.dismiss_days * 86_400_000)
    loaders = ctx.loaders
    # The pool names one mutual per candidate as it was when built: the name is shown only if the
    # viewer still follows that mutual and the mutual still follows the candidate, now (a stale
    # "followed by ada" would tell of a follow ada has undone, of an account that may be private).
    named = [(x.first_mutual, "FOLLOWS", x.user) for x in cands if x.first_mutual]
    vis, follows, requested, dismissed, mutual_vis, mutual_follows, still = await asyncio.gather(
        loaders.visibility_by_user_id.load_many(ids),
        loaders.assoc_by_key.load_many([(viewer, "FOLLOWS", u) for u in ids]),
        loaders.assoc_by_key.load_many([(viewer, "FOLLOW_REQUESTED", u) for u in ids]),
        loaders.assoc_by_key.load_many([(viewer, "DISMISSED_SUGGESTION", u) for u in ids]),
        loaders.visibility_by_user_id.load_many(mutual_ids),
        loaders.assoc_by_key.load_many([(viewer, "FOLLOWS", m) for m in mutual_ids]),
        loaders.assoc_by_key.load_many(named))
    ok = [x for x, v, f, r, d in zip(cands, vis, follows, requested, dismissed)
          if v != privacy.Visibility.HIDDEN and f is None and r is None and (d is None or d.time < recent)][:first]
    namable = {m for m, v, f in zip(mutual_ids, mutual_vis, mutual_follows)
               if v != privacy.Visibility.HIDDEN and f is not None}
    still_follows = {(m, u) for (m, _, u), edge in zip(named, still) if edge is not None}
    objs = await loaders.object_by_id.load_many([x.user for x in ok] + list(namable))
    users = {o.id: o for o in objs if isinstance(o, User)}

    def mutual_name(x: Suggestion) -> str | None:
        m = x.first_mutual
        return users[m].username if m in namable and m in users and (m, x.user) in still_follows else None
    return [SuggestedUser(users[x.user], reason_of(x, mutual_name(x)), x.mutuals, x.follows_you)
            for x in ok if x.user in users]


async def do_dismiss_suggestion(tao: Tao, actor_id: int, user_id: int) -> None:
    """Hide `user_id` from the actor's suggestions for `explore.dismiss_days` (idempotent)."""
    if user_id == actor_id:
        raise UserError(ExploreErrorCode.CANNOT_DISMISS_SELF, "You are never suggested to yourself.", "userId")
    if await privacy.addressable_user(acting_as(tao, actor_id), user_id) is None:
        raise UserError(ExploreErrorCode.USER_NOT_FOUND, "No such user: check the id.", "userId")
    await tao.assoc_add(actor_id, "DISMISSED_SUGGESTION", user_id)

