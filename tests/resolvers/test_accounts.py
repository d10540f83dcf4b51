"""Accounts and sessions through GraphQL: sign-up, log-in, log-out, tokens, validation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

SIGN_UP = """mutation($i: AccountSignUpInput!) {
  signUp(input: $i) { token user { id username fullName } errors { code message field } }
}"""
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token user { username } errors { code message field } }
}"""
VIEWER = "{ viewer { username } }"


async def sign_up(gql, username, password="a good password", full_name="Ada L"):
    return (await gql.ok(SIGN_UP, {"i": {"username": username, "password": password, "fullName": full_name}}))["signUp"]


async def test_sign_up_returns_a_working_token(gql):
    p = await sign_up(gql, "ada")
    assert p["errors"] == [] and p["token"].startswith("tgs_")
    assert p["user"]["username"] == "ada" and p["user"]["fullName"] == "Ada L"
    assert (await gql.ok(VIEWER, token=p["token"]))["viewer"] == {"username": "ada"}
    assert (await gql.ok(VIEWER))["viewer"] is None  # anonymous


async def test_stored_secrets_are_hashes(gql):
    p = await sign_up(gql, "ada", password="secret-password-1")
    uid = await gql.tao.key_get_many("username", ["ada"])
    user = (await gql.tao.obj_get([uid["ada"]]))[uid["ada"]]
    assert user.data["password_hash"].startswith("$argon2id$")
    assert "secret-password-1" not in str(user.data)
    # The token's secret is stored only as its sha256: the session object never holds it.
    from resolvers.accounts import _parse_token, token_hash

    sid, secret = _parse_token(p["token"])
    session = (await gql.tao.obj_get([sid]))[sid]
    assert session.otype == "SESSION" and session.data["user_id"] == uid["ada"]
    assert session.data["token_hash"] == token_hash(secret) and secret not in str(session.data)


async def test_username_unique_ignoring_case(gql):
    await sign_up(gql, "Ada")
    p = await sign_up(gql, "aDA")
    assert p["token"] is None and p["user"] is None
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("USERNAME_TAKEN", "username")]
    # and logging in uses any case
    data = await gql.ok(LOG_IN, {"u": "ADA", "p": "a good password"})
    assert data["logIn"]["user"]["username"] == "Ada"


@pytest.mark.parametrize("name", ["", "a" * 31, "has space", ".dot", "dot.", "two..dots", "émile", "semi;colon",
                                  "ada\n"])
async def test_invalid_usernames_are_refused(gql, name):
    p = await sign_up(gql, name)
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("USERNAME_INVALID", "username")]
    if name:
        assert await gql.tao.key_get_many("username", [name.lower()]) == {}


async def test_bad_password_and_full_name(gql):
    p = await sign_up(gql, "ada", password="short")
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("PASSWORD_INVALID", "password")]
    p = await sign_up(gql, "ada", full_name="x" * 65)
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("FULL_NAME_INVALID", "fullName")]
    assert await gql.tao.key_get_many("username", ["ada"]) == {}  # nothing was created



@pytest.mark.parametrize("name", ["Ada\x7f", "Ada\x85Lovelace", "Ada\u2028L", "moc.\u202eexe", "Ada \u2066x\u2069"])
async def test_full_names_that_would_reorder_or_break_the_text_beside_them_are_refused(gql, name):
    """Only C0 controls were refused: DEL, C1 controls (U+0085 is a line break), line separators
    and bidi overrides, which reverse what a client prints after the name, passed (probe3)."""
    p = await sign_up(gql, "ada", full_name=name)
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("FULL_NAME_INVALID", "fullName")]
    assert await gql.tao.key_get_many("username", ["ada"]) == {}


async def test_full_names_in_any_script_with_emoji_and_direction_marks_are_kept(gql):
    p = await sign_up(gql, "ada", full_name="\u0639\u0644\u064a\u200f \U0001F469\u200d\U0001F4BB Zo\u00eb")
    assert p["errors"] == [] and p["user"]["fullName"] == "\u0639\u0644\u064a\u200f \U0001F469\u200d\U0001F4BB Zo\u00eb"

