"""Keyset pages over TAO association lists: the domain half of Relay connections.

A list is newest-first by (time, id2); a cursor is that pair for one edge, and the next page
starts strictly after it (`assoc_time_range(..., after=cursor)`), so pages stay stable while
edges are added at the head. One extra edge is fetched to know whether there is a next page.

Invariant: `end_cursor` is the position of the last edge *read*, not the last edge *shown*:
edges the viewer may not see are dropped from a page (so a page can be short), but paging on
from `end_cursor` never shows an edge twice nor skips one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Generic, TypeVar

from resolvers.errors import BadInputError
from resolvers.loaders import load_each
from tao import Assoc

if TYPE_CHECKING:
    from resolvers.context import RequestContext

T = TypeVar("T")
E = TypeVar("E", bound=Enum)
Cursor = tuple[int, int]  # (time, id2)


@dataclass
class Page(Generic[T]):
    # (cursor, node) for each edge shown, newest first.
    items: list[tuple[Cursor, T]] = field(default_factory=list)
    has_next: bool = False
    end_cursor: Cursor | None = None
    has_previous: bool = False


def check_first(ctx: RequestContext, first: int) -> int:
    limit = ctx.settings.limits.max_page_size
    if not 0 <= first <= limit:
        raise BadInputError(
            f"`first` must be between 0 and {limit} (got {first}); fetch more with `after: pageInfo.endCursor`."
        )
    return first


def check_choices(arg: str, values: Sequence[E] | None, choices: type[E]) -> Sequence[E] | None:
    """A list argument of enum values (a `types:` filter) names each value at most once, so it
    holds at most as many entries as the enum: a longer one is refused. 100 000 entries of one
    type were accepted, each coerced and kept by the request."""
    limit = len(choices)
    if values is not None and len(values) > limit:
        raise BadInputError(f"`{arg}` holds at most {limit} values, one of each (got {len(values)}); "
                            "list each at most once.")
    return values


async def load_assoc_page(
    ctx: RequestContext, id1: int, atype: str, first: int, after: Cursor | None
) -> tuple[list[Assoc], bool]:
    """The next `first` edges of (id1, atype) after the cursor, and whether more follow."""
    check_first(ctx, first)
    if first == 0:
        return [], False
    assocs = await ctx.loaders.assoc_page_by_key.load((id1, atype, first + 1, after))
    return assocs[:first], len(assocs) > first


async def load_assoc_pages(
    ctx: RequestContext, id1s: list[int], atype: str, first: int, after: Cursor | None
) -> list[tuple[list[Assoc], bool] | BaseException]:
    """`load_assoc_page` for many lists at once (one batch); a list whose load failed answers its error."""
    check_first(ctx, first)
    if first == 0:
        return [([], False) for _ in id1s]
    found = await load_each(ctx.loaders.assoc_page_by_key, [(id1, atype, first + 1, after) for id1 in id1s])
    return [f if isinstance(f, BaseException) else (f[:first], len(f) > first) for f in found]


def make_page(assocs: list[Assoc], has_next: bool, nodes: dict[int, T], after: Cursor | None) -> Page[T]:
    """A page of the edges whose id2 is in `nodes` (the visible ones), cursors from every edge read."""
    return Page(
        items=[((a.time, a.id2), nodes[a.id2]) for a in assocs if a.id2 in nodes],
        has_next=has_next,
        end_cursor=(assocs[-1].time, assocs[-1].id2) if assocs else after,
        has_previous=after is not None,
    )


async def list_page(ctx: RequestContext, entries: Sequence[tuple[Cursor, int]], first: int, after: Cursor | None,
                    visible: Callable[[list[int]], Awaitable[dict[int, T]]]) -> Page[T]:
    """A page of a short list read whole (a profile's live stories, a highlight's ordered
    stories): `entries` are its (position, id) pairs after the cursor, in order; `visible`
    answers, of some ids, those the viewer may see. As `load_assoc_page` and `make_page` do for a
    stored list: `first` entries are read, those hidden dropped, and `end_cursor` is the last read."""
    check_first(ctx, first)
    read = list(entries[:first])
    nodes = await visible([i for _, i in read]) if read else {}
    return Page(items=[(c, nodes[i]) for c, i in read if i in nodes], has_next=len(entries) > first,
                end_cursor=read[-1][0] if read else after, has_previous=after is not None)
