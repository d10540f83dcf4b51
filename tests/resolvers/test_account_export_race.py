"""An export that meets its account's deletion leaves nothing behind (docs/accounts.md, "Export").

Before, the export job only checked, at its start, that its export was still RUNNING: one that
ran while the purge did (queued behind other work, or retried) after the purge's `exports` kind
had looked completed its upload, and the archive outlived the account: the residue check found
it after the purge (probe). Now the job checks at its start, after every part and with its READY
write, and discards the object and any upload once the account is deactivated or gone.
"""

from __future__ import annotations

import asyncio
import dataclasses

from resolvers.account_data import registry
from resolvers.account_data.export import DataExportFormat, export_job, export_prefix, start_data_export
from resolvers.account_data.residue import find_residue
from resolvers.job_context import JobContext
from server import MEDIA_KEY
from tao.testing import TaoTestHooks as hooks
from tests.resolvers.test_account_data import DELETE, STATUS, api, media_settings, store_id  # noqa: F401


async def _export_queued_not_run(gql, uid: int) -> dict:
    """A RUNNING export whose job has not run yet (taken out of the outbox: the test runs it)."""
    state = await start_data_export(gql.tao, uid, DataExportFormat.JSON)

    async def drop(conn):
        await conn.execute("DELETE FROM {outbox} WHERE handler = %s", ("account_data.export",))

    for shard in range(gql.tao.n_shards):
        await hooks(gql.tao).write(shard, drop)
    return state


def _pause(monkeypatch, kind_name: str, step: str = "purge") -> tuple[asyncio.Event, asyncio.Event]:
    inside, go_on = asyncio.Event(), asyncio.Event()
    kind = registry._KINDS[kind_name]
    real = getattr(kind, step)
    assert real is not None

    if step == "purge":

        async def paused(ctx, user):
            inside.set()
            await go_on.wait()
            return await real(ctx, user)
    else:

        async def paused(ctx, user):  # type: ignore[misc]
            inside.set()
            await go_on.wait()
            async for rec in real(ctx, user):
                yield rec

    monkeypatch.setitem(registry._KINDS, kind_name, dataclasses.replace(kind, **{step: paused}))
    return inside, go_on


async def _nothing_left(gql, media_settings, uid: int) -> None:
    media = gql.client.app[MEDIA_KEY]
    assert await media.store.list_keys(export_prefix(uid)) == []
    assert await media.store.list_multipart(export_prefix(uid)) == []
    report = await find_residue(gql.tao, media_settings, media, uid)
    assert report.counts == (0, 0, 0), (report.rows, report.cache_keys, report.stored_objects)


async def test_an_export_run_while_the_purge_is_past_exports_leaves_no_archive(api, media_settings, monkeypatch):
    gql, _ = api
    ta, a = await gql.sign_up("ada")
    uid = store_id(a)
    state = await _export_queued_not_run(gql, uid)
    inside, go_on = _pause(monkeypatch, "profile")  # the purge, past its `exports` kind
    assert (await gql.ok(DELETE, {"i": {"password": "password-ada"}}, ta))["deleteAccount"]["ok"]
    purge = asyncio.create_task(gql.tao.run_jobs_until_idle())
    await asyncio.wait_for(inside.wait(), 60)
    media = gql.client.app[MEDIA_KEY]
    await export_job(JobContext(gql.tao, media_settings, media), {"user": uid, "export": state["id"]})
    assert await media.store.list_keys(export_prefix(uid)) == []  # no archive of a leaving account
    assert (await gql.tao.obj_get([uid]))[uid].data["export"]["status"] == "FAILED"
    go_on.set()
    await asyncio.wait_for(purge, 120)
    await _nothing_left(gql, media_settings, uid)


async def test_an_export_overtaken_by_the_whole_purge_leaves_nothing(api, media_settings, monkeypatch):
    """The export is half written when the account is deleted and purged; then it goes on."""
    gql, _ = api
    ta, a = await gql.sign_up("ada")
    uid = store_id(a)
    state = await _export_queued_not_run(gql, uid)
    inside, go_on = _pause(monkeypatch, "posts", "export")
    media = gql.client.app[MEDIA_KEY]
    export = asyncio.create_task(
        export_job(JobContext(gql.tao, media_settings, media), {"user": uid, "export": state["id"]})
    )
    await asyncio.wait_for(inside.wait(), 60)
    assert (await gql.ok(DELETE, {"i": {"password": "password-ada"}}, ta))["deleteAccount"]["ok"]
    await asyncio.wait_for(gql.tao.run_jobs_until_idle(), 120)
    assert (await gql.tao.obj_get([uid])).get(uid) is None  # purged
    go_on.set()
    try:
        await asyncio.wait_for(export, 60)
    except Exception:  # its upload was aborted by the purge: the outbox would run it again
        await export_job(JobContext(gql.tao, media_settings, media), {"user": uid, "export": state["id"]})
    await _nothing_left(gql, media_settings, uid)


async def test_an_export_that_sees_the_deletion_stops_and_says_why(api, media_settings, monkeypatch):
    """Deleted (an hour's grace) while its archive is written: no archive, status FAILED; a
    log-in cancels the deletion and a new export may be requested at once."""
    gql, _ = api
    media_settings.account_data.deletion_grace_seconds = 3600
    gql.tao.settings.account_data.deletion_grace_seconds = 3600
    ta, a = await gql.sign_up("ada")
    uid = store_id(a)
    state = await _export_queued_not_run(gql, uid)
    inside, go_on = _pause(monkeypatch, "posts", "export")
    media = gql.client.app[MEDIA_KEY]
    export = asyncio.create_task(
        export_job(JobContext(gql.tao, media_settings, media), {"user": uid, "export": state["id"]})
    )
    await asyncio.wait_for(inside.wait(), 60)
    assert (await gql.ok(DELETE, {"i": {"password": "password-ada"}}, ta))["deleteAccount"]["ok"]
    go_on.set()
    await asyncio.wait_for(export, 60)
    assert await media.store.list_keys(export_prefix(uid)) == []
    assert await media.store.list_multipart(export_prefix(uid)) == []
    assert (await gql.tao.obj_get([uid]))[uid].data["export"]["status"] == "FAILED"
    login = 'mutation { logIn(input: {username: "ada", password: "password-ada"}) { token } }'
    token = (await gql.ok(login))["logIn"]["token"]
    assert (await gql.ok(STATUS, token=token))["dataExport"]["status"] == "FAILED"
    again = await gql.ok('mutation { requestDataExport(input: {format: JSON, password: "password-ada"}) '
                         '{ errors { code } } }', token=token)
    assert again["requestDataExport"]["errors"] == []
