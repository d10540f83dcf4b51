"""Security notices: the account hears when its password or username changes or a download of
its data is requested (`PASSWORD_CHANGED`, `USERNAME_CHANGED`, `DATA_EXPORT_REQUESTED`), as
Instagram sends "your password was changed". Before, nothing told its owner: someone holding a
session could rename the account or take a copy of its data unseen (the sixteenth session's
closing note). Each change is its own notification, for the owner alone, in their data export
and gone with their deletion, as every notification is."""

from __future__ import annotations

from resolvers.account_data.registry import DataContext, kinds
from tests.resolvers.messages_client import store_id

NOTES = "{ viewer { notifications(first: 20) { edges { node { type actorCount preview target { id } } } } } }"
CHANGE = """mutation($c: String!, $n: String!) {
  changePassword(input: {currentPassword: $c, newPassword: $n}) { ok errors { code } } }"""
RENAME = """mutation($u: String!) { updateProfile(input: {username: $u}) { errors { code } } }"""
EXPORT = """mutation { requestDataExport(input: {format: JSON, password: "password-ada"}) {
  errors { code } } }"""


async def _notes(gql, token: str) -> list[tuple[str, int, str]]:
    edges = (await gql.ok(NOTES, token=token))["viewer"]["notifications"]["edges"]
    assert all(e["node"]["target"] is None for e in edges)
    return [(e["node"]["type"], e["node"]["actorCount"], e["node"]["preview"]) for e in edges]


async def test_password_username_and_export_changes_notify_the_owner_alone(gql):
    ta, a = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    p = (await gql.ok(CHANGE, {"c": "password-ada", "n": "a much better secret"}, ta))["changePassword"]
    assert p == {"ok": True, "errors": []}
    assert (await gql.ok(RENAME, {"u": "ada_two"}, ta))["updateProfile"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await _notes(gql, ta) == [
        ("USERNAME_CHANGED", 1, "ada_two is your username now: if you did not change it, change your password"),
        ("PASSWORD_CHANGED", 1, "ada_two had its password changed: if it was not you, secure your account now")]
    p = (await gql.ok(CHANGE, {"c": "a much better secret", "n": "password-ada"}, ta))["changePassword"]
    assert p == {"ok": True, "errors": []}
    assert (await gql.ok(EXPORT, token=ta))["requestDataExport"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    # each change is a notification of its own, the newest first
    assert [t for t, _, _ in await _notes(gql, ta)] == [
        "DATA_EXPORT_REQUESTED", "PASSWORD_CHANGED", "USERNAME_CHANGED", "PASSWORD_CHANGED"]
    assert await _notes(gql, tb) == []
    # refused changes tell nobody
    bad = (await gql.ok(CHANGE, {"c": "wrong", "n": "another secret"}, ta))["changePassword"]
    assert bad["ok"] is False
    assert (await gql.ok(RENAME, {"u": "bob"}, ta))["updateProfile"]["errors"] == [{"code": "USERNAME_TAKEN"}]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert len(await _notes(gql, ta)) == 4
    # in the owner's data export, and gone with the account's purge, as every notification is
    ada = store_id(a)
    ctx = DataContext(gql.tao, gql.tao.settings)
    [kind] = [k for k in kinds() if k.name == "notifications"]
    assert kind.export is not None and kind.purge is not None
    exported = [r["type"] async for r in kind.export(ctx, ada)]
    assert exported == ["DATA_EXPORT_REQUESTED", "PASSWORD_CHANGED", "USERNAME_CHANGED", "PASSWORD_CHANGED"]
    while await kind.purge(ctx, ada):
        pass
    assert await gql.tao.assoc_count(ada, "NOTIFIED") == 0


async def test_a_notice_the_owner_turned_off_is_not_stored(gql):
    ta, _ = await gql.sign_up("ada")
    prefs = """mutation { updateNotificationPreferences(input: {settings: [{type: PASSWORD_CHANGED, level: OFF}]}) {
      errors { code } } }"""
    assert (await gql.ok(prefs, token=ta))["updateNotificationPreferences"]["errors"] == []
    p = (await gql.ok(CHANGE, {"c": "password-ada", "n": "a much better secret"}, ta))["changePassword"]
    assert p["ok"] is True
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert await _notes(gql, ta) == []
