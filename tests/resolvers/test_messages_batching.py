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


async def test_a_send_into_a_thread_costs_a_bounded_number_of_statements(gql):
    """sendMessage into a 1:1 thread: the client key's check, the message with its jobs (one
    insert), the client key's claim (one autocommit insert), one delivery transaction per
    shard (thread list, the sender's read marker, each member's folders and stream append: a
    lock, one read, the edges, the counts), the read marker's inverse and one deletion of both
    jobs. The thread lives on its creator's shard, so the creator's read marker and its inverse
    commit together; the other member's inverse is synced after the commit. A delivery written
    one edge per transaction, a repair job redoing it at once, stream appends in transactions
    of their own, or a list's lock, heads, edges and newest time read one statement each, cost
    far more."""
    dm = DM(gql)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="hello"))["thread"]["id"]
    counted = {}
    for who, token in (("creator", ta), ("other", tb)):
        await dm.sent(token, thread=thread, text="warm")
        before = gql.tao.stats()
        await dm.sent(token, thread=thread, text="counted")
        counted[who] = gql.tao.stats().get("sql_queries", 0) - before.get("sql_queries", 0)
    # Measured (MariaDB and SQLite): 14 for the creator, 20 for the other member (40 for either
    # before; 52 and a second delivery by the worker before that). BEGIN/COMMIT are not counted.
    assert counted["creator"] <= 16, counted
    assert counted["other"] <= 23, counted
