"""A viewer's feed candidates: their FEED list merged with posts pulled at read time, then
filtered by everything that may have changed since the post was pushed.

Sources (merged, de-duplicated by post id, newest first):
- the viewer's FEED list (pushed by fan-out), younger than `feed.window_days`;
- the AUTHORED lists of the big accounts the viewer follows (BIG_ACCOUNT ∩ FOLLOWS), and of the
  viewer themself (their own posts are never pushed to them);
- while a rebuild is pending (a viewer back after `feed.inactive_days`), the AUTHORED lists of
  every account they follow (`feed.rebuild_followings` newest follows): the pull path.

Filtering at read is what makes removal immediate (`prefilter` for a whole snapshot from the
viewer's own lists, `keep_visible` through privacy for each page served): a candidate is shown only if the post still
exists and is visible, its author is fully visible to the viewer (privacy: blocks both ways,
private accounts), the viewer follows the author (or is the author) and does not mute them.
FEED edges that fail are reported so a job can remove them from the stored list (read repair).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from resolvers.edge_data import big_until, edge_author, edge_kind, edge_shown
from resolvers.feed import big_accounts
from resolvers.feed.activity import DAY_MS, rebuild_pending
from resolvers.privacy import Visibility
from resolvers.records import Post, User, record_of
from tao import Assoc, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext
    from resolvers.loaders import Loaders

PULL_CHUNK = 500  # AUTHORED lists read per many-keys call


@dataclass(slots=True)
class Candidate:
    post: int
    author: int
    time: int
    pushed: bool = False       # came from the viewer's FEED list
    obj: Post | None = None    # the post, once loaded (None: missing, or not a post)
    seen: bool = False         # the viewer scrolled past it (a mark on its FEED edge)
    kind: str | None = None    # photo | video | carousel, from the edge (None: from the post)


async def pull_authors(tao: Tao, authors: list[int], low: int, per_author: int,
                       high: int | None = None) -> list[Candidate]:
    """The newest `per_author` posts (time >= low) of each author, from their AUTHORED lists."""
    out: list[Candidate] = []
    for i in range(0, len(authors), PULL_CHUNK):
        keys = [(a, "AUTHORED") for a in authors[i:i + PULL_CHUNK]]
        pages = await tao.assoc_time_range_many(keys, high=high, low=low, limit=per_author)
        for (author, _), page in pages.items():
            out += [Candidate(e.id2, author, e.time, kind=edge_kind(e.data)) for e in page]
    return out


async def pulled_authors(ctx: RequestContext, viewer: User) -> list[tuple[int, int | None]]:
    """(author, until) for every account whose posts the viewer's feed pulls at read time."""
    s, tao = ctx.settings.feed, ctx.tao
    if rebuild_pending(viewer):
        follows = await tao.assoc_range(viewer.id, "FOLLOWS", 0, s.rebuild_followings)
        return [(viewer.id, None), *((a.id2, None) for a in follows)]
    big = {e.id2: big_until(e.data) for e in await big_accounts.big_account_edges(tao)}
    big.pop(viewer.id, None)
    followed = await ctx.loaders.assoc_by_key.load_many([(viewer.id, "FOLLOWS", b) for b in big])
    return [(viewer.id, None)] + [(b, until) for (b, until), f in zip(big.items(), followed) if f is not None]


async def gather(ctx: RequestContext, viewer: User, *, low: int | None = None, limit: int | None = None
                 ) -> list[Candidate]:
    """Unfiltered candidates, newest first, at most `limit` (default `feed.page_candidates`)."""
    s, tao = ctx.settings.feed, ctx.tao
    limit = limit or s.page_candidates
    low = now_ms() - int(s.window_days * DAY_MS) if low is None else low
    feed, authors = await asyncio.gather(
        tao.assoc_time_range(viewer.id, "FEED", low=low, limit=limit), pulled_authors(ctx, viewer))
    by_post = {e.id2: Candidate(e.id2, edge_author(e.data) or 0, e.time, pushed=True, seen=edge_shown(e.data),
                                kind=edge_kind(e.data)) for e in feed}
    unbounded = [a for a, until in authors if until is None]
    pulled = await pull_authors(tao, unbounded, low, s.pull_per_author)
    for a, until in authors:  # formerly big: only what they posted while big was never pushed
        if until is not None:
            pulled += await pull_authors(tao, [a], low, s.pull_per_author, high=until)
    for c in pulled:
        if c.post not in by_post:
            by_post[c.post] = c
    return sorted(by_post.values(), key=lambda c: (c.time, c.post), reverse=True)[:limit]


