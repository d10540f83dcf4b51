"""A log-in at the very end of a deletion's grace period against the purge's start: exactly one wins.

Before, each read the USER object and went on: a log-in whose read came while the purge's first
batch ran (its progress not yet recorded) "cancelled" the deletion and answered a token, and the
purge carried on and removed the account under the new session (probe). Now both claim the
deletion's outcome key (`deletion_outcome`, docs/accounts.md "Cancelling"), and the loser is told:
the log-in answers INVALID_CREDENTIALS ("being deleted"), the purge leaves the account alone.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from resolvers.account_data import registry
from tests.resolvers.test_account_data import DELETE, LOGIN, api, media_settings, store_id  # noqa: F401

LOG_IN = LOGIN.replace("errors { code }", "errors { code message }")


async def _ada_deleted(gql) -> tuple[str, str, str]:
    """ada, deleted (grace period 0: her purge is due now), and bob; returns (ada's id, bob's id, bob's token)."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.ok("mutation($u: ID!) { follow(input: {userId: $u}) { errors { code } } }", {"u": b}, ta)
    assert (await gql.ok(DELETE, {"i": {"password": "password-ada"}}, ta))["deleteAccount"]["ok"]
    return a, b, tb


async def test_a_log_in_while_the_purge_has_begun_is_refused(api, monkeypatch):
    """The purge has claimed the outcome and is inside its first batch (nothing recorded yet):
    the log-in must not cancel, and the purge finishes."""
    gql, _ = api
    a, b, _ = await _ada_deleted(gql)
    uid = store_id(a)
    inside, go_on = asyncio.Event(), asyncio.Event()
    sessions = registry._KINDS["sessions"]
    assert sessions.purge is not None
    real = sessions.purge

    async def paused(ctx, user):
        inside.set()
        await go_on.wait()
        return await real(ctx, user)

    monkeypatch.setitem(registry._KINDS, "sessions", dataclasses.replace(sessions, purge=paused))
    purge = asyncio.create_task(gql.tao.run_jobs_until_idle())
    await asyncio.wait_for(inside.wait(), 30)
    assert (await gql.tao.obj_get([uid]))[uid].data["deletion"]["kind"] is None  # no progress recorded yet
    answer = (await gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))["logIn"]
    go_on.set()
    await asyncio.wait_for(purge, 120)
    assert answer["token"] is None and [e["code"] for e in answer["errors"]] == ["INVALID_CREDENTIALS"], answer
    assert "being deleted" in answer["errors"][0]["message"]
    assert (await gql.tao.obj_get([uid])).get(uid) is None  # the purge won and finished
    assert await gql.tao.assoc_count(store_id(b), "FOLLOWED_BY") == 0


async def test_a_cancel_that_won_stops_the_purge(api, monkeypatch):
    """The log-in decided to cancel, and its write is slow: the purge, due meanwhile, must not
    start (before, it purged the account and the log-in then answered a token for nothing)."""
    gql, _ = api
    a, b, tb = await _ada_deleted(gql)
    uid = store_id(a)
    deciding, go_on = asyncio.Event(), asyncio.Event()
    real = gql.tao.obj_update

    async def slow_cancel(id_, data, **kw):
        if id_ == uid and data == {"deletion": None}:
            deciding.set()
            await go_on.wait()
        return await real(id_, data, **kw)

    monkeypatch.setattr(gql.tao, "obj_update", slow_cancel)
    log_in = asyncio.create_task(gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))
    await asyncio.wait_for(deciding.wait(), 30)
    await asyncio.wait_for(gql.tao.run_jobs_until_idle(), 120)  # the purge is due: it must lose
    go_on.set()
    answer = (await asyncio.wait_for(log_in, 30))["logIn"]
    assert answer["errors"] == [] and answer["token"], answer
    assert (await gql.tao.obj_get([uid]))[uid].data.get("deletion") is None
    await gql.tao.run_jobs_until_idle()
    viewer = await gql.ok("query { viewer { username followingCount } }", token=answer["token"])
    assert viewer["viewer"] == {"username": "ada", "followingCount": 1}  # back as she was
    assert await gql.tao.assoc_count(store_id(b), "FOLLOWED_BY") == 1


@pytest.mark.parametrize("first", ["log-in", "purge"])
async def test_one_outcome_even_in_a_real_race(api, first):
    """Both at once, in either order of start: either the account is back with a working session,
    or it is gone and the log-in was refused; never a token for a purged account."""
    gql, _ = api
    a, _, _ = await _ada_deleted(gql)
    uid = store_id(a)
    log_in = gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"})
    purge = gql.tao.run_jobs_until_idle()
    got = await asyncio.gather(*((log_in, purge) if first == "log-in" else (purge, log_in)))
    answer = got[0 if first == "log-in" else 1]["logIn"]
    await gql.tao.run_jobs_until_idle()
    alive = (await gql.tao.obj_get([uid])).get(uid) is not None
    if answer["token"]:
        assert alive and (await gql.ok("query { viewer { username } }", token=answer["token"]))["viewer"]
    else:
        assert not alive and [e["code"] for e in answer["errors"]] == ["INVALID_CREDENTIALS"]