async def test_log_in(gql):
    await sign_up(gql, "ada")
    for user, pw in (("ada", "wrong password"), ("nobody", "a good password"), ("bad name!", "x")):
        p = (await gql.ok(LOG_IN, {"u": user, "p": pw}))["logIn"]
        assert p["token"] is None
        assert [e["code"] for e in p["errors"]] == ["INVALID_CREDENTIALS"]  # same answer: no username probing
    p = (await gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))["logIn"]
    assert p["errors"] == [] and (await gql.ok(VIEWER, token=p["token"]))["viewer"]["username"] == "ada"


async def test_log_out_ends_only_this_session(gql):
    first = (await sign_up(gql, "ada"))["token"]
    second = (await gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))["logIn"]["token"]
    assert (await gql.ok("mutation { logOut { ok } }", token=first))["logOut"]["ok"] is True
    status, body = await gql.post(VIEWER, token=first)
    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gql.ok(VIEWER, token=second))["viewer"]["username"] == "ada"


async def test_log_out_all_sessions(gql):
    tokens = [(await sign_up(gql, "ada"))["token"]]
    for _ in range(3):
        tokens.append((await gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))["logIn"]["token"])
    await gql.ok("mutation { logOut(input: {allSessions: true}) { ok } }", token=tokens[1])
    for t in tokens:
        status, body = await gql.post(VIEWER, token=t)
        assert status == 401, body
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(uid, "HAS_SESSION") == 0


async def test_log_out_needs_a_session(gql):
    body = await gql("mutation { logOut { ok } }")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_is_a_clear_top_level_error(gql):
    token = (await sign_up(gql, "ada"))["token"]
    from resolvers.accounts import _parse_token

    sid, _ = _parse_token(token)
    await gql.tao.obj_update(sid, {"expires_at": 1})
    status, body = await gql.post(VIEWER, token=token)
    assert status == 401
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in body["errors"][0]["message"] and "log in" in body["errors"][0]["message"]
    # the expired session is cleaned up by a job
    await gql.tao.run_jobs_until_idle()
    assert await gql.tao.obj_get([sid]) == {}
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(uid, "HAS_SESSION") == 0


async def test_concurrent_sign_ups_for_one_name_make_one_account(gql):
    import asyncio

    results = await asyncio.gather(*(sign_up(gql, name) for name in ("race", "RACE", "Race")))
    winners = [p for p in results if p["token"]]
    assert len(winners) == 1
    assert sorted(e["code"] for p in results for e in p["errors"]) == ["USERNAME_TAKEN", "USERNAME_TAKEN"]
    uid = (await gql.tao.key_get_many("username", ["race"]))["race"]
    assert (await gql.ok(VIEWER, token=winners[0]["token"]))["viewer"]["username"] == (await gql.tao.obj_get([uid]))[
        uid
    ].data["username"]


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer tgs_not-a-real-token", "Bearer " + "x" * 300])
async def test_bad_authorization_headers(gql, header):
    status, body = await gql.post(VIEWER, headers={"Authorization": header})
    assert status == 401
    err = body["errors"][0]
    assert err["extensions"]["code"] == "UNAUTHENTICATED" and err["message"]


async def test_a_real_session_id_with_a_wrong_secret_is_refused(gql):
    token = (await sign_up(gql, "ada"))["token"]
    sid = token.split("_")[1]
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    # a wrong secret (of any length), an id that is not a session (the user's own), an id of
    # nothing: each is refused as not valid, never as "malformed" (the token is well formed)
    for forged in (f"tgs_{sid}_" + "A" * 43, f"tgs_{sid}_wrong", f"tgs_{uid}_{token.split('_', 2)[2]}",
                   f"tgs_1_{token.split('_', 2)[2]}"):
        status, body = await gql.post(VIEWER, headers={"Authorization": f"Bearer {forged}"})
        assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", forged
        message = body["errors"][0]["message"]
        assert "not valid" in message and "malformed" not in message, (forged, message)
    status, body = await gql.post(VIEWER, headers={"Authorization": "Bearer tgs_not-a-real-token"})
    assert status == 401 and "malformed" in body["errors"][0]["message"]
    assert (await gql.ok(VIEWER, token=token))["viewer"] == {"username": "ada"}


