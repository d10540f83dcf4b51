"""Sessions and devices through GraphQL: `viewer.sessions`, revoking one or the others, a
password change ending the other sessions, the new-device notification, `lastUsedAt` written
at most once per interval, and the bad inputs (another account's session, a wrong password)."""

from __future__ import annotations

import pytest

from resolvers.accounts import _parse_token
from resolvers.realtime import CLOSE_FORBIDDEN
from tests.schema.client import GQL, password_of
from tests.wsclient import WSClient

MAC_CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
MAC_CHROME_NEWER = MAC_CHROME.replace("Chrome/120", "Chrome/121")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")
SESSIONS = "{ viewer { sessions { id device ipAddress createdAt lastUsedAt current } } }"
LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token challenge errors { code message field retryAfter } }
}"""
REVOKE = "mutation($id: ID!) { revokeSession(input: {id: $id}) { ok errors { code message field } } }"
REVOKE_OTHERS = "mutation { revokeOtherSessions { revokedCount errors { code } } }"
CHANGE = """mutation($c: String!, $n: String!) {
  changePassword(input: {currentPassword: $c, newPassword: $n}) { ok errors { code message field } }
}"""
NOTIFICATIONS = "{ viewer { notifications(first: 10) { edges { node { type preview } } } } }"


async def post(gql: GQL, query: str, variables: dict | None = None, token: str | None = None,
               agent: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if agent is not None:
        headers["User-Agent"] = agent
    status, body = await gql.post(query, variables, headers=headers)
    assert status == 200, body
    return body


async def sign_up(gql: GQL, name: str, agent: str = MAC_CHROME) -> str:
    body = await post(gql, "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token errors { code } } }",
                      {"i": {"username": name, "password": password_of(name)}}, agent=agent)
    return body["data"]["signUp"]["token"]


async def log_in(gql: GQL, name: str, agent: str = MAC_CHROME, password: str | None = None) -> dict:
    body = await post(gql, LOG_IN, {"u": name, "p": password or password_of(name)}, agent=agent)
    return body["data"]["logIn"]


async def sessions(gql: GQL, token: str) -> list[dict]:
    return (await gql.ok(SESSIONS, token=token))["viewer"]["sessions"]


async def works(gql: GQL, token: str) -> bool:
    status, _ = await gql.post("{ viewer { id } }", token=token)
    return status == 200


async def test_sessions_list_devices_addresses_and_the_current_one(gql: GQL):
    first = await sign_up(gql, "ada")
    phone = (await log_in(gql, "ada", IPHONE))["token"]
    listed = await sessions(gql, phone)
    assert [s["device"] for s in listed] == ["Mobile Safari 17 on iOS 17.1 (iPhone)", "Chrome 120 on Mac OS X 10.15"]
    assert [s["current"] for s in listed] == [True, False]
    assert all(s["ipAddress"] == "127.0.0.1" and s["lastUsedAt"] >= s["createdAt"] > 0 for s in listed)
    assert [s["current"] for s in await sessions(gql, first)] == [False, True]
    await gql.tao.obj_update(_parse_token(phone)[0], {"expires_at": 1})  # expired, not yet cleaned up
    assert [s["device"] for s in await sessions(gql, first)] == ["Chrome 120 on Mac OS X 10.15"]
    # Another account's sessions are not part of its profile
    other = await sign_up(gql, "bob")
    body = await gql('{ user(username: "ada") { sessions { id } } }', token=other)
    assert body["data"]["user"] is None or body["data"]["user"]["sessions"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_revoke_one_session_and_the_others(gql: GQL):
    tokens = [await sign_up(gql, "ada")] + [(await log_in(gql, "ada"))["token"] for _ in range(3)]
    listed = await sessions(gql, tokens[0])
    target = listed[0]  # the newest: tokens[3]
    assert (await gql.ok(REVOKE, {"id": target["id"]}, token=tokens[0]))["revokeSession"] == {"ok": True, "errors": []}
    assert not await works(gql, tokens[3]) and await works(gql, tokens[2])
    assert (await gql.ok(REVOKE_OTHERS, token=tokens[1]))["revokeOtherSessions"]["revokedCount"] == 2
    assert [await works(gql, t) for t in tokens] == [False, True, False, False]
    assert len(await sessions(gql, tokens[1])) == 1


async def test_revoking_another_accounts_session_is_refused_changes_nothing_and_is_counted(gql_settings, gql: GQL):
    ada = await sign_up(gql, "ada")
    bob = await sign_up(gql, "bob")
    bobs = (await sessions(gql, bob))[0]["id"]
    limit = gql_settings.auth.login_failures_per_username
    for _ in range(limit):
        p = (await gql.ok(REVOKE, {"id": bobs}, token=ada))["revokeSession"]
        assert p["ok"] is False and [(e["code"], e["field"]) for e in p["errors"]] == [("SESSION_NOT_FOUND", "id")]
    assert await works(gql, bob) and len(await sessions(gql, bob)) == 1  # nothing changed
    # the failures counted toward ada's throttle: her next attempt is refused before any check
    p = (await gql.ok(REVOKE, {"id": bobs}, token=ada))["revokeSession"]
    assert [e["code"] for e in p["errors"]] == ["TOO_MANY_ATTEMPTS"]
    body = await gql(REVOKE, {"id": "not an id"}, token=ada)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_change_password_ends_the_other_sessions(gql: GQL):
    first = await sign_up(gql, "ada")
    second = (await log_in(gql, "ada"))["token"]
    p = (await gql.ok(CHANGE, {"c": "wrong password", "n": "a new password"}, token=first))["changePassword"]
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("INVALID_CREDENTIALS", "currentPassword")]
    p = (await gql.ok(CHANGE, {"c": "password-ada", "n": "short"}, token=first))["changePassword"]
    assert [(e["code"], e["field"]) for e in p["errors"]] == [("PASSWORD_INVALID", "newPassword")]
    assert await works(gql, second)  # nothing changed by the refusals
    assert (await log_in(gql, "ada"))["token"]
    p = (await gql.ok(CHANGE, {"c": "password-ada", "n": "a new password"}, token=first))["changePassword"]
    assert p == {"ok": True, "errors": []}
    assert await works(gql, first) and not await works(gql, second)
    assert [e["code"] for e in (await log_in(gql, "ada"))["errors"]] == ["INVALID_CREDENTIALS"]
    assert (await log_in(gql, "ada", password="a new password"))["token"]


async def test_changing_the_password_to_the_same_one_is_refused_and_changes_nothing(gql: GQL):
    """`changePassword` with the current password as the new one answered ok, stored a new hash
    of the same password and ended every other session: a change that changed nothing a user
    would call a change. It is a clear error now, and nothing happens."""
    first = await sign_up(gql, "ada")
    second = (await log_in(gql, "ada"))["token"]
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    before = (await gql.tao.obj_get([ada]))[ada].data["password_hash"]
    p = (await gql.ok(CHANGE, {"c": "password-ada", "n": "password-ada"}, token=first))["changePassword"]
    assert p["ok"] is False and [(e["code"], e["field"]) for e in p["errors"]] == [("PASSWORD_UNCHANGED",
                                                                                    "newPassword")]
    assert "current password" in p["errors"][0]["message"]
    assert await works(gql, first) and await works(gql, second)
    assert (await gql.tao.obj_get([ada]))[ada].data["password_hash"] == before
    # a wrong current password is still the answer when that is wrong too (nothing is revealed)
    p = (await gql.ok(CHANGE, {"c": "not it at all", "n": "not it at all"}, token=first))["changePassword"]
    assert [e["code"] for e in p["errors"]] == ["INVALID_CREDENTIALS"]


async def test_a_log_in_from_a_new_device_notifies_the_account(gql: GQL):
    token = await sign_up(gql, "ada", MAC_CHROME)
    await log_in(gql, "ada", MAC_CHROME_NEWER)  # the same browser, updated: not a new device
    await gql.tao.run_jobs_until_idle()
    assert (await gql.ok(NOTIFICATIONS, token=token))["viewer"]["notifications"]["edges"] == []
    await log_in(gql, "ada", IPHONE)
    await log_in(gql, "ada", IPHONE)  # known now
    await gql.tao.run_jobs_until_idle()
    edges = (await gql.ok(NOTIFICATIONS, token=token))["viewer"]["notifications"]["edges"]
    assert [e["node"]["type"] for e in edges] == ["NEW_DEVICE_LOGIN"]
    assert "new device" in edges[0]["node"]["preview"]


async def test_last_used_is_written_at_most_once_per_interval(gql: GQL):
    token = await sign_up(gql, "ada")
    sid = _parse_token(token)[0]
    before = (await gql.tao.obj_get([sid]))[sid]
    for _ in range(3):
        assert await works(gql, token)
    assert (await gql.tao.obj_get([sid]))[sid].version == before.version  # no write per request
    await gql.tao.obj_update(sid, {"last_used": before.data["last_used"] - 61_000})
    assert await works(gql, token)
    after = (await gql.tao.obj_get([sid]))[sid]
    assert after.data["last_used"] >= before.data["last_used"]
    assert after.version == before.version + 2  # our rewind, then one touch


async def test_a_revoked_sessions_websocket_closes_with_4403(gql: GQL):
    token = await sign_up(gql, "ada")
    sock = await WSClient.connect(gql.client, "/graphql", token)
    await sock.subscribe("q", "{ viewer { username } }")
    assert (await sock.next_data("q"))["viewer"]["username"] == "ada"
    other = (await log_in(gql, "ada"))["token"]
    mine = [s["id"] for s in await sessions(gql, other) if not s["current"]]
    await gql.ok(REVOKE, {"id": mine[0]}, token=other)
    assert await sock.wait_closed(timeout=10) == CLOSE_FORBIDDEN
    assert "revoked" in sock.close_reason


@pytest.fixture
def two_per_hour(gql_settings):
    gql_settings.throttle.follows_per_hour, gql_settings.throttle.follows_per_day = 2, 3


async def test_action_limits_refuse_with_retry_after(two_per_hour, gql: GQL):
    token, _ = await gql.sign_up("ada")
    ids = [(await gql.sign_up(f"u{i}"))[1] for i in range(3)]
    follow = "mutation($id: ID!) { follow(input: {userId: $id}) { errors { code } } }"
    for uid in ids[:2]:
        assert (await gql.ok(follow, {"id": uid}, token=token))["follow"]["errors"] == []
    body = await gql(follow, {"id": ids[2]}, token=token)
    error = body["errors"][0]
    assert error["extensions"]["code"] == "THROTTLED" and body["data"] is None
    assert 0 < error["extensions"]["retryAfter"] <= 1800 and "2 follows an hour" in error["message"]
    assert "try again in" in error["message"]
    # nothing was done: u2 has no follower
    assert (await gql.ok('{ user(username: "u2") { followerCount } }', token=token))["user"]["followerCount"] == 0


async def test_a_session_ended_while_its_request_touches_it_is_unauthenticated(gql: GQL):
    """A request read its session (still there), another ended it, then the first rewrote its
    `lastUsedAt`: the write found no session and the request failed as an internal error
    (probe). It answers UNAUTHENTICATED, as for a session already ended."""
    from resolvers.accounts import _parse_token
    from tao.testing import TaoTestHooks

    token, _ = await gql.sign_up("ada")
    sid = _parse_token(token)[0]
    hooks = TaoTestHooks(gql.tao)
    await gql.tao.obj_update(sid, {"last_used": 1})  # due for its touch
    await gql.tao.obj_get([sid])  # and cached as it is

    async def gone(conn):  # ended in SQL, the cache not yet told: the request reads it alive
        await conn.execute("DELETE FROM {objects} WHERE id = %s", (sid,))

    await hooks.write(hooks.shard(sid), gone)
    status, body = await gql.post("{ viewer { username } }", token=token)
    assert "errors" in body and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (status, body)
