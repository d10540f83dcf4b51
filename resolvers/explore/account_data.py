"""Explore's data in account export and deletion (the kinds contract: resolvers/account_data/registry.py).

Kind `explore` (after the feed's, before the edges others hold): the user's own Explore state —
the posts served to them (EXPLORE_SEEN), the suggestions they dismissed (DISMISSED_SUGGESTION)
and their precomputed pool (EXPLORE_POOL) — exported as {type, id, time} and purged edge by edge.
Its purge also removes what names the user elsewhere in Explore's own objects: Explore sessions
(theirs, and others' snapshots listing their posts: a cursor of such a session then expires) and
their rows in the trending posts of the TREND_REGISTRY. Others' pools that name them and
TREND_USER edges to them (trend tallies) are edges pointing at the user: the `inbound` kind's
scan removes them (a pool is rebuilt on its viewer's next read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from resolvers.account_data.builtin import by_visible_authors, pages, remove_edge, visible_user_ids
from resolvers.account_data.registry import DataContext, DataKind, register_kind
from resolvers.explore import trends

ATYPES = ("EXPLORE_SEEN", "DISMISSED_SUGGESTION", "EXPLORE_POOL")


async def _export(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    """Dismissed suggestions the user may still see, posts shown to them unless their author is
    hidden from them now (blocked either way, pending deletion): both named such accounts until
    the fifteenth session."""
    for atype in ATYPES:
        async for page in pages(ctx.tao, user, atype, ctx.settings.account_data.export_page):
            ids = [a.id2 for a in page]
            if atype == "DISMISSED_SUGGESTION":
                keep = await visible_user_ids(ctx, user, ids)
            elif atype == "EXPLORE_SEEN":
                keep = await by_visible_authors(ctx, user, ids)
            else:
                keep = set(ids)
            for a in page:
                if a.id2 in keep:
                    yield {"type": atype, "id": str(a.id2), "time": a.time}


async def _purge(ctx: DataContext, user: int) -> int:
    tao, removed = ctx.tao, 0
    for atype in ATYPES:
        for a in await tao.assoc_range(user, atype, 0, ctx.batch - removed):
            await remove_edge(tao, user, atype, a.id2)
            removed += 1
        if removed >= ctx.batch:
            return removed
    sessions = await tao.obj_scan_naming(user, "EXPLORE_SESSION", ctx.batch - removed)
    for sid in sessions:
        await tao.obj_delete(sid)
    if sessions:
        await ctx.erase(sessions)
        return removed + len(sessions)
    rid = await trends.registry_id(tao)
    reg = (await tao.obj_get([rid])).get(rid)
    rows = reg.data.get("posts", []) if reg is not None else []
    kept = [r for r in rows if int(r[1]) != user]
    if len(kept) != len(rows):
        await tao.obj_update(rid, {"posts": kept})
        removed += len(rows) - len(kept)
    return removed


register_kind(DataKind("explore", "Explore: posts shown to you, dismissed suggestions", 57,
                       {"type": "EXPLORE_SEEN (a post shown to you on Explore), DISMISSED_SUGGESTION (an account you "
                                "dismissed from suggestions) or EXPLORE_POOL (your precomputed candidates)",
                        "id": "the post's or account's id", "time": "when (ms since the epoch)"},
                       _export, _purge))
