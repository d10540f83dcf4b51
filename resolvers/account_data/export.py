"""Data export ("download your information"): one zip in object storage, then a signed URL.

`do_request_data_export(tao, user, fmt)` records the request on the USER object
(`data["export"]`: id, format, status, progress) and commits the `account_data.export` job in
the same write. One export at a time: while one is RUNNING, a second request is refused
(EXPORT_IN_PROGRESS) and a repeated request with the same format returns the running one
(idempotent: the client's retry never starts a second job).

The job streams every registered kind (`registry.kinds()`) as `<kind>.json` (a JSON array
written record by record) or `<kind>.html` (a table), plus `README.txt` (each kind's fields)
and every original media file under `media/`, into ONE zip uploaded part by part
(`media_pipeline.write_zip`): worker memory is one part plus a page of records, whatever the
account's size. Progress (parts, bytes, kinds done) is written to the USER object after each
part; when done the status is READY and the archive's key is recorded (clients poll
`viewer.dataExport`; a notification kind for it is still to come). A crash restarts the archive from scratch (a new
multipart upload; the old one is aborted).
"""

from __future__ import annotations

import enum
import html
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import media_pipeline as mp
from resolvers.account_data.registry import DataContext, DataKind, job_media, kinds, register_kind
from resolvers.accounts import check_own_password
from resolvers.errors import UserError
from resolvers.job_context import JobContext
from resolvers.notifications import causes
from resolvers.notifications.model import NotificationType
from resolvers.records import User, record_of
from resolvers.throttle import LoginThrottle, wait_text
from tao import ObjectNotFoundError, Tao, VersionConflictError

EXPORT_JOB = "account_data.export"
DISCARD_JOB = "account_data.discard_export"  # a revoked archive's object goes (durably, by a worker)
RUNNING, READY, FAILED = "RUNNING", "READY", "FAILED"


class DataExportFormat(enum.Enum):
    JSON = "JSON"
    HTML = "HTML"


class DataExportErrorCode(enum.Enum):
    EXPORT_IN_PROGRESS = "EXPORT_IN_PROGRESS"
    EXPORT_TOO_SOON = "EXPORT_TOO_SOON"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"  # the current password is missing or wrong
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"  # the log-in throttle refuses this account or address


def now_ms() -> int:
    return int(time.time() * 1000)


def export_prefix(user_id: int) -> str:
    return f"exports/{user_id}/"


async def _user_data(tao: Tao, user_id: int) -> dict:
    obj = (await tao.obj_get([user_id])).get(user_id)
    return dict(obj.data) if obj is not None else {}


async def check_export_password(tao: Tao, actor_id: int, password: str | None, throttle: LoginThrottle | None,
                                address: str) -> None:
    """An export is every byte of the account: it takes the current password, as Instagram's
    "Download your information" does, so a stolen session alone cannot take it. A wrong one
    counts as a failed log-in of the account and the address (`LoginThrottle`), so this cannot
    be used to guess passwords past the log-in's limits. Before the sixteenth session a session
    was enough."""
    obj = (await tao.obj_get([actor_id])).get(actor_id)
    user = record_of(obj) if obj is not None else None
    if not isinstance(user, User):
        raise UserError(DataExportErrorCode.INVALID_CREDENTIALS, "This account no longer exists.", None)
    if not password:  # checks nothing and counts nothing: an old client that sends no password
        raise UserError(DataExportErrorCode.INVALID_CREDENTIALS,
                        "Enter your current password to download your information.", "password")
    try:
        await check_own_password(tao, user, password, throttle, address, "password")
    except UserError as e:
        if e.retry_after is not None:  # AccountErrorCode.TOO_MANY_ATTEMPTS
            raise UserError(DataExportErrorCode.TOO_MANY_ATTEMPTS, e.message, None, retry_after=e.retry_after) from None
        raise UserError(DataExportErrorCode.INVALID_CREDENTIALS,
                        "Wrong password: no export was started. Enter your current password.", "password") from None