async def test_a_token_names_its_user_which_must_be_its_sessions(gql):
    """A token is `tgs_<session id>.<user id>_<secret>`: the request reads the session and its
    user together. The same session and secret with another user's id is not valid (the id is
    checked against the session's, never trusted); a token of the older shape, without the
    user id, still opens its session."""
    from resolvers.accounts import _parse_token, token_user

    token = (await sign_up(gql, "ada"))["token"]
    await sign_up(gql, "bob")
    ada, bob = (await gql.tao.key_get_many("username", ["ada", "bob"])).values()
    sid, secret = _parse_token(token)
    assert token == f"tgs_{sid}.{ada}_{secret}" and token_user(token) == ada
    for forged in (f"tgs_{sid}.{bob}_{secret}", f"tgs_{sid}.1_{secret}"):
        status, body = await gql.post(VIEWER, headers={"Authorization": f"Bearer {forged}"})
        assert status == 401 and "not valid" in body["errors"][0]["message"], forged
    assert (await gql.ok(VIEWER, token=f"tgs_{sid}_{secret}"))["viewer"] == {"username": "ada"}
    assert (await gql.ok(VIEWER, token=token))["viewer"] == {"username": "ada"}
    for malformed in (f"tgs_{sid}._{secret}", f"tgs_{sid}.x1_{secret}", f"tgs_.{ada}_{secret}"):
        status, body = await gql.post(VIEWER, headers={"Authorization": f"Bearer {malformed}"})
        assert status == 401 and "malformed" in body["errors"][0]["message"], malformed


async def test_failed_log_ins_are_throttled_per_account(gql):
    await sign_up(gql, "ada")
    await sign_up(gql, "bob")
    for _ in range(10):
        p = (await gql.ok(LOG_IN, {"u": "ada", "p": "wrong password"}))["logIn"]
        assert [e["code"] for e in p["errors"]] == ["INVALID_CREDENTIALS"]
    # now even the right password is refused for a while, without checking it
    p = (await gql.ok(LOG_IN, {"u": "ADA", "p": "a good password"}))["logIn"]
    assert p["token"] is None and [e["code"] for e in p["errors"]] == ["TOO_MANY_ATTEMPTS"]
    assert "try again in" in p["errors"][0]["message"]
    # other accounts are not affected
    p = (await gql.ok(LOG_IN, {"u": "bob", "p": "a good password"}))["logIn"]
    assert p["errors"] == [] and p["token"]


