"""Round trips of the inbox depend on the query's shape, not on how many threads it shows: every
per-thread field (unread count, last message, members, folder, mute, privacy) goes through a
DataLoader whose batch makes one many-keys store call."""

from __future__ import annotations

from tests.resolvers.messages_client import DM

QUERY = """{ inbox { unreadThreadCount unreadMessageCount threads(folder: REQUESTS, first: 50) { nodes {
  id name unreadCount isMuted isRequest members { username }
  lastMessage { text sender { username } seenBy { username } }
} } } }"""


async def _cost(gql, token: str) -> tuple[dict[str, int], int]:
    tao = gql.tao
    await gql.ok(QUERY, token=token)  # warm the cache: count the warm path
    before = tao.stats()
    data = await gql.ok(QUERY, token=token)
    after = tao.stats()
    keys = ("sql_queries", "cache_round_trips")
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}, len(data["inbox"]["threads"]["nodes"])


async def test_inbox_round_trips_do_not_grow_with_the_page(gql):
    dm = DM(gql)
    tv, v = await gql.sign_up("viewer")
    friends = [await gql.sign_up(f"f{i}") for i in range(12)]
    for t, _ in friends[:4]:
        await dm.sent(t, to=[v], text="hi")
    small, n_small = await _cost(gql, tv)
    for t, _ in friends[4:]:
        await dm.sent(t, to=[v], text="hi")
    large, n_large = await _cost(gql, tv)
    assert (n_small, n_large) == (4, 12)
    # 3x the threads: the same batches (a batch may touch one more cache server), never N+1,
    # which would cost at least 8 x (fields per thread) more round trips.
    assert large["cache_round_trips"] <= small["cache_round_trips"] + 4, (small, large)
    assert large["sql_queries"] <= small["sql_queries"] + 2, (small, large)
