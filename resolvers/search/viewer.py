"""The viewer's side of a search: their BLOCKS, BLOCKED_BY and FOLLOWS lists, read once per
search, and the accounts their followees follow, cached briefly per process.

Invariant: what decides privacy is read in the request that uses it. The three lists come from
one many-keys read (one cache round trip, all on the viewer's shard) at every search; they
exclude blocked accounts from the candidates, put followed accounts and their posts first, and
tell the request's edge loader what they say about the viewer's edges to the page's accounts
(`prime`), so the authoritative check (`resolvers.privacy`) looks none of them up again. A list
as long as the read's limit may have been cut short: its absences prove nothing, so it primes
nothing and privacy reads those edges itself.

Only the second degree (accounts followed by the viewer's newest followees) is cached in the
process, `GRAPH_TTL` seconds: it only orders results, and privacy never reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resolvers import privacy
from tao import Assoc

if TYPE_CHECKING:
    from resolvers.context import RequestContext
    from resolvers.loaders import Loaders

LIST_SCAN = 1000       # each of the viewer's lists read whole up to this, per search
GRAPH_FOLLOWEES = 25   # of the viewer's newest follows, whose own follows count as "followed by someone you follow"
GRAPH_SECOND = 200     # newest follows read of each of them
GRAPH_TTL = 30.0
GRAPH_CACHE_MAX = 10_000
_LISTS = ("BLOCKS", "BLOCKED_BY", "FOLLOWS")


@dataclass
class ViewerEdges:
    """The viewer's lists as read by this search (empty for an anonymous viewer)."""

    viewer: int | None
    pages: dict[str, list[Assoc]] = field(default_factory=dict)

    @property
    def blocked(self) -> set[int]:
        """Accounts the viewer blocks or is blocked by (as far as the lists were read)."""
        return {e.id2 for t in ("BLOCKS", "BLOCKED_BY") for e in self.pages.get(t, [])}

    @property
    def followed(self) -> frozenset[int]:
        return frozenset(e.id2 for e in self.pages.get("FOLLOWS", []))

    def prime(self, loaders: Loaders, users: Iterable[int]) -> None:
        """Answer the viewer's BLOCKS, BLOCKED_BY and FOLLOWS edges to `users` in this request's
        edge loader from the lists (an edge or its absence), where a list was read whole; and
        the first pages of the block lists that privacy reads (`privacy.BLOCK_LIST_SCAN`
        newest: the head of the list just read), so its check reads neither again."""
        if self.viewer is None:
            return
        for atype in ("BLOCKS", "BLOCKED_BY"):
            if atype in self.pages:
                loaders.assoc_page_by_key.prime((self.viewer, atype, privacy.BLOCK_LIST_SCAN, None),
                                                self.pages[atype][:privacy.BLOCK_LIST_SCAN])
        users = [u for u in dict.fromkeys(users) if u != self.viewer]
        for atype, page in self.pages.items():
            if len(page) >= LIST_SCAN:
                continue
            edges = {e.id2: e for e in page}
            for u in users:
                loaders.assoc_by_key.prime((self.viewer, atype, u), edges.get(u))


async def viewer_edges(ctx: RequestContext) -> ViewerEdges:
    viewer = ctx.viewer_id
    if viewer is None:
        return ViewerEdges(None)
    lists = await ctx.tao.assoc_range_many([(viewer, t) for t in _LISTS], 0, LIST_SCAN)
    return ViewerEdges(viewer, {t: lists.get((viewer, t), []) for t in _LISTS})


# viewer -> (monotonic expiry, accounts their newest followees follow): a person types several
# queries a second, and this only orders results.
_SECOND: dict[int, tuple[float, frozenset[int]]] = {}


async def second_degree(ctx: RequestContext, edges: ViewerEdges) -> frozenset[int]:
    """Accounts followed by the viewer's `GRAPH_FOLLOWEES` newest followees, minus those the
    viewer follows: one many-keys list read, cached `GRAPH_TTL` s."""
    viewer = edges.viewer
    if viewer is None:
        return frozenset()
    now = time.monotonic()
    found = _SECOND.get(viewer)
    if found is not None and found[0] > now:
        return found[1] - edges.followed
    top = [a.id2 for a in edges.pages.get("FOLLOWS", [])[:GRAPH_FOLLOWEES]]
    lists = await ctx.tao.assoc_range_many([(f, "FOLLOWS") for f in top], 0, GRAPH_SECOND) if top else {}
    second = frozenset(a.id2 for page in lists.values() if isinstance(page, list) for a in page)
    if len(_SECOND) >= GRAPH_CACHE_MAX:
        _SECOND.clear()
    _SECOND[viewer] = (now + GRAPH_TTL, second)
    return second - edges.followed
