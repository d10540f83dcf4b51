"""A new password that is easy to guess is refused (PASSWORD_TOO_WEAK), whatever its length: one
of the 10 000 most common passwords (zxcvbn's ranked list, without case), the account's
username, or one character repeated. Before, 8 characters were the only rule: `password1`,
`12345678`, `qwertyuiop` or the username itself were taken (the sixteenth session's closing
note). A refusal writes nothing: no account, no new hash, no notice."""

from __future__ import annotations

import pytest

from resolvers.passwords import weakness

SIGN_UP = """mutation($i: AccountSignUpInput!) { signUp(input: $i) { token errors { code field message } } }"""
LOG_IN = """mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p}) {
  token errors { code } } }"""
CHANGE = """mutation($c: String!, $n: String!) {
  changePassword(input: {currentPassword: $c, newPassword: $n}) { ok errors { code field message } } }"""
NOTES = "{ viewer { notifications(first: 5) { edges { node { type } } } } }"


@pytest.mark.parametrize(("password", "why"), [
    ("password1", "most common"), ("Password1", "most common"), ("12345678", "most common"),
    ("qwertyuiop", "most common"), ("iloveyou", "most common"), ("zzzzzzzzzz", "one character repeated"),
    ("AdaLovelace", "your username")])
async def test_sign_up_refuses_a_password_easy_to_guess(gql, password, why):
    body = await gql.ok(SIGN_UP, {"i": {"username": "adalovelace", "password": password}})
    p = body["signUp"]
    assert p["token"] is None and [(e["code"], e["field"]) for e in p["errors"]] == [("PASSWORD_TOO_WEAK", "password")]
    assert why in p["errors"][0]["message"] and "Nothing was changed" in p["errors"][0]["message"]
    assert (await gql.tao.key_get_many("username", ["adalovelace"])).get("adalovelace") is None  # no account


async def test_change_password_refuses_one_easy_to_guess_and_changes_nothing(gql):
    ta, _ = await gql.sign_up("adalovelace")
    for weak in ("qwerty123", "11111111", "ADALOVELACE"):
        p = (await gql.ok(CHANGE, {"c": "password-adalovelace", "n": weak}, ta))["changePassword"]
        assert p["ok"] is False, weak
        assert [(e["code"], e["field"]) for e in p["errors"]] == [("PASSWORD_TOO_WEAK", "newPassword")], (weak, p)
    login = await gql.ok(LOG_IN, {"u": "adalovelace", "p": "password-adalovelace"})
    assert login["logIn"]["errors"] == []  # the password is unchanged, and the sessions are kept
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert (await gql.ok(NOTES, token=ta))["viewer"]["notifications"]["edges"] == []  # nothing to tell
    p = (await gql.ok(CHANGE, {"c": "password-adalovelace", "n": "tangerine harbour lamp"}, ta))["changePassword"]
    assert p == {"ok": True, "errors": []}


def test_what_is_weak():
    assert weakness("password-ada", "ada") is None and weakness("correct horse battery") is None
    assert weakness("ADA_LOVELACE", "ada_lovelace") == "is your username"
    assert weakness("Monkey") is not None and weakness("monkey123") is not None
