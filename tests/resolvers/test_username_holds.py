"""Renames: no name is left claimed by nobody, and the old name is held for its previous owner.

Before the sixteenth session two renames of one account at once could both release the name
they started from and leave the loser's new name claimed for good by an account not bearing it;
and a renamed account's old username was free at once, for anyone to take and pose as the
account to its followers. Now the rename is a compare-and-set of the profile, retried, and the
old name (with its look-alike skeleton) stays the account's for `auth.username_hold_seconds`
(14 days), resolving to nobody, and the owner may take it back (resolvers/usernames.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from resolvers.usernames import SKELETON_KEYS, USERNAME_KEYS, skeleton
from tests.resolvers.messages_client import store_id
from tests.resolvers.test_account_data import api, media_settings  # noqa: F401  (fixtures)

SIGN_UP = """mutation($i: AccountSignUpInput!) {
  signUp(input: $i) { token user { id username } errors { code message field } }
}"""
RENAME = """mutation($u: String!) {
  updateProfile(input: {username: $u}) { user { username } errors { code message field } }
}"""
PROFILE = "query($u: String!) { user(username: $u) { id username } }"
LOG_IN = """mutation($u: String!) { logIn(input: {username: $u, password: "password-ada"}) {
  token errors { code } } }"""


async def _sign_up(gql, name: str) -> dict:
    i = {"username": name, "password": "a good password", "fullName": "X"}
    return (await gql.ok(SIGN_UP, {"i": i}))["signUp"]


async def _claims(gql, names: list[str]) -> dict[str, int | None]:
    """Who claims each name (None: free)."""
    found = await gql.tao.key_get_many(USERNAME_KEYS, [n.lower() for n in names])
    return {n.lower(): found.get(n.lower()) for n in names}


async def _user_data(gql, uid: int) -> dict:
    return dict((await gql.tao.obj_get([uid]))[uid].data)


async def test_concurrent_renames_leave_every_claimed_name_borne_or_held(gql):
    gql.tao.settings.auth.username_changes_per_hold = 100
    token, gid = await gql.sign_up("ada")
    uid = store_id(gid)
    names = [f"ada_{i}" for i in range(8)]
    answers = await asyncio.gather(*[gql.ok(RENAME, {"u": n}, token) for n in names])
    assert all(a["updateProfile"]["errors"] == [] for a in answers), answers
    data = await _user_data(gql, uid)
    bears, holds = data["username"], set(data.get("username_holds") or {})
    assert bears in names
    claims = await _claims(gql, ["ada", *names])
    for name, holder in claims.items():
        # every name this account claims is its name or a hold with an end (none claimed for good)
        assert holder in (None, uid)
        if holder == uid:
            assert name == bears.lower() or name in holds, (name, bears, holds)
    assert holds == {n.lower() for n in ["ada", *names]} - {bears.lower()}  # every rename's old name is held
    skeletons = await gql.tao.key_get_many(SKELETON_KEYS, [skeleton(n) for n in ["ada", *names]])
    assert set(skeletons) == {skeleton(n) for n in ["ada", *names]} and set(skeletons.values()) == {uid}


async def test_concurrent_renames_without_a_hold_free_every_name_but_the_last(gql):
    gql.tao.settings.auth.username_hold_seconds = 0
    token, gid = await gql.sign_up("ada")
    uid = store_id(gid)
    names = [f"ada_{i}" for i in range(8)]
    answers = await asyncio.gather(*[gql.ok(RENAME, {"u": n}, token) for n in names])
    assert all(a["updateProfile"]["errors"] == [] for a in answers), answers
    bears = (await _user_data(gql, uid))["username"]
    claims = await _claims(gql, ["ada", *names])
    assert {n: h for n, h in claims.items() if h is not None} == {bears.lower(): uid}
    skeletons = await gql.tao.key_get_many(SKELETON_KEYS, [skeleton(n) for n in ["ada", *names]])
    assert skeletons == {skeleton(bears): uid}  # a rename's re-check re-claimed one renamed away from (probe)
    for name in ["ada", *names]:  # and anyone may take them, at once
        if name != bears:
            assert (await _sign_up(gql, name))["errors"] == []


async def test_a_claim_whose_rename_never_completed_is_released_by_its_check(gql, monkeypatch):
    """A rename that dies between its claim and its write (a crash) left the name claimed by an
    account not bearing it, for good: the check queued before the claim releases it."""
    from resolvers import users

    token, gid = await gql.sign_up("ada")
    uid = store_id(gid)

    async def crash(*args, **kwargs):  # the process dies after the claim, before the write
        raise ConnectionResetError("the process died here")

    with monkeypatch.context() as m:
        m.setattr(gql.tao, "obj_update", crash)
        try:
            await users.do_update_profile(gql.tao, uid, username="lovelace")
        except ConnectionResetError:
            pass
    assert (await _claims(gql, ["lovelace"]))["lovelace"] == uid  # claimed, not borne
    assert (await _sign_up(gql, "lovelace"))["errors"][0]["code"] == "USERNAME_TAKEN"
    await gql.tao.run_jobs_until_idle()  # the check (due in 10 minutes; a drain runs it now)
    assert (await _claims(gql, ["lovelace"]))["lovelace"] is None
    assert (await _sign_up(gql, "lovelace"))["errors"] == []
    assert (await _user_data(gql, uid))["username"] == "ada"


async def test_the_old_name_is_held_for_its_owner_who_may_take_it_back(gql):
    token, gid = await gql.sign_up("ada")
    p = (await gql.ok(RENAME, {"u": "lovelace"}, token))["updateProfile"]
    assert p["errors"] == [] and p["user"]["username"] == "lovelace"
    # nobody else can take the old name, in any case, and it resolves to nobody
    for grab in ("ada", "ADA"):
        assert [e["code"] for e in (await _sign_up(gql, grab))["errors"]] == ["USERNAME_TAKEN"]
    other, _ = await gql.sign_up("mallory")
    assert [e["code"] for e in (await gql.ok(RENAME, {"u": "ada"}, other))["updateProfile"]["errors"]] \
        == ["USERNAME_TAKEN"]
    assert (await gql.ok(PROFILE, {"u": "ada"}))["user"] is None
    assert (await gql.ok(PROFILE, {"u": "lovelace"}))["user"]["id"] == gid
    assert (await gql.ok(LOG_IN, {"u": "ada"}))["logIn"]["token"]  # its owner's alone: logging in by it works
    assert (await gql.ok(LOG_IN, {"u": "lovelace"}))["logIn"]["token"]
    # the owner takes it back: "lovelace" is held now in turn
    p = (await gql.ok(RENAME, {"u": "ada"}, token))["updateProfile"]
    assert p["errors"] == [] and p["user"]["username"] == "ada"
    assert (await gql.ok(PROFILE, {"u": "ada"}))["user"]["id"] == gid
    assert (await gql.ok(PROFILE, {"u": "lovelace"}))["user"] is None
    assert [e["code"] for e in (await _sign_up(gql, "lovelace"))["errors"]] == ["USERNAME_TAKEN"]
    data = await _user_data(gql, store_id(gid))
    assert set(data["username_holds"]) == {"lovelace"}
    # a drain of every delayed job (as tests and tools run) does not end a hold early
    await gql.tao.run_jobs_until_idle()
    assert [e["code"] for e in (await _sign_up(gql, "lovelace"))["errors"]] == ["USERNAME_TAKEN"]


async def test_a_held_name_s_look_alikes_are_held_too_and_the_hold_ends(gql):
    gql.tao.settings.auth.username_hold_seconds = 2
    token, gid = await gql.sign_up("bob1")
    assert (await gql.ok(RENAME, {"u": "robert"}, token))["updateProfile"]["errors"] == []
    p = await _sign_up(gql, "bobl")  # looks like "bob1"
    assert [e["code"] for e in p["errors"]] == ["USERNAME_TAKEN"] and "looks like" in p["errors"][0]["message"]
    started = time.monotonic()
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert [e["code"] for e in (await _sign_up(gql, "bob1"))["errors"]] == ["USERNAME_TAKEN"]
    await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - started)))
    await gql.tao.run_jobs_until_idle()
    # the hold is over: the name and its look-alikes are anyone's
    assert (await _sign_up(gql, "bobl"))["errors"] == []
    assert (await gql.tao.obj_get([store_id(gid)]))[store_id(gid)].data.get("username_holds") is None
    assert (await gql.ok(PROFILE, {"u": "robert"}))["user"]["id"] == gid


async def test_two_changes_per_hold_even_sent_at_once_and_no_refused_name_stays_claimed(gql):
    """Each rename holds a name for 14 days: unbounded, one account could squat any number of
    names by renaming again and again. As Instagram, two changes per hold period
    (`auth.username_changes_per_hold`); taking a held name back is always allowed."""
    token, gid = await gql.sign_up("ada")
    uid = store_id(gid)
    names = [f"ada_{i}" for i in range(8)]
    answers = [a["updateProfile"] for a in await asyncio.gather(*[gql.ok(RENAME, {"u": n}, token) for n in names])]
    won = [n for n, a in zip(names, answers, strict=True) if a["errors"] == []]
    refused = [a["errors"] for a in answers if a["errors"]]
    assert len(won) == 2 and all([e["code"] for e in errs] == ["USERNAME_CHANGE_LIMIT"] for errs in refused)
    assert "2 times in 14 days" in refused[0][0]["message"] and refused[0][0]["field"] == "username"
    data = await _user_data(gql, uid)
    assert data["username"] in won and set(data["username_holds"]) == {"ada", *won} - {data["username"]}
    claims = await _claims(gql, names)
    assert {n for n, h in claims.items() if h is not None} == set(won)  # a refused rename's claim was given back
    # one more, later: still refused, saying when; taking back a held name is allowed
    p = (await gql.ok(RENAME_WITH_RETRY, {"u": "someone"}, token))["updateProfile"]
    assert [e["code"] for e in p["errors"]] == ["USERNAME_CHANGE_LIMIT"] and p["errors"][0]["retryAfter"] > 13 * 86_400
    assert (await gql.ok(RENAME, {"u": "ada"}, token))["updateProfile"]["errors"] == []
    assert (await gql.ok(PROFILE, {"u": "ada"}))["user"]["id"] == gid


RENAME_WITH_RETRY = """mutation($u: String!) {
  updateProfile(input: {username: $u}) { errors { code message field retryAfter } }
}"""


async def test_a_renamed_account_s_purge_frees_its_held_names_and_leaves_no_residue(api, media_settings):
    from resolvers.account_data.residue import find_residue
    from server import MEDIA_KEY

    gql, _ = api
    token, gid = await gql.sign_up("ada")
    for name in ("lovelace", "countess"):
        assert (await gql.ok(RENAME, {"u": name}, token))["updateProfile"]["errors"] == []
    assert set((await _user_data(gql, store_id(gid)))["username_holds"]) == {"ada", "lovelace"}
    delete = """mutation { deleteAccount(input: {password: "password-ada"}) { ok } }"""
    assert (await gql.ok(delete, token=token))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle()
    report = await find_residue(gql.tao, media_settings, gql.client.app[MEDIA_KEY], store_id(gid))
    assert report.counts == (0, 0, 0), "\n".join(map(str, [*report.rows, *report.cache_keys]))
    for name in ("ada", "lovelace", "countess"):  # the held names went with the account
        assert (await _sign_up(gql, name))["errors"] == []


async def test_the_owner_logs_in_by_a_name_the_account_holds(gql):
    """Someone with a stolen session renames the account: its owner, who knows only the old name,
    logs in by it during the hold (the name is still the account's alone); it shows nobody
    anywhere else. Before, the old name resolved to nobody at log-in too, and the owner, not
    knowing the new name, was locked out."""
    token, gid = await gql.sign_up("ada")
    assert (await gql.ok(RENAME, {"u": "not_ada_anymore"}, token))["updateProfile"]["errors"] == []
    p = (await gql.ok(LOG_IN, {"u": "ADA"}))["logIn"]
    assert p["errors"] == [] and p["token"]
    assert (await gql.ok("{ viewer { id username } }", token=p["token"]))["viewer"] == {
        "id": gid, "username": "not_ada_anymore"}
    assert (await gql.ok(PROFILE, {"u": "ada"}))["user"] is None
    # a wrong password by the held name counts against the same account
    wrong = """mutation { logIn(input: {username: "ada", password: "wrong one"}) { errors { code } } }"""
    for _ in range(gql.tao.settings.auth.login_failures_per_username):
        assert [e["code"] for e in (await gql.ok(wrong))["logIn"]["errors"]] == ["INVALID_CREDENTIALS"]
    p = (await gql.ok(LOG_IN, {"u": "not_ada_anymore"}))["logIn"]
    assert [e["code"] for e in p["errors"]] == ["TOO_MANY_ATTEMPTS"]


async def test_renames_to_taken_names_queue_no_jobs(gql):
    """A rename queues its claim's check before it claims: one to a name another account holds
    queued a job each time it was refused (probe: an account could fill the outbox with them, a
    thousand a minute within its cost budget). A name that is visibly taken is refused first."""
    from tao.testing import TaoTestHooks as hooks

    await gql.sign_up("bob")
    token, _ = await gql.sign_up("ada")
    for name in ["BOB", "b0b"] * 10:  # taken, and a look-alike of a taken one
        p = (await gql.ok(RENAME, {"u": name}, token))["updateProfile"]
        assert [e["code"] for e in p["errors"]] == ["USERNAME_TAKEN"]
    queued = 0
    for shard in range(gql.tao.n_shards):
        async with hooks(gql.tao).read(shard) as conn:
            queued += (await conn.fetchall("SELECT COUNT(*) FROM {outbox} WHERE handler = %s",
                                           ("usernames.check_claim",)))[0][0]
    assert queued == 0


async def test_a_rename_s_late_check_does_not_reclaim_a_name_renamed_away_from(gql):
    """The interleaving behind a rare leak of eight renames at once (probe): rename A writes
    "ada_5"; rename B renames from it and, with no hold, releases it; then A's check that its
    name is still claimed ran and claimed it again, for good, for an account bearing another."""
    from resolvers.usernames import confirm_claims
    from resolvers.users import do_update_profile

    gql.tao.settings.auth.username_hold_seconds = 0
    _, gid = await gql.sign_up("ada")
    uid = store_id(gid)
    await do_update_profile(gql.tao, uid, username="ada_5")  # A's write
    await do_update_profile(gql.tao, uid, username="ada_7")  # B: from ada_5, released at once
    await confirm_claims(gql.tao, uid, "ada_5")  # A's check, late
    assert await _claims(gql, ["ada_5", "ada_7"]) == {"ada_5": None, "ada_7": uid}
    assert await gql.tao.key_get_many(SKELETON_KEYS, [skeleton("ada_5"), skeleton("ada_7")]) == {"ada_7": uid}
    assert (await _sign_up(gql, "ada_5"))["errors"] == []


async def test_the_account_export_lists_the_names_it_held_after_renames(gql):
    """Held usernames are the account's data (its past names): its export's profile lists them."""
    from resolvers.account_data.registry import DataContext, kinds

    token, gid = await gql.sign_up("ada")
    for name in ("ada_one", "ada_two"):
        assert (await gql.ok(RENAME, {"u": name}, token))["updateProfile"]["errors"] == []
    profile = next(k for k in kinds() if k.name == "profile")
    (record,) = [r async for r in profile.export(DataContext(gql.tao, gql.tao.settings), store_id(gid))]
    assert record["username"] == "ada_two"
    assert sorted(h["username"] for h in record["previous_usernames"]) == ["ada", "ada_one"]
    assert all(h["held_until"] > time.time() * 1000 for h in record["previous_usernames"])


RENAME_AND_MORE = """mutation($u: String!) {
  updateProfile(input: {username: $u, bio: "new bio", fullName: "New Name", isPrivate: true}) {
    user { username } errors { code message field } } }"""
NOTICES = "{ viewer { notifications(first: 10) { edges { node { type } } } } }"


async def test_a_rename_stalled_past_its_claim_check_changes_nothing(gql, monkeypatch):
    """A rename (with other profile changes) stalls between its claim and its write, for real in
    this process: its compare-and-set waits on an event of the test's. Its claim check runs (due
    10 minutes later; a drain runs it now) and releases the name, which another account then
    takes. The stalled write landed; since the seventeenth session the rename then found its claim
    lost and took its name back, but the request's bio, full name and privacy stayed written, and
    its USERNAME_CHANGED notice stayed. Now the release moves the USER's version first (a fence):
    the stalled write is refused, the rename tries again, finds the name another's and answers
    USERNAME_TAKEN having changed nothing."""
    ta, ga = await gql.sign_up("ada")
    tb, gb = await gql.sign_up("bob")
    ada, bob = store_id(ga), store_id(gb)
    before = await _user_data(gql, ada)
    stalled, go = asyncio.Event(), asyncio.Event()
    update = gql.tao.obj_update

    async def stalling(obj_id, data, **kw):
        if obj_id == ada and data.get("username") == "lovelace" and not stalled.is_set():
            stalled.set()  # claimed, hold job queued: the write waits here
            await go.wait()
        return await update(obj_id, data, **kw)

    monkeypatch.setattr(gql.tao, "obj_update", stalling)
    rename = asyncio.create_task(gql.ok(RENAME_AND_MORE, {"u": "lovelace"}, ta))
    await asyncio.wait_for(stalled.wait(), 10)
    assert (await _claims(gql, ["lovelace"]))["lovelace"] == ada
    await gql.tao.run_jobs_until_idle()  # its claim check: ada does not bear the name, released
    assert (await _claims(gql, ["lovelace"]))["lovelace"] is None
    taken = (await gql.ok(RENAME, {"u": "lovelace"}, tb))["updateProfile"]
    assert taken["errors"] == [] and taken["user"]["username"] == "lovelace"
    go.set()
    answer = (await rename)["updateProfile"]
    assert answer["errors"][0]["code"] == "USERNAME_TAKEN", answer
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    after = await _user_data(gql, ada)
    assert {k: after.get(k) for k in ("username", "bio", "full_name", "is_private", "username_holds")} == {
        k: before.get(k) for k in ("username", "bio", "full_name", "is_private", "username_holds")}
    assert (await _user_data(gql, bob))["username"] == "lovelace"
    assert await _claims(gql, ["ada", "lovelace"]) == {"ada": ada, "lovelace": bob}
    kinds = [e["node"]["type"] for e in (await gql.ok(NOTICES, token=ta))["viewer"]["notifications"]["edges"]]
    assert "USERNAME_CHANGED" not in kinds, kinds


async def test_a_rename_that_loses_its_claim_after_its_write_takes_all_of_it_back(gql, monkeypatch):
    """The take-back, for a claim lost after the write (what the fence cannot stop: here the
    claim is handed to another account by the store's verb directly, between the write and the
    rename's check): the name goes back, and so do the request's other changes and its notice."""
    from resolvers import usernames, users
    from resolvers.errors import UserError

    ta, ga = await gql.sign_up("ada")
    _, gb = await gql.sign_up("bob")
    ada, bob = store_id(ga), store_id(gb)
    before = await _user_data(gql, ada)
    real = usernames.confirm_claims

    async def lost(tao, user_id, username):
        await tao.key_release(USERNAME_KEYS, username.lower(), user_id, to=bob)
        return await real(tao, user_id, username)

    monkeypatch.setattr(users, "confirm_claims", lost)
    with pytest.raises(UserError) as refused:
        await users.do_update_profile(gql.tao, ada, username="lovelace", bio="new bio", full_name="New Name")
    assert refused.value.code.value == "USERNAME_TAKEN"
    await gql.tao.run_jobs_until_idle()
    after = await _user_data(gql, ada)
    assert {k: after.get(k) for k in ("username", "bio", "full_name")} == {
        k: before.get(k) for k in ("username", "bio", "full_name")}
    kinds = [e["node"]["type"] for e in (await gql.ok(NOTICES, token=ta))["viewer"]["notifications"]["edges"]]
    assert "USERNAME_CHANGED" not in kinds, kinds