async def do_request_data_export(tao: Tao, actor_id: int, fmt: DataExportFormat, password: str | None, *,
                                 throttle: LoginThrottle | None = None, address: str = "anonymous") -> dict:
    """Start an export (or return the running one of the same format) once the account's
    current password is checked; returns its state."""
    await check_export_password(tao, actor_id, password, throttle, address)
    return await start_data_export(tao, actor_id, fmt)


async def start_data_export(tao: Tao, actor_id: int, fmt: DataExportFormat) -> dict:
    """The export itself, for a caller that has checked who asks (the mutation, a script)."""
    current = (await _user_data(tao, actor_id)).get("export")
    if current and current.get("status") == RUNNING:
        if current.get("format") == fmt.value:
            return current
        raise UserError(DataExportErrorCode.EXPORT_IN_PROGRESS,
                        "An export is already being prepared: wait for it to finish (see viewer.dataExport).",
                        "format")
    if current and current.get("status") == READY:  # a failed one may be retried at once
        wait = int(current["requested_at"]) + tao.settings.account_data.export_interval_seconds * 1000 - now_ms()
        if wait > 0:
            raise UserError(DataExportErrorCode.EXPORT_TOO_SOON,
                            "Your last export is ready (see viewer.dataExport); you can request a new one "
                            f"in {wait_text(wait / 1000)}.", "format")
    export_id = tao.ids.next_id(tao.shard(actor_id))
    state = {"id": str(export_id), "format": fmt.value, "status": RUNNING, "requested_at": now_ms(),
             "parts": 0, "bytes": 0, "kinds_done": 0, "kinds_total": len([k for k in kinds() if k.export])}
    await tao.obj_update(actor_id, {"export": state},
                         jobs=[(EXPORT_JOB, {"user": actor_id, "export": str(export_id)}),
                               *causes.account_notice(NotificationType.DATA_EXPORT_REQUESTED, actor_id,
                                                      int(state["requested_at"]))])
    return state


async def export_state(tao: Tao, user_id: int) -> dict | None:
    return (await _user_data(tao, user_id)).get("export")


async def export_url(tao: Tao, media: Any, state: dict) -> tuple[str | None, int | None]:
    """(signed URL, expires at ms) of a READY export still valid; (None, None) otherwise."""
    if state.get("status") != READY or media is None:
        return None, None
    expires = int(state["expires_at"])
    left = (expires - now_ms()) // 1000
    if left <= 0:
        return None, None
    return await media.store.presign_get(state["key"], int(left)), expires


REVOKED_MESSAGE = ("Your password was changed or your sessions were ended, so the archive was deleted and no "
                   "link to it works any more: request a new export.")


async def revoke_export(tao: Tao, user_id: int) -> None:
    """The account's credentials changed or its sessions were revoked: a READY archive's signed
    URL must stop working, so the archive goes. The export is marked FAILED (saying why; a new
    one may be requested at once) in one write with the job that deletes the object: a signed
    URL cannot be recalled, only the object it names. Before the sixteenth session a URL taken
    with a stolen session kept working for days (`export_url_ttl_seconds`) after the owner
    changed the password and logged out everywhere."""
    for _ in range(5):
        obj = (await tao.obj_get([user_id])).get(user_id)
        state = obj.data.get("export") if obj is not None else None
        if obj is None or not state or state.get("status") != READY:
            return  # nothing with a URL (a RUNNING one's URL will be shown only to live sessions)
        try:
            await tao.obj_update(user_id, {"export": {**state, "status": FAILED, "error": REVOKED_MESSAGE}},
                                 jobs=[(DISCARD_JOB, {"user": user_id, "key": state["key"]})], version=obj.version)
            return
        except VersionConflictError:
            continue  # another write of the profile meanwhile: read the export again


async def discard_export_job(job: JobContext, payload: dict) -> None:
    """`account_data.discard_export`: delete a revoked archive (idempotent)."""
    key = str(payload["key"])
    if not key.startswith(export_prefix(int(payload["user"]))):
        return  # not an archive of this account's: never delete anything else
    await _discard((await job_media(job)).store, key)


