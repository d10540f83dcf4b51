"""Two-factor log-in through GraphQL: enrolment (secret, otpauth URI, QR), confirmation and
recovery codes, the two-step log-in, and the bad inputs: a wrong code, a reused code, a recovery
code used twice, too many wrong codes, an expired or forged challenge, a wrong password to
disable, each a clear payload error that changes nothing and counts toward the throttle."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.schema.client import GQL, password_of

START = """mutation($p: String!) {
  startTwoFactor(input: {password: $p}) { secret provisioningUri qrCodeSvg errors { code field } }
}"""
CONFIRM = "mutation($c: String!) { confirmTwoFactor(input: {code: $c}) { recoveryCodes errors { code message } } }"
DISABLE = "mutation($p: String!) { disableTwoFactor(input: {password: $p}) { ok errors { code field } } }"
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token challenge challengeExpiresAt user { username }
    errors { code message retryAfter } }
}"""
COMPLETE = """mutation($ch: String!, $c: String!) {
  completeLogIn(input: {challenge: $ch, code: $c}) { token user { username } errors { code message field } }
}"""
STATUS = "{ viewer { twoFactor { enabled recoveryCodesLeft } } }"


class Enrolled(pyotp.TOTP):
    used: str  # the code that confirmed the enrolment


async def enrol(gql: GQL, token: str, password: str = "password-ada") -> tuple[Enrolled, list[str]]:
    started = (await gql.ok(START, {"p": password}, token=token))["startTwoFactor"]
    assert started["errors"] == []
    totp = Enrolled(started["secret"])
    totp.used = totp.now()
    confirmed = (await gql.ok(CONFIRM, {"c": totp.used}, token=token))["confirmTwoFactor"]
    assert confirmed["errors"] == [], confirmed
    return totp, confirmed["recoveryCodes"]


def later_code(totp: pyotp.TOTP) -> str:
    """The next time step's code: accepted (one step of drift), and after the step used so far."""
    return totp.at(time.time() + totp.interval)


async def challenge(gql: GQL, name: str = "ada") -> str:
    p = (await gql.ok(LOG_IN, {"u": name, "p": password_of(name)}))["logIn"]
    assert p["token"] is None and p["user"] is None and p["errors"] == [] and p["challenge"].startswith("tgc_")
    assert p["challengeExpiresAt"] > time.time() * 1000
    return p["challenge"]


async def complete(gql: GQL, ch: str, code: str) -> dict:
    return (await gql.ok(COMPLETE, {"ch": ch, "c": code}))["completeLogIn"]


def codes(p: dict) -> list[str]:
    return [e["code"] for e in p["errors"]]


async def test_enrolment_gives_a_provisioning_uri_and_qr_and_needs_the_password(gql: GQL):
    token, _ = await gql.sign_up("ada")
    p = (await gql.ok(START, {"p": "wrong password"}, token=token))["startTwoFactor"]
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("INVALID_CREDENTIALS", "password")]
    assert p["secret"] is None
    p = (await gql.ok(START, {"p": "password-ada"}, token=token))["startTwoFactor"]
    assert p["provisioningUri"].startswith("otpauth://totp/taogram:ada?secret=" + p["secret"])
    assert p["qrCodeSvg"].startswith("data:image/svg+xml;utf8,") and "svg" in p["qrCodeSvg"]
    # not on until confirmed: logIn still answers a session
    assert (await gql.ok(STATUS, token=token))["viewer"]["twoFactor"] == {"enabled": False, "recoveryCodesLeft": 0}
    assert (await gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))["logIn"]["token"]
    wrong = (await gql.ok(CONFIRM, {"c": "000000" if pyotp.TOTP(p["secret"]).now() != "000000" else "111111"},
                          token=token))["confirmTwoFactor"]
    assert codes(wrong) == ["INVALID_CODE"] and wrong["recoveryCodes"] is None
    ok = (await gql.ok(CONFIRM, {"c": pyotp.TOTP(p["secret"]).now()}, token=token))["confirmTwoFactor"]
    assert len(ok["recoveryCodes"]) == 10 and len(set(ok["recoveryCodes"])) == 10
    assert (await gql.ok(STATUS, token=token))["viewer"]["twoFactor"] == {"enabled": True, "recoveryCodesLeft": 10}
    # stored hashed: no recovery code and no code hint beyond its first four characters
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    stored = str((await gql.tao.obj_get([uid]))[uid].data["two_factor"])
    assert all(c.replace("-", "") not in stored for c in ok["recoveryCodes"]) and "$argon2id$" in stored
    again = (await gql.ok(START, {"p": "password-ada"}, token=token))["startTwoFactor"]
    assert codes(again) == ["TWO_FACTOR_ALREADY_ENABLED"]


