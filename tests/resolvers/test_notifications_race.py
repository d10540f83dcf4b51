"""The first two likes of a post, recorded at once by two writers (two stores, as two server
processes have: each coalesces only its own events, `record._Batches`), on MariaDB + memcached:
one notification group with both actors, never two groups and never a lost actor.

`record.group_of` creates a notification, then claims the group's unique key; the loser deletes
its object and reads the winner's id. The claim itself is settled by SQL (a locking read), but
the winner's id reaches the cache only after its commit: a loser that reads in between (a winner
slowed by its event loop, or killed right after its commit) read the cache's "no group" and
returned no group at all, so its actor was silently dropped.

The test makes that interleaving certain instead of likely. Both writers find no group and make
their notification; the first store's claim commits while the second waits for it; the first
store's cache install is then held until the second writer has finished its record. The store
runs unchanged: only the order of its calls is fixed (as the crash helpers do with SIGKILL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from resolvers.accounts import user_data
from resolvers.jobs import register_job_handlers
from resolvers.likes import do_like_post
from resolvers.notifications import causes
from resolvers.notifications.model import Event
from resolvers.notifications.record import GROUP_NS, group_of
from resolvers.posts import do_create_post
from tao import ConflictError, Tao, open_tao
from tao.models import now_ms
from tests.tao.conftest import make_settings

WAIT = 10  # seconds any step waits for the other writer at most (a failure, never a pass, if it runs out)


@pytest.fixture
def mysql_settings(services, test_id: str, tmp_path):
    return make_settings("mysql", services, test_id, tmp_path)


@pytest.fixture
async def two_stores(mysql_settings) -> AsyncIterator[tuple[Tao, Tao]]:
    first = await open_tao(mysql_settings, migrate=True, start_worker=False)
    second = await open_tao(mysql_settings, migrate=False, start_worker=False)
    for tao in (first, second):
        register_job_handlers(tao)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def _groups(tao: Tao, recipient: int) -> dict[int, set[int]]:
    """The recipient's listed notifications and each one's actors."""
    return {g.id2: {e.id2 for e in await tao.assoc_range(g.id2, "NOTIF_ACTOR", 0, 10)}
            for g in await tao.assoc_range(recipient, "NOTIFIED", 0, 10)}


async def _a_post_and_two_likers(tao: Tao) -> tuple[int, int, int, int]:
    """ada's post, and amy and bob who will like it: (ada, amy, bob, the post)."""
    author = await tao.obj_add("USER", user_data("ada", "", None))
    a = await tao.obj_add("USER", user_data("amy", "", None))
    b = await tao.obj_add("USER", user_data("bob", "", None))
    post = (await do_create_post(tao, author, "first light", [])).id
    await tao.run_jobs_until_idle()
    return author, a, b, post


async def test_a_loser_of_the_group_claim_joins_the_winners_group_before_its_id_is_cached(
        two_stores: tuple[Tao, Tao]) -> None:
    winner, loser = two_stores
    author, a, b, post = await _a_post_and_two_likers(winner)

    both_found_none = asyncio.Barrier(2)
    winner_committed, loser_done = asyncio.Event(), asyncio.Event()
    claims = {tao: tao.key_claim for tao in two_stores}

    async def claim(tao: Tao, ns: str, key: str, id_: int) -> bool:
        if ns != GROUP_NS:
            return await claims[tao](ns, key, id_)
        await asyncio.wait_for(both_found_none.wait(), WAIT)  # each made its own notification
        if tao is loser:
            await asyncio.wait_for(winner_committed.wait(), WAIT)
        return await claims[tao](ns, key, id_)

    install = winner._keys._install_key  # the winner's step right after its claim's commit

    async def slow_install(shard: int, ns: str, key: str, id_: int, version: int) -> None:
        if ns == GROUP_NS:
            winner_committed.set()
            await asyncio.wait_for(loser_done.wait(), WAIT)
        await install(shard, ns, key, id_, version)

    for tao in two_stores:
        tao.key_claim = lambda ns, key, id_, tao=tao: claim(tao, ns, key, id_)  # type: ignore[method-assign]
    winner._keys._install_key = slow_install  # type: ignore[method-assign]

    async def loser_likes() -> None:
        try:
            await do_like_post(loser, b, post)  # its writer records the notification itself ...
        finally:
            loser_done.set()
    await asyncio.gather(do_like_post(winner, a, post), loser_likes())
    groups = await _groups(winner, author)
    assert list(groups.values()) == [{a, b}], groups  # at once: the loser's writer joined the winner's group
    for tao in two_stores:
        await tao.run_jobs_until_idle()  # ... or leaves it to the job, which runs here
    groups = await _groups(winner, author)
    assert list(groups.values()) == [{a, b}], groups
    assert await winner.assoc_count(author, "NOTIFIED") == 1


async def test_a_loser_whose_winner_is_gone_before_it_reads_raises_conflict_and_its_retry_records(
        two_stores: tuple[Tao, Tao]) -> None:
    """`group_of`'s last branch: the claim is lost, and by the time the loser reads the winner's
    id the key is free again (its holder erased: an account purge deletes the keys its ids
    hold). Answering "no group" would drop the actor; the loser raises ConflictError instead
    (its writer leaves the record to the job, a job is retried), deletes the notification it
    made, and its retry records the actor in a group of its own."""
    winner, loser = two_stores
    author, a, b, post = await _a_post_and_two_likers(winner)
    (_, payload), = causes.like_post(b, post, author, now_ms())
    event = Event.from_payload(payload)
    key = event.group_key()
    claim = loser.key_claim
    made: list[int] = []

    async def lose_then_vanish(ns: str, k: str, id_: int) -> bool:
        assert (ns, k) == (GROUP_NS, key)
        made.append(id_)
        await do_like_post(winner, a, post)  # the winner makes and claims the group meanwhile
        await winner.run_jobs_until_idle()
        group = (await winner.key_get_many(GROUP_NS, [key]))[key]
        won = await claim(ns, k, id_)
        assert await winner.key_release(GROUP_NS, key, group)  # gone before the loser reads it
        return won

    loser.key_claim = lose_then_vanish  # type: ignore[method-assign]
    with pytest.raises(ConflictError):
        await group_of(loser, event, create=True)
    loser.key_claim = claim  # type: ignore[method-assign]
    assert made and await loser.obj_get(made) == {}  # the loser's own notification is deleted
    nid = await group_of(loser, event, create=True)  # the retry: a group of its own
    assert nid is not None and nid not in made
    assert await winner.key_get_many(GROUP_NS, [key]) == {key: nid}
