"""Account deletion: deactivate at once, purge after the grace period, prove nothing remains.

`do_delete_account(tao, user, password)` checks the password (a wrong one counts toward the
log-in throttle), then in ONE write marks the USER deactivated (`data["deletion"]`) and commits
the purge job, delayed by `account_data.deletion_grace_seconds`; then it ends every session.
From that write on, privacy (`resolvers.privacy`, one rule: a deactivated user is HIDDEN to
everyone) hides the account, its posts, comments, likes and follow-list entries on every surface.
Logging in within the grace period cancels (`cancel_deletion`, called by log-in).

The purge job (`account_data.purge`) walks the registered kinds in order; each run does at most
`purge_batches_per_run` bounded batches, records its progress on the USER object
(`deletion.kind`, `deletion.removed`), and re-enqueues itself, so a crash anywhere loses at most
one batch's bookkeeping and the next run (the outbox retries the job) resumes from what is left.
The last phase waits until every job queued before it has run (their follow-ups, e.g. feed
removals), then erases the store's own traces (`tao.erase_rows`, `tao.sweep_cache`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from resolvers import dormant
from resolvers.account_data.registry import DataContext, job_media, kinds, scheduled_handlers
from resolvers.accounts import AccountErrorCode, attempt_succeeded, do_log_out, take_attempt
from resolvers.errors import UserError
from resolvers.job_context import JobContext
from resolvers.passwords import verify_password
from resolvers.posts import SYNC_AUTHOR_EDGES_JOB
from resolvers.records import User, record_of
from resolvers.search.indexer import deindex_user_jobs, index_jobs
from resolvers.throttle import LoginThrottle
from tao import JobNotDueError, Tao
from tao.types import DELETION_OUTCOME_KEYS

PURGE_JOB = "account_data.purge"
FORGET_JOB = "account_data.forget"
FINISH = "finish"

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class DeletionState:
    requested_at: int
    purge_after: int
    kind: str | None     # the kind being purged (None: not started)
    removed: int         # items removed so far

    @classmethod
    def of(cls, user: Any) -> DeletionState | None:
        d = (user.data if hasattr(user, "data") else {}).get("deletion")
        if not d:
            return None
        return cls(int(d["requested_at"]), int(d["purge_after"]), d.get("kind"), int(d.get("removed", 0)))

    def encode(self) -> dict:
        return {"requested_at": self.requested_at, "purge_after": self.purge_after, "kind": self.kind,
                "removed": self.removed}


async def _user_obj(tao: Tao, user_id: int) -> Any:
    return (await tao.obj_get([user_id])).get(user_id)


async def do_delete_account(tao: Tao, actor_id: int, password: str, *, throttle: LoginThrottle | None = None,
                            client_key: str = "anonymous") -> DeletionState:
    """Deactivate the account now and schedule its purge; returns the deletion's state."""
    obj = await _user_obj(tao, actor_id)
    user = record_of(obj) if obj is not None else None
    if not isinstance(user, User):
        raise UserError(AccountErrorCode.INVALID_CREDENTIALS, "This account no longer exists.", None)
    await take_attempt(throttle, user, client_key)  # wrong passwords count as failed log-ins
    if not await verify_password(tao.settings.auth, user.password_hash, password):
        raise UserError(AccountErrorCode.INVALID_CREDENTIALS,
                        "Wrong password: the account was not deleted. Enter your current password.", "password")
    await attempt_succeeded(throttle, user, client_key)
    state = DeletionState.of(obj)
    if state is None:
        at = now_ms()
        grace = tao.settings.account_data.deletion_grace_seconds * 1000
        state = DeletionState(at, at + grace, None, 0)
        await tao.obj_update(actor_id, {"deletion": state.encode()},
                             jobs=[(PURGE_JOB, {"user": actor_id, "requested_at": at}, grace),
                                   *deindex_user_jobs(tao, actor_id),  # out of search with it
                                   # its posts stop being public: its hashtags' and places' counts
                                   # drop, and a tag or place only it used is gone for others
                                   (SYNC_AUTHOR_EDGES_JOB, {"author": actor_id}),
                                   # its likes and comments leave others' counts as they left the lists
                                   *dormant.sync_jobs(actor_id)])
    await _end_all_sessions(tao, actor_id)
    return state