@dataclass(slots=True)
class ShutOut:
    """The viewer's MUTES, BLOCKS and BLOCKED_BY lists: the authors whose posts a feed never
    shows (either block direction, or a mute)."""

    lists: dict[str, list[Assoc]]

    @property
    def authors(self) -> set[int]:
        return {e.id2 for page in self.lists.values() for e in page}

    def prime(self, loaders: Loaders, viewer: int, authors: Iterable[int]) -> None:
        """Tell this request's edge loader what the lists, read whole moments ago, say about
        the viewer's edges to `authors` (an edge or its absence), so the page check (privacy's
        blocks, the mutes) looks none of them up again. A list as long as the read's limit
        may have been cut short: its absences prove nothing, so it primes nothing."""
        for atype, page in self.lists.items():
            if len(page) >= big_accounts.MAX_BIG_ACCOUNTS:
                continue
            edges = {e.id2: e for e in page}
            for a in authors:
                loaders.assoc_by_key.prime((viewer, atype, a), edges.get(a))


async def shut_authors(ctx: RequestContext, viewer: int) -> ShutOut:
    """The viewer's shut-out lists: three short lists on the viewer's shard, one many-keys read."""
    lists = await ctx.tao.assoc_range_many([(viewer, t) for t in ("MUTES", "BLOCKS", "BLOCKED_BY")],
                                           0, big_accounts.MAX_BIG_ACCOUNTS)
    return ShutOut({atype: page for (_, atype), page in lists.items()})


async def prefilter(ctx: RequestContext, viewer: int, cands: list[Candidate], shut: set[int]
                    ) -> tuple[list[Candidate], list[int]]:
    """The cheap filter for a whole snapshot (hundreds of candidates), from what the edges
    carry: drop posts by `shut` authors (`shut_authors`). It loads no posts: FEED edges exist
    only for visible posts of followed authors (a delete, unfollow or block removes them by job
    within seconds), pulled authors are checked by `pulled_authors`, and `keep_visible`, the
    authoritative check through privacy, runs on each page as it is served. Candidates whose
    edge lacks the post's kind (edges written before it was carried) get the post loaded.
    Returns (kept, pushed post ids to remove from FEED)."""
    kept, drop = [], []
    for c in cands:
        if c.author == viewer or c.author not in shut:
            kept.append(c)
        elif c.pushed:
            drop.append(c.post)
    unknown = [c for c in kept if c.kind is None]
    if unknown:
        objs = await ctx.tao.obj_get([c.post for c in unknown])
        for c in unknown:
            found = objs.get(c.post)
            post = record_of(found) if found is not None else None
            c.obj = post if isinstance(post, Post) else None
            c.kind = c.obj.kind.value if c.obj is not None else None
    return kept, drop


async def keep_visible(ctx: RequestContext, viewer: int, cands: list[Candidate]
                       ) -> tuple[list[Candidate], list[int]]:
    """(the candidates the viewer may see now, in order; pushed post ids that must leave FEED)."""
    if not cands:
        return [], []
    loaders = ctx.loaders
    # The authors come from the edges, so the posts and the authors' visibility load together;
    # a post whose stored author differs from its edge's (never, short of a bug) is not shown.
    edge_authors = {c.post: c.author for c in cands}
    authors = list(dict.fromkeys(c.author for c in cands if c.author != viewer))
    objs, vis, mutes, follows = await asyncio.gather(
        loaders.object_by_id.load_many([c.post for c in cands]),
        loaders.visibility_by_user_id.load_many(authors),
        loaders.assoc_by_key.load_many([(viewer, "MUTES", a) for a in authors]),
        loaders.assoc_by_key.load_many([(viewer, "FOLLOWS", a) for a in authors]))
    for c, o in zip(cands, objs):
        c.obj = o if isinstance(o, Post) else None
        if c.obj is not None:
            c.author = c.obj.author
            c.time = c.obj.time  # one clock for pushed and pulled posts
    ok_authors = {viewer} | {a for a, v, m, f in zip(authors, vis, mutes, follows)
                             if v == Visibility.FULL and m is None and f is not None}
    kept, drop = [], []
    for c in cands:
        o = c.obj
        if (o is not None and o.is_visible and c.author == edge_authors[c.post] and c.author in ok_authors):
            kept.append(c)
        elif c.pushed:
            drop.append(c.post)
    return kept, drop
