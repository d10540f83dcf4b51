"""Suggested accounts: who is suggested, with which reason, and every exclusion (constructed cases)."""

from __future__ import annotations

import pytest

from resolvers.errors import UserError
from resolvers.explore import pool as pool_mod
from resolvers.explore.service import do_dismiss_suggestion
from tao.models import now_ms


async def _rebuild(w, viewer):
    await pool_mod.store(w.tao, viewer, await pool_mod.build(w.tao, w.settings, viewer, now_ms()))


async def test_reasons_and_order(world):
    w = world
    viewer = await w.user("viewer")
    ada, bob, cid = await w.user("ada"), await w.user("bob"), await w.user("cid")
    for f in (cid, bob, ada):  # ada is followed last: newest first, she is named
        await w.follow(viewer, f)
    popular, single, fan = await w.user("popular"), await w.user("single"), await w.user("fan")
    for f in (ada, bob, cid):
        await w.follow(f, popular)
    await w.follow(bob, single)
    await w.follow(fan, viewer)
    got = await w.suggested(viewer)
    assert [(x.user.username, x.reason) for x in got] == [
        ("popular", "followed by ada and 2 others"),
        ("fan", "follows you"),
        ("single", "followed by bob"),
    ]
    assert got[0].mutuals == 3 and got[1].follows_you


async def test_exclusions(world):
    w = world
    viewer, ada = await w.user("viewer"), await w.user("ada")
    await w.follow(viewer, ada)
    names = ["ok", "blocked", "blocker", "muted", "followed", "dismissed", "requested", "private"]
    u = {n: await w.user(n, private=(n in ("private", "requested"))) for n in names}
    for n in names:
        await w.follow(ada, u[n]) if n not in ("private", "requested") else await w.tao.assoc_add(ada, "FOLLOWS", u[n])
    await w.follow(ada, viewer)  # ada follows the viewer back: never suggested (followed)
    await w.block(viewer, u["blocked"])
    await w.block(u["blocker"], viewer)
    await w.mute(viewer, u["muted"])
    await w.follow(viewer, u["followed"])
    await w.tao.assoc_add(viewer, "FOLLOW_REQUESTED", u["requested"])
    await do_dismiss_suggestion(w.tao, viewer, u["dismissed"])
    # A private account is suggested (its profile header is visible), as on Instagram.
    assert {x.user.username for x in await w.suggested(viewer)} == {"ok", "private"}
    # The same when the pool predates the relationships: the read checks again.
    await w.tao.assoc_delete(viewer, "FOLLOW_REQUESTED", u["requested"])
    late = {n: await w.user(f"late_{n}") for n in ("blocked", "blocker", "muted", "followed", "dismissed")}
    for uid in late.values():
        await w.follow(ada, uid)
    await _rebuild(w, viewer)
    await w.block(viewer, late["blocked"])
    await w.block(late["blocker"], viewer)
    await w.mute(viewer, late["muted"])
    await w.follow(viewer, late["followed"])
    await do_dismiss_suggestion(w.tao, viewer, late["dismissed"])
    assert {x.user.username for x in await w.suggested(viewer)} == {"ok", "private", "requested"}


async def test_the_named_mutual_must_still_be_followed(world):
    w = world
    viewer, ada, bob, target = [await w.user(n) for n in ("viewer", "ada", "bob", "target")]
    await w.follow(viewer, bob)
    await w.follow(viewer, ada)
    await w.follow(ada, target)
    await w.follow(bob, target)
    assert (await w.suggested(viewer))[0].reason == "followed by ada and 1 other"
    await w.tao.assoc_delete(viewer, "FOLLOWS", ada)
    assert (await w.suggested(viewer))[0].reason == "followed by 2 accounts you follow"


async def test_dismiss_checks_the_user(world):
    w = world
    viewer, blocker = await w.user("viewer"), await w.user("blocker")
    await w.block(blocker, viewer)
    with pytest.raises(UserError) as e:
        await do_dismiss_suggestion(w.tao, viewer, blocker)
    assert e.value.code.value == "USER_NOT_FOUND"
    with pytest.raises(UserError):
        await do_dismiss_suggestion(w.tao, viewer, viewer)
    gone = await w.user("gone")
    await w.tao.obj_delete(gone)
    with pytest.raises(UserError):
        await do_dismiss_suggestion(w.tao, viewer, gone)


async def test_the_named_mutual_must_still_follow_the_suggested_account(world):
    """The pool is built ahead of time: a mutual who unfollowed the candidate since is not named."""
    w = world
    viewer, ada, target = [await w.user(n) for n in ("viewer", "ada", "target")]
    await w.follow(viewer, ada)
    await w.follow(ada, target)
    assert (await w.suggested(viewer))[0].reason == "followed by ada"
    await w.tao.assoc_delete(ada, "FOLLOWS", target)
    assert "ada" not in (await w.suggested(viewer))[0].reason
