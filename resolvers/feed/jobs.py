"""The feed's durable-job handlers (registered by resolvers/jobs.py)."""

from __future__ import annotations

from resolvers.feed import activity, backfill, fanout, removal, sessions

HANDLERS = {
    fanout.FANOUT_JOB: fanout.fanout_job,
    fanout.REBUILD_JOB: fanout.rebuild_job,
    backfill.BACKFILL_JOB: backfill.backfill_job,
    removal.REMOVE_POSTS_JOB: removal.remove_posts_job,
    removal.REMOVE_AUTHOR_JOB: removal.remove_author_job,
    removal.RETRACT_POST_JOB: removal.retract_post_job,
    sessions.EXPIRE_JOB: sessions.expire_session_job,
    activity.TRIM_JOB: activity.trim_job,
}
