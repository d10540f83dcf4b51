"""The domain's durable-job handlers, registered on a store by one call.

Whoever runs a worker over a store (the server's in-process worker, `python -m tao worker`
when started with the app's handlers, tests) calls `register_job_handlers(tao)` first, so a
job enqueued by one process can be run by any other. Handlers are idempotent and take a
`JobContext` (the store, the settings, the media services), built here once per store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from resolvers import accounts, block_cleanup, comments, dormant, likes, media, posts, realtime, two_factor, usernames
from resolvers.account_data import deletion as account_deletion
from resolvers.account_data import export as account_export
from resolvers.explore.jobs import HANDLERS as EXPLORE_HANDLERS
from resolvers.feed.jobs import HANDLERS as FEED_HANDLERS
from resolvers.follows import SEVER_JOB, approve_pending_requests_job, sever_blocked_job
from resolvers.job_context import JobContext
from resolvers.messages.send import DELIVER_JOB, deliver_job
from resolvers.notifications import hooks as _notification_hooks  # noqa: F401  (registers posts.ON_PUBLISH)
from resolvers.notifications import push as notification_push
from resolvers.notifications import record as notifications
from resolvers.search import indexer as search_indexer
from resolvers.stories import actions as stories
from resolvers.stories import highlights as story_highlights
from tao import Tao

JobHandler = Callable[[JobContext, dict], Awaitable[None]]

HANDLERS: dict[str, JobHandler] = {
    "follows.approve_pending_requests": approve_pending_requests_job,
    SEVER_JOB: sever_blocked_job,
    accounts.END_SESSION_JOB: accounts.end_session_job,
    two_factor.END_CHALLENGE_JOB: two_factor.end_challenge_job,
    **FEED_HANDLERS,
    **EXPLORE_HANDLERS,
    posts.SYNC_EDGES_JOB: posts.sync_edges_job,
    posts.SYNC_AUTHOR_EDGES_JOB: posts.sync_author_edges_job,
    posts.CLEANUP_JOB: posts.cleanup_job,
    comments.CLEANUP_JOB: comments.cleanup_job,
    comments.SETTLE_JOB: comments.settle_job,
    likes.SETTLE_JOB: likes.settle_job,
    block_cleanup.REMOVE_ENGAGEMENT_JOB: block_cleanup.remove_engagement_job,
    dormant.SYNC_JOB: dormant.sync_job,
    media.PROCESS_JOB: media.process_job,
    realtime.STREAM_EVENT_JOB: realtime.stream_event_job,
    realtime.TRIM_STREAM_JOB: realtime.trim_stream_job,
    DELIVER_JOB: deliver_job,
    notifications.RECORD_JOB: notifications.record_job,
    notifications.RETRACT_JOB: notifications.retract_job,
    notification_push.PUSH_JOB: notification_push.push_job,
    stories.EXPIRE_JOB: stories.expire_job,
    stories.PURGE_JOB: stories.purge_job,
    stories.CLEANUP_JOB: stories.cleanup_job,
    stories.HINT_JOB: stories.hint_job,
    story_highlights.SYNC_JOB: story_highlights.sync_highlight_job,
    account_deletion.PURGE_JOB: account_deletion.purge_job,
    account_deletion.FORGET_JOB: account_deletion.forget_job,
    account_export.EXPORT_JOB: account_export.export_job,
    account_export.DISCARD_JOB: account_export.discard_export_job,
    usernames.HOLD_JOB: usernames.release_job,
    usernames.CHECK_JOB: usernames.release_job,
}


class _Bound:
    """A domain handler bound to its store's `JobContext`: what the outbox calls."""

    def __init__(self, job: JobContext, bound: dict[str, _Bound], handler: JobHandler) -> None:
        self.job = job
        self.bound = bound  # every handler bound with this context, by job name (this one among them)
        self.__wrapped__ = handler

    async def __call__(self, _store: Any, payload: dict) -> None:  # the outbox passes its store; the context has it
        await self.__wrapped__(self.job, payload)


def _bound_on(tao: Tao) -> _Bound | None:
    """A handler of ours already registered on `tao`, if any. The binding lives in the store's
    own handler table, not in a table of this module keyed by the store: the context refers to
    the store, so a module-level `WeakKeyDictionary[Tao, ...]` holding it would keep every store
    (its pools, caches, event loop) alive for the life of the process."""
    return next((run for run in tao.outbox.handlers.values() if isinstance(run, _Bound)), None)


def register_job_handlers(tao: Tao, *, settings: Any = None, media: Any = None) -> JobContext:
    """Register every domain handler on `tao`; they run with a `JobContext` of `tao`, `settings`
    (default: the settings the store was opened with) and `media` (`MediaServices`, or None).
    One context and one set of handlers per store: registering again (a script after the
    server, a test) finds them and updates the context instead of registering new callables."""
    found = _bound_on(tao)
    if found is not None:
        job, bound = found.job, found.bound
        if settings is not None:
            job.settings = settings
        if media is not None:
            job.media = media
    else:
        job = JobContext(tao, settings if settings is not None else tao.settings, media)
        # The search index partitions this process may write (the others are declared as run elsewhere).
        handlers = {**HANDLERS, **search_indexer.handlers(tao, job.settings)}
        bound = {}
        for name, handler in handlers.items():
            bound[name] = _Bound(job, bound, handler)
    for name, run in bound.items():
        tao.outbox.register(name, run)
    return job


def register(tao: Tao) -> None:
    """`python -m tao worker` imports each `jobs.handler_modules` entry and calls its `register(tao)`."""
    register_job_handlers(tao)
