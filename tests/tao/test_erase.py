"""Erasure: `sweep_cache` removes every cache entry of ids gone from SQL, and of the needles (by
name or by value), across many scan batches, and keeps live entries; `residue` then finds none."""

from __future__ import annotations

import pytest

from tao import InvalidDataError
from tao.cache import Install
from tao.erase import SCAN_BATCH
from tao.testing import TaoTestHooks


async def test_sweep_spans_scan_batches_and_keeps_live_entries(tao):
    hooks = TaoTestHooks(tao)
    user = await tao.obj_add("TEST_NODE", {"name": "gone"})
    dead = await tao.obj_add_many([("TEST_NODE", {"i": i}, None) for i in range(SCAN_BATCH + 150)])
    naming = await tao.obj_add("TEST_NODE", {"about": user})  # live, but its value names the user
    keep = await tao.obj_add("TEST_NODE", {"about": "someone else"})
    await tao.obj_get([user, naming, keep, *dead])  # all cached
    for shard in range(tao.n_shards):  # the rows go behind the cache's back: only the sweep can tell
        async def body(conn, shard=shard) -> None:
            group = [i for i in [user, *dead] if hooks.shard(i) == shard]
            if group:
                await conn.execute(f"DELETE FROM {{objects}} WHERE id IN ({', '.join(['%s'] * len(group))})", group)
        await hooks.write(shard, body)
    # more keys of dead ids than one batch holds, some only the scan can find (edge keys)
    await hooks.cache.install_many([Install(f"e:{d}:1:{keep}", 1, lambda old: {"x": 1}) for d in dead[:50]])
    before = await tao.residue([user, *dead], [user])
    assert len(before.cache_keys) >= len(dead) + 51

    swept = await tao.sweep_cache([user])

    assert swept >= len(dead) + 51  # the objects, the edges and the entry naming the user (its own
    # keys went by name first)
    assert (await tao.residue([user, *dead], [user])).cache_keys == []  # (its rows: `naming` names the user)
    assert await hooks.cache.get_many([hooks.obj_key(keep)]) != {}  # a live entry not naming the user stays
    assert await hooks.cache.get_many([hooks.obj_key(naming)]) == {}
    assert (await tao.obj_get([naming]))[naming].data == {"about": user}  # only its cache entry went


async def test_obj_scan_naming_by_field_finds_only_that_fields_value(tao):
    """The erasure scan for objects naming an id anywhere returns, first, those naming it in a
    list or a text; with `field` it returns only objects whose top-level field holds exactly that
    id (not a longer id it prefixes), so a page of others' mentions cannot hide them (probe3)."""
    user = await tao.obj_add("TEST_NODE", {})
    other = await tao.obj_add("TEST_NODE", {})
    mentions = [await tao.obj_add("TEST_NODE", {"author": other, "mentions": [user], "text": f"hi {user}"})
                for _ in range(3)]
    longer = await tao.obj_add("TEST_NODE", {"author": int(f"{user}7")})  # an id the user's prefixes
    mine = [await tao.obj_add("TEST_NODE", {"author": user}), await tao.obj_add("TEST_NODE", {"x": 1, "author": user})]
    assert set(await tao.obj_scan_naming(user, "TEST_NODE", 3)) <= {*mentions, *mine, longer}
    assert sorted(await tao.obj_scan_naming(user, "TEST_NODE", 3, field="author")) == sorted(mine)
    assert longer not in await tao.obj_scan_naming(user, "TEST_NODE", 100, field="author")
    with pytest.raises(InvalidDataError):
        await tao.obj_scan_naming(user, "TEST_NODE", 3, field='author":1,"x')


async def test_obj_scan_naming_pages_in_id_order_over_every_shard(tao):
    """An export reads a user's comments a page at a time (`after`: the last id of the page
    before), not every id at once as it did (up to a million in one list)."""
    user = await tao.obj_add("TEST_NODE", {})
    mine = []
    for i in range(7):  # on several shards (no owner: placed anywhere)
        mine.append(await tao.obj_add("TEST_NODE", {"author": user, "n": i}))
        await tao.obj_add("TEST_NODE", {"author": user + 1})
    got, after = [], 0
    while True:
        page = await tao.obj_scan_naming(user, "TEST_NODE", 3, field="author", after=after)
        assert len(page) <= 3 and page == sorted(page)
        got += page
        if len(page) < 3:
            break
        after = page[-1]
    assert got == sorted(mine)