async def test_log_in_takes_two_steps_and_a_used_code_is_refused(gql: GQL):
    token, _ = await gql.sign_up("ada")
    totp, _ = await enrol(gql, token)
    ch = await challenge(gql)
    reused = await complete(gql, ch, totp.used)  # the code that confirmed the enrolment
    assert codes(reused) == ["INVALID_CODE"] and reused["token"] is None
    assert "already used" in reused["errors"][0]["message"]
    code = later_code(totp)
    done = await complete(gql, ch, code)
    assert done["errors"] == [] and done["user"]["username"] == "ada"
    assert (await gql.ok("{ viewer { username } }", token=done["token"]))["viewer"]["username"] == "ada"
    # the challenge is single use, and so is the code
    assert codes(await complete(gql, ch, code)) == ["CHALLENGE_INVALID"]
    assert codes(await complete(gql, await challenge(gql), code)) == ["INVALID_CODE"]


async def test_a_recovery_code_works_once(gql: GQL):
    token, _ = await gql.sign_up("ada")
    _, recovery = await enrol(gql, token)
    done = await complete(gql, await challenge(gql), recovery[3].lower())  # case and dashes do not matter
    assert done["errors"] == [] and done["token"]
    assert (await gql.ok(STATUS, token=token))["viewer"]["twoFactor"]["recoveryCodesLeft"] == 9
    twice = await complete(gql, await challenge(gql), recovery[3])
    assert codes(twice) == ["INVALID_CODE"] and twice["token"] is None
    assert (await gql.ok(STATUS, token=token))["viewer"]["twoFactor"]["recoveryCodesLeft"] == 9
    assert (await complete(gql, await challenge(gql), recovery[4].replace("-", "")))["token"]


@pytest.fixture
def ten_failures(gql_settings):
    gql_settings.auth.login_failures_per_username = 8
    gql_settings.auth.two_factor_attempts_per_challenge = 5


async def test_wrong_codes_end_the_challenge_and_count_toward_the_log_in_throttle(ten_failures, gql: GQL):
    token, _ = await gql.sign_up("ada")
    totp, _ = await enrol(gql, token)
    good = later_code(totp)
    bad = "123456" if good != "123456" else "654321"
    ch = await challenge(gql)
    for left in (4, 3, 2, 1):
        p = await complete(gql, ch, bad)
        assert codes(p) == ["INVALID_CODE"] and f"{left} more tries" in p["errors"][0]["message"]
    assert codes(await complete(gql, ch, bad)) == ["CHALLENGE_INVALID"]  # the fifth: spent
    assert codes(await complete(gql, ch, good)) == ["CHALLENGE_INVALID"]  # even with the right code
    ch = await challenge(gql)
    for _ in range(3):  # 8 failures of the account in all
        assert codes(await complete(gql, ch, "ZZZZ-ZZZZ-ZZZZ-ZZZZ")) == ["INVALID_CODE"]
    refused = await complete(gql, ch, good)
    assert codes(refused) == ["TOO_MANY_ATTEMPTS"] and refused["token"] is None
    p = (await gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))["logIn"]
    assert codes(p) == ["TOO_MANY_ATTEMPTS"] and p["errors"][0]["retryAfter"] > 0


async def test_expired_and_forged_challenges_are_refused(gql: GQL):
    token, _ = await gql.sign_up("ada")
    totp, _ = await enrol(gql, token)
    ch = await challenge(gql)
    cid = int(ch.split("_")[1])
    for forged in ("tgc_nonsense", f"tgc_{cid}_wrongsecret", "tgs_1_x", ""):
        assert codes(await complete(gql, forged, later_code(totp))) == ["CHALLENGE_INVALID"]
    await gql.tao.obj_update(cid, {"expires_at": 1})
    assert codes(await complete(gql, ch, later_code(totp))) == ["CHALLENGE_INVALID"]
    # an unused challenge is deleted by a job once it expires
    ch2 = int((await challenge(gql)).split("_")[1])
    await gql.tao.run_jobs_until_idle(include_delayed=True)
    assert await gql.tao.obj_get([ch2]) == {}