async def _json_chunks(kind: DataKind, ctx: DataContext, user: int) -> AsyncIterator[bytes]:
    assert kind.export is not None
    yield b"["
    first = True
    async for rec in kind.export(ctx, user):
        yield (b"" if first else b",") + b"\n" + json.dumps(rec, ensure_ascii=False, default=str).encode()
        first = False
    yield b"\n]\n"


async def _html_chunks(kind: DataKind, ctx: DataContext, user: int) -> AsyncIterator[bytes]:
    assert kind.export is not None
    cols = list(kind.fields)
    head = "".join(f"<th title='{html.escape(kind.fields[c])}'>{html.escape(c)}</th>" for c in cols)
    yield (f"<!doctype html><meta charset='utf-8'><title>{html.escape(kind.title)}</title>"
           f"<p><a href='index.html'>All your information</a></p><h1>{html.escape(kind.title)}</h1>"
           f"<table border='1'><tr>{head}</tr>\n").encode()
    async for rec in kind.export(ctx, user):
        cells = []
        for c in cols:
            v = rec.get(c)
            text = html.escape("" if v is None else v if isinstance(v, str) else json.dumps(v, default=str))
            if c == "file" and v:
                text = f"<a href='{html.escape(str(v))}'>{text}</a>"
            cells.append(f"<td>{text}</td>")
        yield f"<tr>{''.join(cells)}</tr>\n".encode()
    yield b"</table>\n"


def _readme(fmt: DataExportFormat, all_kinds: list[DataKind]) -> bytes:
    lines = ["Your taogram data.", "", f"Each kind of data is one {fmt.value} file; original media are in media/.", ""]
    for k in all_kinds:
        lines.append(f"{k.name}.{fmt.value.lower()}: {k.title}")
        lines += [f"  {f}: {d}" for f, d in k.fields.items()]
    return ("\n".join(lines) + "\n").encode()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _AccountLeavingError(Exception):
    """The account was deleted (or its deletion requested) while its export was being written."""


LEAVING_MESSAGE = "The account is being deleted: the export was stopped and nothing of it was kept."


async def _discard(store: Any, key: str) -> None:
    """Nothing of this archive stays: the object if its upload completed, any upload in progress."""
    for pending in await store.list_multipart(key):
        if pending.key == key:
            await store.abort_multipart(pending.key, pending.multipart_id)
    await store.delete([key])


async def _give_up(tao: Tao, store: Any, user: int, key: str, state: dict | None) -> None:
    """The account is leaving: discard the archive and, while the USER is still there, say why.
    Once it is gone, the store's traces of it go again too: this job's reads may have cached
    its (now empty) lists after the purge swept them."""
    await _discard(store, key)
    if state is not None:
        try:
            await tao.obj_update(user, {"export": {**state, "status": FAILED, "error": LEAVING_MESSAGE}})
            return
        except ObjectNotFoundError:
            pass  # the purge has removed the profile meanwhile: nothing to tell
    await tao.erase_rows([user])  # a no-op while the USER still exists


async def _check_staying(tao: Tao, user: int) -> None:
    obj = (await tao.obj_get([user])).get(user)
    if obj is None or obj.data.get("deletion"):
        raise _AccountLeavingError