async def _end_all_sessions(tao: Tao, user_id: int) -> None:
    page = await tao.assoc_range(user_id, "HAS_SESSION", 0, 1)
    if page:
        await do_log_out(tao, user_id, page[0].id2, all_sessions=True)


PURGING_MESSAGE = "This account is being deleted (the grace period is over) and can no longer be used."


def purging_error() -> UserError:
    return UserError(AccountErrorCode.INVALID_CREDENTIALS, PURGING_MESSAGE, None)


def _outcome_key(user_id: int, requested_at: int) -> str:
    return f"{user_id}:{requested_at}"


async def check_not_purging(tao: Tao, user_id: int) -> None:
    """INVALID_CREDENTIALS once the account's purge has started: a log-in can no longer bring it
    back, and a session opened then would write what the purge has already passed."""
    obj = await _user_obj(tao, user_id)
    state = DeletionState.of(obj) if obj is not None else None
    if obj is None or (state is not None and state.kind is not None):
        raise purging_error()
    if state is not None:
        key = _outcome_key(user_id, state.requested_at)
        if (await tao.key_get_many(DELETION_OUTCOME_KEYS, [key])).get(key) == user_id:
            raise purging_error()  # the purge claimed the outcome; its first batch may be under way


async def cancel_deletion(tao: Tao, user_id: int) -> bool:
    """Log-in within the grace period: the account is back (its purge job then does nothing).
    Returns whether a deletion was cancelled. Once the purge has started (or the account is
    gone) it raises INVALID_CREDENTIALS: the log-in must open no session.

    The cancel and the purge's start each claim the deletion's outcome key
    (`deletion_outcome`, `<user>:<requested_at>`; the purge with the user id, a cancel with a
    fresh id): the store's claim is atomic, so exactly one of them wins. Before, each read the
    USER object and went on, and a log-in at the very end of the grace period cancelled while
    the purge's first batch ran; the purge carried on and the new session died with the account."""
    obj = await _user_obj(tao, user_id)
    state = DeletionState.of(obj) if obj is not None else None
    if obj is None or (state is not None and state.kind is not None):
        raise purging_error()
    if state is None:
        return False
    key = _outcome_key(user_id, state.requested_at)
    if not await tao.key_claim(DELETION_OUTCOME_KEYS, key, tao.ids.next_id(tao.shard(user_id))):
        holder = (await tao.key_get_many(DELETION_OUTCOME_KEYS, [key])).get(key)
        if holder == user_id:
            raise purging_error()
        # Another log-in's cancel won (and may have died before its write below): finish it.
    await tao.obj_update(user_id, {"deletion": None},
                         jobs=[*index_jobs(tao, [("user", user_id)], authors=[user_id]),  # back in search
                               (SYNC_AUTHOR_EDGES_JOB, {"author": user_id}),  # its public posts count again
                               *dormant.sync_jobs(user_id)])  # and its likes and comments
    return True


def is_deactivated(obj: Any) -> bool:
    return bool((obj.data if hasattr(obj, "data") else {}).get("deletion"))