async def test_disable_needs_the_password(gql: GQL):
    token, _ = await gql.sign_up("ada")
    await enrol(gql, token)
    p = (await gql.ok(DISABLE, {"p": "wrong password"}, token=token))["disableTwoFactor"]
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("INVALID_CREDENTIALS", "password")]
    assert (await gql.ok(STATUS, token=token))["viewer"]["twoFactor"]["enabled"] is True
    assert (await gql.ok(DISABLE, {"p": "password-ada"}, token=token))["disableTwoFactor"]["ok"] is True
    assert (await gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))["logIn"]["token"]
    p = (await gql.ok(DISABLE, {"p": "password-ada"}, token=token))["disableTwoFactor"]
    assert [e["code"] for e in p["errors"]] == ["TWO_FACTOR_NOT_ENABLED"]


@pytest.fixture
def no_grace(gql_settings):
    gql_settings.account_data.deletion_grace_seconds = 0


async def test_deleting_an_account_with_two_factor_leaves_no_residue(no_grace, gql: GQL, gql_settings):
    """TOTP on, a recovery code and a TOTP step used (their unique keys name the user: `totp_step`
    `<user>:<step>`, `recovery_used` `<user>:<generation>:<index>`), a log-in challenge pending:
    deleted and purged, the residue check finds nothing, where before the purge it saw them all."""
    from resolvers.account_data.residue import find_residue
    token, _ = await gql.sign_up("ada")
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    totp, recovery = await enrol(gql, token)  # its step is held by the session
    used_recovery = await challenge(gql)
    assert (await complete(gql, used_recovery, recovery[0]))["token"]
    used_step = await challenge(gql)
    assert (await complete(gql, used_step, later_code(totp)))["token"]  # the enrolment's step released
    pending = await challenge(gql)
    challenges = [int(c.split("_")[1]) for c in (used_recovery, used_step, pending)]

    before = await find_residue(gql.tao, gql_settings, None, uid, challenges)
    keys = {row[:2] for _, table, row in before.rows if table == "unique_keys"}
    assert {"totp_step", "recovery_used"} <= {ns for ns, k in keys if k.startswith(f"{uid}:")}, keys
    assert any(table == "objects" and row[0] == challenges[2] for _, table, row in before.rows)

    # The challenge's expiry job runs elsewhere here (`run_jobs_until_idle` would run it early
    # and delete the pending challenge itself): the purge must find it, and not wait for the job.
    gql.tao.outbox.declare("accounts.end_challenge")
    deleted = (await gql.ok("mutation($p: String!) { deleteAccount(input: {password: $p}) { ok errors { code } } }",
                            {"p": "password-ada"}, token=token))["deleteAccount"]
    assert deleted == {"ok": True, "errors": []}
    await gql.tao.run_jobs_until_idle()

    report = await find_residue(gql.tao, gql_settings, None, uid, challenges)
    assert report.counts == (0, 0, 0), (report.rows, report.cache_keys, report.stored_objects)


async def test_codes_of_a_new_enrolment_after_turning_it_off_work(gql: GQL):
    """Turning two-factor off and on again: the new recovery codes are not refused for the
    old ones' use (their `recovery_used` keys stay claimed; a new enrolment has its own
    generation)."""
    token, _ = await gql.sign_up("ada")
    _, old = await enrol(gql, token)
    assert (await complete(gql, await challenge(gql), old[0]))["token"]
    assert (await gql.ok(DISABLE, {"p": "password-ada"}, token=token))["disableTwoFactor"]["ok"] is True
    started = (await gql.ok(START, {"p": "password-ada"}, token=token))["startTwoFactor"]
    totp = pyotp.TOTP(started["secret"])
    # The next step's code: the first enrolment's step (this one, likely) is claimed already.
    confirmed = (await gql.ok(CONFIRM, {"c": later_code(totp)}, token=token))["confirmTwoFactor"]
    assert confirmed["errors"] == [], confirmed
    new = confirmed["recoveryCodes"]
    done = await complete(gql, await challenge(gql), new[0])  # the index the old code 0 used
    assert done["errors"] == [] and done["token"], done
    assert codes(await complete(gql, await challenge(gql), old[1])) == ["INVALID_CODE"]  # the old set is gone