async def export_job(job: JobContext, payload: dict) -> None:
    """`account_data.export`: write the archive; idempotent (a finished export is left alone).

    An account being deleted gets no archive, and none of this export stays once the deletion
    is seen: the job checks at its start, before each kind, after every part (the progress
    write answers the USER as it is) and with the READY write, and discards the object (and
    any upload) if the account is deactivated or gone. Before, an export that ran while the purge did (started after the
    purge's `exports` kind, or retried then) completed its upload after the purge had looked,
    and the archive outlived the account. The READY write and the deletion's write are both
    writes of the USER row: if the deletion comes first the export sees it and discards; if it
    comes after, the purge (which starts later still) finds the completed object and deletes it."""
    tao = job.tao
    user = int(payload["user"])
    key = f"{export_prefix(user)}{payload['export']}.zip"
    obj = (await tao.obj_get([user])).get(user)
    data = dict(obj.data) if obj is not None else {}
    state: dict | None = data.get("export")
    mine = state is not None and state.get("id") == payload["export"] and state.get("status") == RUNNING
    if obj is None or (mine and data.get("deletion")):
        # Gone or leaving: an earlier run of this job may have completed the upload before dying.
        await _give_up(tao, (await job_media(job)).store, user, key, state if obj is not None else None)
        return
    if not mine:
        return  # finished, or superseded
    assert state is not None
    await job_media(job)
    fmt = DataExportFormat(state["format"])
    ctx = DataContext(tao, job.settings, job.media)
    s = job.settings.account_data
    all_kinds = [k for k in kinds() if k.export is not None]
    done = {"kinds": 0, "parts": 0}

    async def progress(parts: int, nbytes: int) -> None:
        done["parts"] = parts
        try:
            now = await tao.obj_update(user, {"export": {**state, "parts": parts, "bytes": nbytes,
                                                         "kinds_done": done["kinds"]}})
        except ObjectNotFoundError:
            raise _AccountLeavingError from None
        if now.data.get("deletion"):
            raise _AccountLeavingError  # write_zip aborts the upload (or, after it completed, we discard)

    async def members() -> AsyncIterator[Any]:
        yield mp.member("README.txt", _once(_readme(fmt, all_kinds)))
        if fmt is DataExportFormat.HTML:
            links = "".join(f"<li><a href='{k.name}.html'>{html.escape(k.title)}</a></li>" for k in all_kinds)
            yield mp.member("index.html", _once(f"<!doctype html><meta charset='utf-8'><title>Your information"
                                                f"</title><h1>Your information</h1><ul>{links}</ul>".encode()))
        for kind in all_kinds:
            await _check_staying(tao, user)  # between kinds too: no reading a purged account's lists
            chunks = _json_chunks(kind, ctx, user) if fmt is DataExportFormat.JSON else _html_chunks(kind, ctx, user)
            yield mp.member(f"{kind.name}.{fmt.value.lower()}", chunks)
            done["kinds"] += 1
            if kind.files is not None:
                async for f in kind.files(ctx, user):
                    yield mp.member(f"media/{f.name}", mp.stored_chunks(job.media.store, f.key))

    try:
        size = await mp.write_zip(job.media.store, key, members(), s.export_part_size, progress=progress)
    except mp.MediaError:
        raise  # transient store trouble: the outbox retries the whole archive
    except _AccountLeavingError:
        await _give_up(tao, job.media.store, user, key, state)
        return
    finished = now_ms()
    ready = {**state, "status": READY, "key": key, "bytes": size, "parts": done["parts"], "kinds_done": len(all_kinds),
             "finished_at": finished, "expires_at": finished + s.export_url_ttl_seconds * 1000}
    try:
        now = await tao.obj_update(user, {"export": ready})
    except ObjectNotFoundError:
        await _give_up(tao, job.media.store, user, key, None)
        return
    if now.data.get("deletion"):
        await _give_up(tao, job.media.store, user, key, state)


# Exports are the user's data too: the purge deletes the archives (the USER record that names
# them goes last, with the profile).
async def _purge_exports(ctx: DataContext, user: int) -> int:
    if ctx.media is None:
        return 0
    keys = (await ctx.media.store.list_keys(export_prefix(user)))[:ctx.batch]
    for pending in await ctx.media.store.list_multipart(export_prefix(user)):
        await ctx.media.store.abort_multipart(pending.key, pending.multipart_id)
    if keys:
        await ctx.media.store.delete(keys)
    return len(keys)


async def _exports_residue(ctx: DataContext, user: int) -> list[str]:
    return await ctx.media.store.list_keys(export_prefix(user)) if ctx.media is not None else []


register_kind(DataKind("exports", "Data exports", 95, {}, None, _purge_exports, None, _exports_residue))
