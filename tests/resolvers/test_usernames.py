"""Usernames that look alike are one name (resolvers/usernames.py, a TR39 confusable skeleton).

Before, "adal" and "adaI" (a capital i) were two accounts that every client showed alike, and
so were "bob" and "b0b", or "mia" and "rnia" (probe): the second sign-up or rename now answers
USERNAME_TAKEN saying the name looks like a taken one, and changes nothing.
"""

from __future__ import annotations

import asyncio

import pytest

from resolvers.synthetic import GraphSpec, UsernamesTakenError, load_graph
from resolvers.usernames import SKELETON_KEYS, claim_existing_skeletons, skeleton

SIGN_UP = """mutation($i: AccountSignUpInput!) {
  signUp(input: $i) { token user { id username } errors { code message field } }
}"""
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token errors { code } } }"""
UPDATE = """mutation($i: ProfileUpdateInput!) {
  updateProfile(input: $i) { user { username } errors { code message field } } }"""
PROFILE = "query($u: String!) { user(username: $u) { id username } }"


async def sign_up(gql, username: str) -> dict:
    i = {"username": username, "password": "a good password", "fullName": "Someone"}
    return (await gql.ok(SIGN_UP, {"i": i}))["signUp"]


def test_the_skeleton_is_tr39s_for_username_characters():
    assert skeleton("adaI") == skeleton("adal") == skeleton("Ada1") == skeleton("ADAL") == "adal"
    assert skeleton("b0b") == skeleton("bOb") == "bob"
    assert skeleton("mia") == skeleton("rnia") == "rnia"
    assert skeleton("adai") != skeleton("adal")  # a lower-case i does not look like an l
    assert skeleton("a_b.c") == "a_b.c"


@pytest.mark.parametrize(
    "first,second",
    [("adal", "adaI"), ("adaI", "adal"), ("bob", "b0b"), ("mia", "rnia"), ("ada1", "AdaI"), ("Rnia", "mia")],
)
async def test_a_look_alike_sign_up_is_refused_and_creates_nothing(gql, first, second):
    assert (await sign_up(gql, first))["token"]
    p = await sign_up(gql, second)
    assert p["token"] is None and p["user"] is None
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("USERNAME_TAKEN", "username")]
    assert "looks like" in p["errors"][0]["message"]
    if second.lower() != first.lower():
        assert (await gql.ok(PROFILE, {"u": second}))["user"] is None
        assert await gql.tao.key_get_many("username", [second.lower()]) == {}  # its name was given back
    assert (await gql.ok(PROFILE, {"u": first}))["user"]["username"] == first


async def test_names_that_do_not_look_alike_are_both_allowed(gql):
    for name in ("adai", "adal", "ada_l", "bobo"):
        assert (await sign_up(gql, name))["errors"] == [], name


async def test_a_rename_to_a_look_alike_is_refused_and_changes_nothing(gql):
    await sign_up(gql, "adal")
    token = (await sign_up(gql, "adai"))["token"]
    for name in ("adaI", "ADAI", "ada1"):  # "adaI" and "ADAI" change only the case of her own name
        p = (await gql.ok(UPDATE, {"i": {"username": name}}, token))["updateProfile"]
        assert [(e["code"], e["field"]) for e in p["errors"]] == [("USERNAME_TAKEN", "username")], name
        assert "looks like" in p["errors"][0]["message"]
    assert (await gql.ok("{ viewer { username } }", token=token))["viewer"]["username"] == "adai"
    assert await gql.tao.key_get_many("username", ["ada1"]) == {}  # the new name's claim was given back
    # a rename holds the old name and its skeleton for her (test_username_holds.py), then frees them
    assert (await gql.ok(UPDATE, {"i": {"username": "Adai"}}, token))["updateProfile"]["errors"] == []
    assert (await gql.ok(UPDATE, {"i": {"username": "lovelace"}}, token))["updateProfile"]["errors"] == []
    assert (await sign_up(gql, "ADAi"))["errors"][0]["code"] == "USERNAME_TAKEN"
    gql.tao.settings.auth.username_hold_seconds = 0
    assert (await gql.ok(UPDATE, {"i": {"username": "lovelace2"}}, token))["updateProfile"]["errors"] == []
    assert (await sign_up(gql, "Lovelace"))["errors"] == []  # no hold: free at once
    assert (await sign_up(gql, "Iovelace"))["errors"][0]["code"] == "USERNAME_TAKEN"


async def test_concurrent_look_alike_sign_ups_make_one_account(gql):
    results = await asyncio.gather(*(sign_up(gql, n) for n in ("race1", "raceI", "racel", "RACEl")))
    assert len([p for p in results if p["token"]]) == 1
    assert sorted(e["code"] for p in results for e in p["errors"]) == ["USERNAME_TAKEN"] * 3
    holder = (await gql.tao.key_get_many(SKELETON_KEYS, ["racel"]))["racel"]
    assert len(await gql.tao.key_get_many("username", ["race1", "racei", "racel"])) == 1
    assert holder in (await gql.tao.key_get_many("username", ["race1", "racei", "racel"])).values()


async def test_accounts_from_before_keep_working_and_their_names_are_claimed(gql):
    """Accounts made before skeletons hold none: `python -m resolvers username-skeletons` claims
    them; two that already look alike both keep working, and the command names the second."""
    old = await sign_up(gql, "adal")
    uid = int((await gql.tao.key_get_many("username", ["adal"]))["adal"])
    await gql.tao.key_release(SKELETON_KEYS, "adal", uid)  # as an account made before skeletons
    twin = await sign_up(gql, "adaI")  # no skeleton held: not refused (the situation before)
    assert twin["token"]
    await gql.tao.key_release(SKELETON_KEYS, "adal", int((await gql.tao.key_get_many("username", ["adai"]))["adai"]))
    other = await sign_up(gql, "zoe")
    zoe = int((await gql.tao.key_get_many("username", ["zoe"]))["zoe"])
    await gql.tao.key_release(SKELETON_KEYS, "zoe", zoe)
    alike = [(name, holder) async for _, name, holder in claim_existing_skeletons(gql.tao, page=1)]
    assert len(alike) == 1 and alike[0][0] in ("adal", "adaI")
    assert (await gql.tao.key_get_many(SKELETON_KEYS, ["zoe"])) == {"zoe": zoe}
    assert [(name, holder) async for _, name, holder in claim_existing_skeletons(gql.tao)] == alike  # idempotent
    for name, p in (("adal", old), ("adaI", twin), ("zoe", other)):
        assert (await gql.ok("{ viewer { username } }", token=p["token"]))["viewer"]["username"] == name
        assert (await gql.ok(LOG_IN, {"u": name, "p": "a good password"}))["logIn"]["token"]
    for name in ("Ada1", "z0e"):
        assert (await sign_up(gql, name))["errors"][0]["code"] == "USERNAME_TAKEN", name


async def test_a_graph_load_refuses_names_that_look_like_taken_ones_before_writing(gql):
    await sign_up(gql, "userl")  # looks like the load's "user1"
    with pytest.raises(UsernamesTakenError, match="look-alikes"):
        await load_graph(gql.tao, GraphSpec(users=3, posts_per_user=0, mean_follows=1, likes_per_user=0))
    assert await gql.tao.key_get_many("username", ["user0", "user2"]) == {}  # nothing written


async def test_the_upgrade_commands_print_what_they_did(gql, gql_settings, capsys, monkeypatch):
    """`python -m resolvers username-skeletons` and `hashtags-renormalize` (one helper,
    `_print_each`, since the sixteenth session's `costs` branch): a line for each account or tag
    they report, then how many, against the store the settings name."""
    import resolvers.__main__ as cli

    await sign_up(gql, "adal")
    uid = int((await gql.tao.key_get_many("username", ["adal"]))["adal"])
    await gql.tao.key_release(SKELETON_KEYS, "adal", uid)  # as an account made before skeletons
    await sign_up(gql, "adaI")
    twin = int((await gql.tao.key_get_many("username", ["adai"]))["adai"])
    await gql.tao.key_release(SKELETON_KEYS, "adal", twin)
    monkeypatch.setattr(cli, "load_settings_or_exit", lambda path: gql_settings)
    capsys.readouterr()
    for command in ("username-skeletons", "hashtags-renormalize"):  # each in a thread's own event loop
        assert await asyncio.to_thread(cli.main, [command]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3, out
    assert "looks like user" in out[0] and "both keep working" in out[0]
    assert out[1] == "username skeletons claimed; 1 account(s) whose name looks like another's"
    assert out[2] == "0 tag(s) stored under an old normal form; their posts' jobs are queued for the workers"
