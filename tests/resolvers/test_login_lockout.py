"""Failed log-ins: brute force stays bounded, but a stranger cannot lock the owner out.

Until the sixteenth session ten wrong passwords for a username, from anywhere, refused the
right password from everywhere for 15 minutes: anyone could lock any account out by typing its
username. Now the lock-out is per (account, client address), and the account's count from every
address together only slows a spread-out attack (resolvers.throttle.LoginThrottle)."""

from __future__ import annotations

import pytest

from resolvers.accounts import Client, do_log_in
from resolvers.errors import UserError
from resolvers.throttle import LoginThrottle

SIGN_UP = """mutation($i: AccountSignUpInput!) {
  signUp(input: $i) { token errors { code } }
}"""
RIGHT, WRONG = "a good password", "not the password"


async def _log_in(gql, throttle, password, address, username="ada"):
    """The log-in's answer: "ok" (a session or a challenge), or the error's code."""
    try:
        result = await do_log_in(gql.tao, username, password, throttle=throttle, client=Client(address=address))
    except UserError as e:
        return e.code.value
    assert result.token
    return "ok"


@pytest.fixture
async def ada(gql):
    p = (await gql.ok(SIGN_UP, {"i": {"username": "ada", "password": RIGHT, "fullName": "Ada"}}))["signUp"]
    assert p["errors"] == []


async def test_a_stranger_s_failures_do_not_lock_the_owner_out(gql, ada):
    auth = gql.tao.settings.auth
    auth.login_failures_per_username, auth.login_failures_per_username_total = 10, 100
    throttle = LoginThrottle(gql.tao, auth)
    attacker, owner = "203.0.113.9", "198.51.100.4"
    for _ in range(10):
        assert await _log_in(gql, throttle, WRONG, attacker) == "INVALID_CREDENTIALS"
    # the attacker's address is refused for this account, even with the right password...
    assert await _log_in(gql, throttle, RIGHT, attacker) == "TOO_MANY_ATTEMPTS"
    assert await _log_in(gql, throttle, WRONG, "203.0.113.9") == "TOO_MANY_ATTEMPTS"
    # ...and any address of its IPv6 /64 alike
    for i in range(10):
        assert await _log_in(gql, throttle, WRONG, f"2001:db8:5:6::{i + 1:x}") == "INVALID_CREDENTIALS"
    assert await _log_in(gql, throttle, RIGHT, "2001:db8:5:6:ffff::1") == "TOO_MANY_ATTEMPTS"
    # the owner, elsewhere, logs in (the failures above were 20: every address together allows 100)
    assert await _log_in(gql, throttle, RIGHT, owner) == "ok"


async def test_a_spread_out_attack_slows_to_one_guess_per_address_and_the_owner_still_gets_in(gql, ada):
    auth = gql.tao.settings.auth
    auth.login_failures_per_username, auth.login_failures_per_username_total = 3, 6
    throttle = LoginThrottle(gql.tao, auth)
    bots = [f"192.0.2.{i}" for i in range(1, 4)]
    for bot in bots:  # 2 failures each: no address reaches 3, together they reach 6
        for _ in range(2):
            assert await _log_in(gql, throttle, WRONG, bot) == "INVALID_CREDENTIALS"
    # under attack: each address gets one more failure per window, not three,
    for bot in bots:
        assert await _log_in(gql, throttle, WRONG, bot) == "INVALID_CREDENTIALS"
        assert await _log_in(gql, throttle, WRONG, bot) == "TOO_MANY_ATTEMPTS"
    # a fresh one too, whether the guesses come one by one or at once,
    fresh = "192.0.2.50"
    assert await _log_in(gql, throttle, WRONG, fresh) == "INVALID_CREDENTIALS"
    assert await _log_in(gql, throttle, WRONG, fresh) == "TOO_MANY_ATTEMPTS"
    import asyncio

    answers = await asyncio.gather(*[_log_in(gql, throttle, WRONG, "192.0.2.51") for _ in range(5)])
    assert sorted(answers) == ["INVALID_CREDENTIALS"] + ["TOO_MANY_ATTEMPTS"] * 4
    # and the owner, from an address with no failures, logs in with the right password, again and again
    for _ in range(3):
        assert await _log_in(gql, throttle, RIGHT, "198.51.100.4") == "ok"
    # other accounts are untouched
    await gql.ok(SIGN_UP, {"i": {"username": "bob", "password": RIGHT, "fullName": "Bob"}})
    assert await _log_in(gql, throttle, RIGHT, bots[0], username="bob") == "ok"