class PasswordChecks:
    """Counts argon2 verifications (the work a log-in costs) and how many run at once."""

    def __init__(self, monkeypatch, hold: float = 0.0) -> None:
        from argon2 import PasswordHasher

        self.calls, self.running, self.most_at_once, self.threads = 0, 0, 0, set()
        self._lock = threading.Lock()
        original = PasswordHasher.verify

        def verify(hasher, *args, **kwargs):
            with self._lock:
                self.calls += 1
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
                self.threads.add(threading.current_thread().name)
            try:
                time.sleep(hold)  # long enough for concurrent checks to overlap (off the loop: allowed)
                return original(hasher, *args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        monkeypatch.setattr(PasswordHasher, "verify", verify)


@pytest.fixture
def checks(monkeypatch):
    return PasswordChecks(monkeypatch)


async def test_an_unknown_username_costs_one_check_like_a_wrong_password(gql, checks):
    await sign_up(gql, "ada")
    for user, pw in (("ada", "wrong password"), ("nobody", "a good password"), ("bad name!", "x"),
                     ("ada", "a good password")):
        before = checks.calls
        await gql.ok(LOG_IN, {"u": user, "p": pw})
        assert checks.calls - before == 1, (user, pw)  # the same work whether or not the user exists


async def test_password_checks_run_off_the_loop_in_a_bounded_pool(gql, monkeypatch):
    checks = PasswordChecks(monkeypatch, hold=0.05)
    answers = await asyncio.gather(*(gql.ok(LOG_IN, {"u": f"user{i}", "p": "a good password"}) for i in range(6)))
    assert all(a["logIn"]["errors"][0]["code"] == "INVALID_CREDENTIALS" for a in answers)
    assert checks.calls == 6
    assert checks.most_at_once == 1  # AuthSettings.password_hash_workers: a flood queues, it does not take every core
    assert all(name.startswith("taogram-password") for name in checks.threads), checks.threads


async def test_one_password_check_per_request(gql, checks):
    await sign_up(gql, "ada")
    two = """mutation { a: logIn(input: {username: "ada", password: "a good password"}) { token }
                        b: logIn(input: {username: "ada", password: "guess two"}) { token } }"""
    body = await gql(two)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    message = body["errors"][0]["message"]
    assert "logIn, requestDataExport, signUp, startTwoFactor, and this one has 2 (logIn, logIn)" in message
    mixed = """mutation { signUp(input: {username: "bob", password: "a good password"}) { token }
                          logIn(input: {username: "ada", password: "a good password"}) { token } }"""
    body = await gql(mixed)
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert checks.calls == 0 and await gql.tao.key_get_many("username", ["bob"]) == {}  # nothing ran


async def test_a_burst_of_guesses_sent_at_once_is_bounded_by_the_account_limit(gql, monkeypatch):
    """The throttle peeked before a password check and counted a failure after it: 30 guesses
    sent at once all passed the peek and ran 30 checks for a limit of 10 (probe). An attempt
    takes its token first now: 10 are checked, the rest refused unchecked, and the right
    password is refused too until the bucket refills."""
    await sign_up(gql, "ada")
    checks = PasswordChecks(monkeypatch, hold=0.02)
    answers = await asyncio.gather(*(gql.ok(LOG_IN, {"u": "ada", "p": f"guess {i}"}) for i in range(30)))
    codes = [a["logIn"]["errors"][0]["code"] for a in answers]
    assert codes.count("INVALID_CREDENTIALS") == 10 and codes.count("TOO_MANY_ATTEMPTS") == 20, codes
    assert checks.calls == 10
    p = (await gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))["logIn"]
    assert [e["code"] for e in p["errors"]] == ["TOO_MANY_ATTEMPTS"]


async def test_right_passwords_do_not_use_up_the_limits(gql):
    """An attempt is counted before its check and given back when it succeeds: log-ins, password
    changes and a session revoked by its owner never add up to a refusal."""
    t = (await sign_up(gql, "ada"))["token"]
    for _ in range(12):
        assert (await gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))["logIn"]["token"]
    change = """mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) {
      errors { code } } }"""
    pw = "a good password"
    for i in range(12):
        new = f"another password {i}"
        assert (await gql.ok(change, {"c": pw, "n": new}, t))["changePassword"]["errors"] == []
        pw = new
    assert (await gql.ok(LOG_IN, {"u": "ada", "p": pw}))["logIn"]["token"]


async def test_a_log_in_with_the_old_password_racing_a_change_opens_no_session(gql, monkeypatch):
    """A log-in checked the old password, then the owner changed it (ending every other session),
    then the log-in opened its session: someone who had the old password kept a working session
    past the change (probe). The session is checked against the password it was earned with,
    after it is written, and removed with INVALID_CREDENTIALS when that changed."""
    import resolvers.accounts as accounts

    owner = (await sign_up(gql, "ada"))["token"]
    checked, go_on = asyncio.Event(), asyncio.Event()
    real = accounts.device_of

    async def paused(user_agent):  # called once the password has been checked
        if not checked.is_set():
            checked.set()
            await go_on.wait()
        return await real(user_agent)

    monkeypatch.setattr(accounts, "device_of", paused)
    thief = asyncio.create_task(gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))
    await asyncio.wait_for(checked.wait(), 30)
    change = """mutation { changePassword(input: {currentPassword: "a good password", newPassword: "a new secret 1"})
      { errors { code } } }"""
    assert (await gql.ok(change, token=owner))["changePassword"]["errors"] == []
    go_on.set()
    p = (await asyncio.wait_for(thief, 30))["logIn"]
    assert p["token"] is None and [e["code"] for e in p["errors"]] == ["INVALID_CREDENTIALS"], p
    assert "changed" in p["errors"][0]["message"]
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(uid, "HAS_SESSION") == 1  # the owner's alone
    assert (await gql.ok(VIEWER, token=owner))["viewer"] == {"username": "ada"}
    assert (await gql.ok(LOG_IN, {"u": "ada", "p": "a new secret 1"}))["logIn"]["token"]


