"""Big accounts: authors with more followers than `feed.fanout_threshold`, whose posts are not
pushed to followers' FEED lists but pulled from their AUTHORED lists when a follower reads.

The set is one association list, FEED_REGISTRY -BIG_ACCOUNT-> author, on a well-known object
(found through the unique key feed/registry). Its edge data is `{"until": ms | None}`:
`until` is None while the author is big; when the author falls back under the threshold the
edge stays with `until` = the crossing time, so posts made while big keep being pulled (their
FEED edges were never written) and posts after it are pushed. Nothing is migrated in either
direction: pushed and pulled candidates are merged (and de-duplicated) at read time.

A viewer's big followings are BIG_ACCOUNT ∩ FOLLOWS: the registry list (cached by the store)
intersected with one `assoc_get` of the viewer's FOLLOWS edges (all on the viewer's shard).
That is cheap while big accounts number in the thousands (docs/feed.md gives the trade-off).
"""

from __future__ import annotations

from resolvers.edge_data import big_account_data, big_until
from resolvers.well_known import well_known_id
from tao import Assoc, Tao
from tao.models import now_ms

REGISTRY_NS, REGISTRY_KEY = "feed", "registry"
MAX_BIG_ACCOUNTS = 10_000  # the store's largest page; beyond it switch to per-viewer lists (docs/feed.md)



async def registry_id(tao: Tao) -> int:
    """The well-known FEED_REGISTRY object, created by the first caller (a race has one winner)."""
    return await well_known_id(tao, "FEED_REGISTRY", REGISTRY_NS, REGISTRY_KEY)


async def big_account_edges(tao: Tao) -> list[Assoc]:
    return await tao.assoc_range(await registry_id(tao), "BIG_ACCOUNT", 0, MAX_BIG_ACCOUNTS)


async def set_big(tao: Tao, author: int, big: bool, edge: Assoc | None) -> None:
    """Record a crossing of the threshold (called by the fan-out job, which knows the count).
    O(1) writes whatever the follower count: one edge on the registry's shard."""
    rid = await registry_id(tao)
    if big and (edge is None or big_until(edge.data) is not None):
        await tao.assoc_add(rid, "BIG_ACCOUNT", author, data=big_account_data(None))
    elif not big and edge is not None and big_until(edge.data) is None:
        await tao.assoc_add(rid, "BIG_ACCOUNT", author, time=edge.time, data=big_account_data(now_ms()))


async def big_edge(tao: Tao, author: int) -> Assoc | None:
    rid = await registry_id(tao)
    return (await tao.assoc_get(rid, "BIG_ACCOUNT", [author])).get(author)


async def forget_expired(tao: Tao, author: int, edge: Assoc | None, window_ms: int) -> None:
    """An author small again for longer than the candidate window has nothing left to pull."""
    until = big_until(edge.data) if edge is not None else None
    if until is not None and until < now_ms() - window_ms:
        await tao.assoc_delete(await registry_id(tao), "BIG_ACCOUNT", author)
