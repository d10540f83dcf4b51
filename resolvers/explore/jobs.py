"""Explore's durable-job handlers (registered by resolvers/jobs.py) and its ON_PUBLISH hook:
importing this module appends `trends.on_publish` to `posts.ON_PUBLISH` (once)."""

from __future__ import annotations

from resolvers import posts
from resolvers.explore import account_data as _account_data  # noqa: F401  (registers the `explore` data kind)
from resolvers.explore import pool, sessions, trends

HANDLERS = {
    trends.TALLY_JOB: trends.tally_job,
    trends.REFRESH_JOB: trends.refresh_job,
    trends.EXPIRE_BUCKET_JOB: trends.expire_bucket_job,
    pool.BUILD_JOB: pool.build_pool_job,
    sessions.EXPIRE_JOB: sessions.expire_session_job,
    sessions.TRIM_SEEN_JOB: sessions.trim_seen_job,
}

if trends.on_publish not in posts.ON_PUBLISH:
    posts.ON_PUBLISH.append(trends.on_publish)