# These change the settings the app is built with: request them before `gql`.
@pytest.fixture
def five_failures_per_address(gql_settings):
    gql_settings.auth.login_failures_per_address = 5


@pytest.fixture
def small_budget(gql_settings):
    gql_settings.limits.cost_budget, gql_settings.limits.cost_window_seconds = 1100, 3600


async def test_failed_log_ins_are_throttled_per_address(five_failures_per_address, gql, checks):
    await sign_up(gql, "ada")
    for i in range(5):  # five different unknown usernames: no one username reaches its limit
        p = (await gql.ok(LOG_IN, {"u": f"nobody{i}", "p": "a good password"}))["logIn"]
        assert [e["code"] for e in p["errors"]] == ["INVALID_CREDENTIALS"]
    before = checks.calls
    p = (await gql.ok(LOG_IN, {"u": "ada", "p": "a good password"}))["logIn"]
    assert p["token"] is None and [e["code"] for e in p["errors"]] == ["TOO_MANY_ATTEMPTS"]
    assert "network address" in p["errors"][0]["message"] and "try again in" in p["errors"][0]["message"]
    assert checks.calls == before  # refused without checking a password


async def test_one_ipv6_network_is_one_address_to_the_per_address_limits(gql) -> None:
    """A client with an IPv6 /64 (the least an ISP gives a customer) picks any of 2**64 source
    addresses: keyed by the whole address, every per-address limit (failed log-ins, an anonymous
    client's cost budget, WebSockets per address) was no limit for it. They count its /64."""
    from resolvers.context import RequestContext
    from resolvers.throttle import LoginThrottle

    gql.tao.settings.auth.login_failures_per_address = 5
    throttle = LoginThrottle(gql.tao, gql.tao.settings.auth)
    for i in range(5):  # five failed attempts (taken, never refunded), each from another address of one /64
        assert await throttle.attempt(f"nobody{i}", f"2001:db8:7:9:{i + 1:x}::1") == ("", 0.0)
    assert (await throttle.attempt("ada", "2001:db8:7:9:ffff:1:2:3"))[0] == "address"
    assert await throttle.attempt("ada", "2001:db8:7:a::1") == ("", 0.0)  # another /64
    assert await throttle.attempt("ada", "192.0.2.7") == ("", 0.0)
    keys = {RequestContext(tao=gql.tao, settings=gql.tao.settings, client_key=a).cost_key
            for a in ("2001:db8::1", "2001:db8::2:1", "2001:db8:0:0:ffff::9")}
    assert keys == {"client:2001:db8::/64"}
    from resolvers.throttle import address_key

    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("unknown") == "unknown"


async def test_password_mutations_are_priced(small_budget, gql, checks):
    body = await gql(SIGN_UP, {"i": {"username": "ada", "password": "a good password", "fullName": "A"}})
    # 500 for the hash, 10 for a mutation, 1 each for the payload's user and errors
    assert body["extensions"]["cost"]["requestedQueryCost"] == 512
    body = await gql(LOG_IN, {"u": "ada", "p": "a good password"})
    assert body["data"]["logIn"]["token"] and body["extensions"]["cost"]["requestedQueryCost"] == 512
    before = checks.calls
    body = await gql(LOG_IN, {"u": "ada", "p": "a good password"})  # 1100 - 2 x 512 = 76 points left
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert checks.calls == before
