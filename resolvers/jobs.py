"""The domain's durable-job handlers, registered on a store by one call.

Whoever runs a worker over a store (the server's in-process worker, `python -m tao worker`
when started with the app's handlers, tests) calls `register_job_handlers(tao)` first, so a
job enqueued by one process can be run by any other. Handlers are idempotent.
"""

from __future__ import annotations

from resolvers import accounts, block_cleanup, comments, media, posts, realtime
from resolvers.feed.jobs import HANDLERS as FEED_HANDLERS
from resolvers.follows import approve_pending_requests_job
from resolvers.messages.send import DELIVER_JOB, deliver_job
from tao import Tao

HANDLERS = {
    "follows.approve_pending_requests": approve_pending_requests_job,
    accounts.END_SESSION_JOB: accounts.end_session_job,
    **FEED_HANDLERS,
    posts.SYNC_EDGES_JOB: posts.sync_edges_job,
    posts.SYNC_AUTHOR_EDGES_JOB: posts.sync_author_edges_job,
    posts.CLEANUP_JOB: posts.cleanup_job,
    comments.CLEANUP_JOB: comments.cleanup_job,
    block_cleanup.REMOVE_ENGAGEMENT_JOB: block_cleanup.remove_engagement_job,
    media.PROCESS_JOB: media.process_job,
    realtime.STREAM_EVENT_JOB: realtime.stream_event_job,
    realtime.TRIM_STREAM_JOB: realtime.trim_stream_job,
    DELIVER_JOB: deliver_job,
}


def register_job_handlers(tao: Tao) -> None:
    for name, handler in HANDLERS.items():
        tao.outbox.register(name, handler)


# `python -m tao worker` imports each `jobs.handler_modules` entry and calls its `register(tao)`.
register = register_job_handlers
