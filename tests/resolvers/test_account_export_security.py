"""A data export against a stolen session: it takes the current password, and its download link
dies with the credentials.

Before the sixteenth session `requestDataExport` needed only a session, so anyone holding a
stolen token could take every byte of the account; and the signed URL of a ready archive kept
working for days after the owner changed the password or logged out everywhere."""

from __future__ import annotations

import pytest

from tests.resolvers.test_account_data import api, media_settings  # noqa: F401  (fixtures)

EXPORT = """mutation($p: String) { requestDataExport(input: {format: JSON, password: $p}) {
  export { id status } errors { code field message retryAfter } } }"""
STATUS = "query { dataExport { id status url } }"
LOGIN = """mutation($p: String!) { logIn(input: {username: "ada", password: $p}) { token errors { code } } }"""
PASSWORD = """mutation($i: AccountPasswordChangeInput!) { changePassword(input: $i) { errors { code } } }"""
SESSIONS = "query { viewer { sessions { id current } } }"
REVOKE = "mutation($i: SessionRevokeInput!) { revokeSession(input: $i) { errors { code } } }"
REVOKE_OTHERS = "mutation { revokeOtherSessions { revokedCount errors { code } } }"
LOG_OUT_ALL = "mutation { logOut(input: {allSessions: true}) { errors { code } } }"
RIGHT = "password-ada"


def codes(p: dict) -> list[str]:
    return [e["code"] for e in p["errors"]]


async def test_an_export_needs_the_current_password_through_the_log_in_throttle(api, media_settings):
    gql, _ = api
    media_settings.auth.login_failures_per_username = 3
    token, _ = await gql.sign_up("ada")
    for password in (None, ""):  # an old client's request: told what to send, nothing counted
        p = (await gql.ok(EXPORT, {"p": password}, token))["requestDataExport"]
        assert codes(p) == ["INVALID_CREDENTIALS"] and p["errors"][0]["field"] == "password" and p["export"] is None
        assert "current password" in p["errors"][0]["message"]
    for _ in range(3):
        p = (await gql.ok(EXPORT, {"p": "a guess at it"}, token))["requestDataExport"]
        assert codes(p) == ["INVALID_CREDENTIALS"] and p["export"] is None
    assert (await gql.ok(STATUS, token=token))["dataExport"] is None  # nothing was started
    # the guesses counted as failed log-ins: now even the right one is refused, here and at log-in
    p = (await gql.ok(EXPORT, {"p": RIGHT}, token))["requestDataExport"]
    assert codes(p) == ["TOO_MANY_ATTEMPTS"] and p["errors"][0]["retryAfter"] > 0 and p["export"] is None
    assert codes((await gql.ok(LOGIN, {"p": RIGHT}))["logIn"]) == ["TOO_MANY_ATTEMPTS"]
    assert (await gql.ok(STATUS, token=token))["dataExport"] is None


async def test_the_right_password_starts_the_export(api, media_settings):
    gql, _ = api
    token, _ = await gql.sign_up("ada")
    p = (await gql.ok(EXPORT, {"p": RIGHT}, token))["requestDataExport"]
    assert p["errors"] == [] and p["export"]["status"] == "RUNNING"
    # a retry is idempotent, and takes the password too
    again = (await gql.ok(EXPORT, {"p": RIGHT}, token))["requestDataExport"]
    assert again["export"]["id"] == p["export"]["id"]
    assert codes((await gql.ok(EXPORT, {"p": "wrong one"}, token))["requestDataExport"]) == ["INVALID_CREDENTIALS"]


async def _ready_url(gql, http, token, password: str = RIGHT) -> str:
    assert (await gql.ok(EXPORT, {"p": password}, token))["requestDataExport"]["errors"] == []
    await gql.tao.run_jobs_until_idle()
    st = (await gql.ok(STATUS, token=token))["dataExport"]
    assert st["status"] == "READY" and st["url"]
    async with http.get(st["url"]) as r:
        assert r.status == 200
        await r.read()
    return st["url"]


async def _dead(gql, http, url: str, token: str, password: str = RIGHT) -> None:
    await gql.tao.run_jobs_until_idle()
    async with http.get(url) as r:
        assert r.status in (403, 404), r.status
        await r.read()
    st = (await gql.ok(STATUS, token=token))["dataExport"]
    assert st["status"] == "FAILED" and st["url"] is None
    # the owner may ask for a new one at once (no EXPORT_TOO_SOON), and it works
    new = await _ready_url(gql, http, token, password)
    assert new != url


async def _other_session(gql) -> str:
    return (await gql.ok(LOGIN, {"p": RIGHT}))["logIn"]["token"]


@pytest.mark.parametrize("how", ["changePassword", "revokeOtherSessions", "revokeSession", "logOutAll"])
async def test_a_download_link_stops_working_when_the_credentials_change_or_sessions_are_revoked(
        api, media_settings, how):
    gql, http = api
    media_settings.account_data.export_interval_seconds = 3600
    owner, _ = await gql.sign_up("ada")
    thief = await _other_session(gql)  # a stolen session takes the link
    url = await _ready_url(gql, http, thief)
    if how == "changePassword":
        i = {"currentPassword": RIGHT, "newPassword": "a brand new secret"}
        assert (await gql.ok(PASSWORD, {"i": i}, owner))["changePassword"]["errors"] == []
    elif how == "revokeOtherSessions":
        assert (await gql.ok(REVOKE_OTHERS, token=owner))["revokeOtherSessions"]["revokedCount"] == 1
    elif how == "revokeSession":
        sessions = (await gql.ok(SESSIONS, token=owner))["viewer"]["sessions"]
        (other,) = [s["id"] for s in sessions if not s["current"]]
        assert (await gql.ok(REVOKE, {"i": {"id": other}}, owner))["revokeSession"]["errors"] == []
    else:
        assert (await gql.ok(LOG_OUT_ALL, token=owner))["logOut"]["errors"] == []
        owner = await _other_session(gql)
    await _dead(gql, http, url, owner, "a brand new secret" if how == "changePassword" else RIGHT)


async def test_logging_out_of_this_session_keeps_the_link(api, media_settings):
    gql, http = api
    owner, _ = await gql.sign_up("ada")
    other = await _other_session(gql)
    url = await _ready_url(gql, http, owner)
    assert (await gql.ok("mutation { logOut { errors { code } } }", token=other))["logOut"]["errors"] == []
    await gql.tao.run_jobs_until_idle()
    async with http.get(url) as r:
        assert r.status == 200
        await r.read()
    assert (await gql.ok(STATUS, token=owner))["dataExport"]["status"] == "READY"


def test_the_server_refuses_the_public_media_signing_key_where_the_other_keys_are_real() -> None:
    """With the local object store, a data export's URL is signed with `media.signing_key`: left
    at the built-in value (it is in the source), anyone could sign a URL to any archive
    (`exports/<user id>/<export id>.zip`; ids are not secrets). A deployment with its own message
    and cursor keys that forgot this one now fails to start (probe, sixteenth session)."""
    from config import ConfigError, Settings
    from server import create_app

    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    real = {"server": {"cursor_keys": {"k": key}, "cursor_key": "k"},
            "messages": {"encryption_keys": {"m": key}, "active_key": "m"}}
    with pytest.raises(ConfigError, match="media.signing_key is the built-in development key"):
        create_app(Settings.model_validate(real))
    assert create_app(Settings.model_validate({**real, "media": {"signing_key": "a long random secret of its own"}}))
    assert create_app(Settings.model_validate({**real, "media": {"backend": "s3"}}))  # the key signs nothing there
    assert create_app(Settings.model_validate({}))  # development: every key built in