async def purge_job(job: JobContext, payload: dict) -> None:
    """`account_data.purge`: a bounded slice of a user's purge; re-enqueues itself until done."""
    tao = job.tao
    user_id = int(payload["user"])
    obj = await _user_obj(tao, user_id)
    if payload.get("phase") == FINISH:
        await _finish(job, user_id, payload)
        return
    state = DeletionState.of(obj) if obj is not None else None
    if obj is not None and (state is None or state.requested_at != int(payload["requested_at"])):
        return  # cancelled (logged in within the grace period), or a stale job of an earlier request
    if state is not None and now_ms() < state.purge_after:
        # Run early (a drain told to run delayed jobs): put back for the grace period's end. It
        # re-enqueued itself, delayed, instead: a drain (`run_until_idle`) ran that copy at
        # once, and again, and never became idle while any account was in its grace period.
        raise JobNotDueError(state.purge_after)
    if state is not None and not await tao.key_claim(DELETION_OUTCOME_KEYS,
                                                     _outcome_key(user_id, state.requested_at), user_id):
        # A log-in claimed the outcome first: it cancels the deletion (its write may still be on
        # the way), and the purge must not touch the account.
        log.info("purge of user %s not started: a log-in cancelled the deletion", user_id)
        return
    s = job.settings.account_data
    ctx = DataContext(tao, job.settings, await job_media(job), s.purge_batch)
    removed = state.removed if state is not None else int(payload.get("removed", 0))
    batches = 0
    # A run stays well inside the outbox's lease, so no second worker takes the job meanwhile.
    deadline = time.monotonic() + job.settings.jobs.lease_seconds / 4
    for kind in kinds():
        if kind.purge is None:
            continue
        while batches < s.purge_batches_per_run:
            if time.monotonic() > deadline:
                batches = s.purge_batches_per_run
                break
            if kind.name == "profile":
                # The USER object goes last, with the finish phase queued in the same step.
                await tao.enqueue(user_id, PURGE_JOB, {"user": user_id, "phase": FINISH, "since": now_ms(),
                                                       "removed": removed})
                await kind.purge(ctx, user_id)
                return
            n = await kind.purge(ctx, user_id)
            batches += 1
            if ctx.erased:
                await tao.enqueue(user_id, FORGET_JOB, {"ids": ctx.erased, "since": now_ms()})
                ctx.erased = []
            if n == 0:
                break
            removed += n
            await tao.obj_update(user_id, {"deletion": {**(state.encode() if state else {}),
                                                        "kind": kind.name, "removed": removed}})
        if batches >= s.purge_batches_per_run:
            await tao.enqueue(user_id, PURGE_JOB, {**payload, "removed": removed})
            return


async def _finish(job: JobContext, user_id: int, payload: dict) -> None:
    """After every job queued before the profile's delete has run: the store's own traces go."""
    tao = job.tao
    if await tao.outbox.pending_before(int(payload["since"]), excluding=(PURGE_JOB, *scheduled_handlers())):
        await tao.enqueue(user_id, PURGE_JOB, payload, delay_ms=1000)
        return
    # Edges to the user some follow-up job may have written meanwhile, then the traces.
    ctx = DataContext(tao, job.settings, await job_media(job), job.settings.account_data.purge_batch)
    for kind in kinds():
        if kind.name == "inbound" and kind.purge is not None:
            while await kind.purge(ctx, user_id):
                pass
    await tao.erase_rows([user_id], naming=[user_id])  # keys naming the user (used 2FA codes, say)
    await tao.sweep_cache([user_id])


async def forget_job(job: JobContext, payload: dict) -> None:
    """`account_data.forget`: once every job queued before it has run (the follow-ups of the
    deletes that erased these ids, which may read them back into the cache), erase the store's
    traces of the ids again. Names object ids only, never the user."""
    later = (PURGE_JOB, FORGET_JOB, *scheduled_handlers())
    if await job.tao.outbox.pending_before(int(payload["since"]), excluding=later):
        await job.tao.enqueue(int(payload["ids"][0]), FORGET_JOB, payload, delay_ms=500)
        return
    await job.tao.erase_rows([int(i) for i in payload["ids"]])


async def purge_progress(tao: Tao, user_id: int) -> dict | None:
    """The deletion state of a user (None: no deletion pending, or the account is gone)."""
    obj = await _user_obj(tao, user_id)
    state = DeletionState.of(obj) if obj is not None else None
    return state.encode() if state is not None else None