async def test_under_attack_the_owner_with_two_factor_still_logs_in(gql, ada):
    """The right password from an address under the slowed regime, then the code: both steps
    pass (the password gives its token back). A wrong code spends the address's one try."""
    from resolvers.two_factor import do_complete_log_in
    from tests.resolvers.test_two_factor import enrol, later_code

    auth = gql.tao.settings.auth
    auth.login_failures_per_username, auth.login_failures_per_username_total = 3, 4
    throttle = LoginThrottle(gql.tao, auth)
    token = (await do_log_in(gql.tao, "ada", RIGHT, client=Client(address="198.51.100.4"))).token
    totp, _ = await enrol(gql, token, RIGHT)
    for bot in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):  # past the 4 attempts of every address together
        for _ in range(2):
            assert await _log_in(gql, throttle, WRONG, bot) in ("INVALID_CREDENTIALS", "TOO_MANY_ATTEMPTS")
    assert await _log_in(gql, throttle, WRONG, "192.0.2.3") == "TOO_MANY_ATTEMPTS"  # slowed
    owner = "198.51.100.4"
    first = await do_log_in(gql.tao, "ada", RIGHT, throttle=throttle, client=Client(address=owner))
    assert first.challenge
    user, session = await do_complete_log_in(gql.tao, first.challenge, later_code(totp), throttle=throttle,
                                             address=owner)
    assert user.username == "ada" and session
    # someone who has the password gets one code per address per window, not a challenge's five
    attacker = "203.0.113.77"
    second = await do_log_in(gql.tao, "ada", RIGHT, throttle=throttle, client=Client(address=attacker))
    with pytest.raises(UserError) as first_wrong:
        await do_complete_log_in(gql.tao, second.challenge, "000000", throttle=throttle, address=attacker)
    assert first_wrong.value.code.value == "INVALID_CODE"
    with pytest.raises(UserError) as second_wrong:
        await do_complete_log_in(gql.tao, second.challenge, "111111", throttle=throttle, address=attacker)
    assert second_wrong.value.code.value == "TOO_MANY_ATTEMPTS"


PASSWORD = """mutation($i: AccountPasswordChangeInput!) { changePassword(input: $i) { errors { code } } }"""
RENAME = """mutation($u: String!) { updateProfile(input: {username: $u}) { errors { code } } }"""


async def test_renaming_the_account_does_not_refill_its_password_guesses(gql):
    """A stolen session guesses the password through `changePassword` (or `deleteAccount`,
    `requestDataExport`, `startTwoFactor`): the account's failures were counted under its
    username, so renaming it between rounds gave a fresh budget each time (probe, sixteenth
    session). They count under the account's id now; a log-in by a name no account bears,
    under the name."""
    gql.tao.settings.auth.username_hold_seconds = 0
    limit = gql.tao.settings.auth.login_failures_per_username
    token, _ = await gql.sign_up("ada")
    guess = {"i": {"currentPassword": "a guess at it", "newPassword": "a brand new secret"}}
    for _ in range(limit):
        assert codes_of((await gql.ok(PASSWORD, guess, token))["changePassword"]) == ["INVALID_CREDENTIALS"]
    assert codes_of((await gql.ok(PASSWORD, guess, token))["changePassword"]) == ["TOO_MANY_ATTEMPTS"]
    assert (await gql.ok(RENAME, {"u": "someone_else"}, token))["updateProfile"]["errors"] == []
    assert codes_of((await gql.ok(PASSWORD, guess, token))["changePassword"]) == ["TOO_MANY_ATTEMPTS"]
    # a log-in by the new name is the same account: refused from this address too
    p = (await gql.ok("""mutation { logIn(input: {username: "someone_else", password: "password-ada"}) {
      token errors { code } } }"""))["logIn"]
    assert codes_of(p) == ["TOO_MANY_ATTEMPTS"]


def codes_of(p: dict) -> list[str]:
    return [e["code"] for e in p["errors"]]
