"""Recent searches: the accounts, hashtags and places a user chose from search results.

Stored as RECENT_SEARCH edges (user -> chosen object, time = last chosen) on the user's shard:
choosing one again moves it to the top; the list keeps the newest `search.recent_max`.
Reading re-checks privacy, so a result that became hidden (a block, a deleted account) is not
shown. This is the user's data, registered as the `recent_searches` kind of account export and
deletion (resolvers/account_data): the export lists the user's own choices; the purge removes
them and, through the inverse RECENT_SEARCHED_BY, the entries of others that name the user.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.account_data.registry import DataContext, DataKind, register_kind
from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.pagination import check_first
from resolvers.records import Hashtag, Location, User
from tao import Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

ATYPE = "RECENT_SEARCH"
INVERSE = "RECENT_SEARCHED_BY"  # (chosen object -> user): the entries that name an account
DRAIN = 500


class SearchErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"


async def do_add_recent_search(tao: Tao, actor_id: int, target_id: int) -> Any:
    """Remember that the actor chose `target_id` (an account, hashtag or place they may see)."""
    ctx = acting_as(tao, actor_id)
    obj = await privacy.load_visible_object(ctx, target_id)
    if not isinstance(obj, User | Hashtag | Location):
        raise UserError(SearchErrorCode.NOT_FOUND,
                        "No such account, hashtag or place (or you cannot see it): pass an `id` from `search`.", "id")
    await tao.assoc_add(actor_id, ATYPE, target_id, time=now_ms())
    keep = ctx.settings.search.recent_max
    extra = await tao.assoc_range(actor_id, ATYPE, keep, DRAIN)
    for a in extra:
        await tao.assoc_delete(actor_id, ATYPE, a.id2)
    return obj


async def do_remove_recent_search(tao: Tao, actor_id: int, target_id: int) -> None:
    await tao.assoc_delete(actor_id, ATYPE, target_id)


async def do_clear_recent_searches(tao: Tao, actor_id: int) -> int:
    """Forget every recent search of the actor; returns how many there were."""
    return await purge_recent_searches(tao, actor_id)


async def purge_recent_searches(tao: Tao, user_id: int) -> int:
    n = 0
    while True:
        page = await tao.assoc_range(user_id, ATYPE, 0, DRAIN)
        if not page:
            return n
        for a in page:
            n += await tao.assoc_delete(user_id, ATYPE, a.id2)


async def _export_kind(ctx: DataContext, user_id: int) -> AsyncIterator[dict]:
    for rec in await export_recent_searches(ctx.tao, user_id):
        yield rec


async def _purge_kind(ctx: DataContext, user_id: int) -> int:
    """One batch: the user's own entries, then others' entries naming the user."""
    removed = 0
    for a in await ctx.tao.assoc_range(user_id, ATYPE, 0, ctx.batch):
        removed += await ctx.tao.assoc_delete(user_id, ATYPE, a.id2)
    if removed < ctx.batch:
        for a in await ctx.tao.assoc_range(user_id, INVERSE, 0, ctx.batch - removed):
            removed += await ctx.tao.assoc_delete(a.id2, ATYPE, user_id)
    return removed


register_kind(DataKind("recent_searches", "Recent searches", 58,
                       {"id": "the account, hashtag or place chosen", "type": "USER, HASHTAG or LOCATION",
                        "name": "its username or name", "at": "when it was last chosen (ms since the epoch)"},
                       _export_kind, _purge_kind))


async def export_recent_searches(tao: Tao, user_id: int) -> list[dict[str, Any]]:
    """The user's recent searches for an account export: [{id, type, name, at}], newest first."""
    edges = await tao.assoc_range(user_id, ATYPE, 0, DRAIN)
    objs = await tao.obj_get([a.id2 for a in edges]) if edges else {}
    # As `recentSearches` shows them: an account or place hidden from the user now (a block
    # either way, a deletion pending) is left out; the export named it until the fifteenth session.
    as_user = acting_as(tao, user_id)
    shown = await asyncio.gather(*(privacy.load_visible_object(as_user, a.id2) for a in edges))
    out = []
    for a, visible in zip(edges, shown):
        if visible is None:
            continue
        o = objs.get(a.id2)
        name = (o.data.get("username") or o.data.get("name")) if o is not None else None
        out.append({"id": str(a.id2), "type": o.otype if o is not None else None, "name": name, "at": a.time})
    return out


async def recent_searches(ctx: RequestContext, first: int) -> list[Any]:
    """The viewer's recent choices they may still see, newest first."""
    viewer = ctx.require_viewer()
    check_first(ctx, first)
    if first == 0:
        return []
    edges = await ctx.tao.assoc_range(viewer, ATYPE, 0, min(first, ctx.settings.search.recent_max))
    objs = await asyncio.gather(*(privacy.load_visible_object(ctx, a.id2) for a in edges))  # one batch
    return [o for o in objs if isinstance(o, User | Hashtag | Location)]