async def test_a_password_change_ends_the_log_ins_the_old_password_began(gql: GQL):
    """A challenge is what the password earned: someone who had the old one (and is waiting for
    a code, or holds a recovery code) could still finish it after the owner changed the password
    (probe3). It is refused now, as an unknown challenge, and the new password's works."""
    token, _ = await gql.sign_up("ada")
    _, recovery = await enrol(gql, token)
    old = await challenge(gql)
    change = """mutation($i: AccountPasswordChangeInput!) { changePassword(input: $i) { errors { code } } }"""
    got = await gql.ok(change, {"i": {"currentPassword": "password-ada", "newPassword": "a new password"}}, token)
    assert got["changePassword"]["errors"] == []
    late = await complete(gql, old, recovery[0])
    assert codes(late) == ["CHALLENGE_INVALID"] and late["token"] is None
    fresh = (await gql.ok(LOG_IN, {"u": "ada", "p": "a new password"}))["logIn"]["challenge"]
    assert (await complete(gql, fresh, recovery[0]))["token"]  # the recovery code was not spent


async def test_a_second_step_racing_a_password_change_opens_no_session(gql: GQL, monkeypatch):
    """The challenge's password was current when its code was checked, then the owner changed it
    before the session was written: the session is removed and the answer is INVALID_CREDENTIALS
    (it was a working session of the old password, past the change: probe)."""
    import asyncio

    import resolvers.account_data.deletion as deletion

    token, _ = await gql.sign_up("ada")
    totp, _ = await enrol(gql, token)
    ch = await challenge(gql)
    checked, go_on = asyncio.Event(), asyncio.Event()
    real = deletion.cancel_deletion

    async def paused(tao, user_id):  # open_session's first step, once the code has been accepted
        checked.set()
        await go_on.wait()
        return await real(tao, user_id)

    monkeypatch.setattr(deletion, "cancel_deletion", paused)
    second = asyncio.create_task(complete(gql, ch, later_code(totp)))
    await asyncio.wait_for(checked.wait(), 30)
    change = """mutation { changePassword(input: {currentPassword: "password-ada", newPassword: "a new secret 1"})
      { errors { code } } }"""
    assert (await gql.ok(change, token=token))["changePassword"]["errors"] == []
    go_on.set()
    p = await asyncio.wait_for(second, 30)
    assert p["token"] is None and codes(p) == ["INVALID_CREDENTIALS"], p
    uid = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(uid, "HAS_SESSION") == 1  # the owner's alone


async def test_a_wrong_code_for_a_challenge_ended_meanwhile_is_challenge_invalid(gql: GQL):
    """A wrong code read its challenge (alive), another request ended it (completed, or the fifth
    wrong code), then the wrong code's attempt count was written to nothing: an internal error
    (probe). It answers CHALLENGE_INVALID, as for a challenge already ended."""
    from tao.testing import TaoTestHooks

    token, _ = await gql.sign_up("ada")
    totp, _ = await enrol(gql, token)
    ch = await challenge(gql)
    cid = int(ch[len("tgc_"):].partition("_")[0])
    await gql.tao.obj_get([cid])  # cached alive
    hooks = TaoTestHooks(gql.tao)

    async def gone(conn):
        await conn.execute("DELETE FROM {objects} WHERE id = %s", (cid,))

    await hooks.write(hooks.shard(cid), gone)
    wrong = "000000" if later_code(totp) != "000000" else "111111"
    body = await gql(COMPLETE, {"ch": ch, "c": wrong})
    assert "errors" not in body, body
    assert codes(body["data"]["completeLogIn"]) == ["CHALLENGE_INVALID"]


@pytest.fixture
def many_failures(gql_settings):
    gql_settings.auth.login_failures_per_username = 100  # the challenge's own bound is what is tested
    gql_settings.auth.two_factor_attempts_per_challenge = 5


async def test_wrong_codes_sent_at_once_get_the_challenges_tries_only(many_failures, gql: GQL):
    """The challenge's tries were counted by reading its count and writing it plus one: 20 wrong
    codes sent at once all read 0 and were all checked (probe). A challenge's tries are taken
    from a bucket of its own first: 5 are checked, the rest end it."""
    import asyncio

    token, _ = await gql.sign_up("ada")
    totp, _ = await enrol(gql, token)
    ch = await challenge(gql)
    good = later_code(totp)
    wrong = [f"{i:06d}" for i in range(100, 120) if f"{i:06d}" != good and f"{i:06d}" != totp.now()]
    answers = await asyncio.gather(*(complete(gql, ch, c) for c in wrong))
    assert sum(codes(a) == ["INVALID_CODE"] for a in answers) <= 5, [codes(a) for a in answers]
    assert all(codes(a) in (["INVALID_CODE"], ["CHALLENGE_INVALID"]) for a in answers)
    assert codes(await complete(gql, ch, good)) == ["CHALLENGE_INVALID"]
