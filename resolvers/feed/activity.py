"""Viewer activity the feed depends on: `last_active` on USER objects, and profile visits.

`last_active` (ms) is rewritten by the viewer's feed reads at most once per
`feed.active_touch_seconds`, so an active viewer costs one object write an hour. Fan-out skips
followers whose `last_active` (or, if never set, the account's creation time) is older than
`feed.inactive_days`. A viewer returning after that gets `feed_rebuild` set and a rebuild job
committed in the same write; until the job clears the flag, their feed reads take the pull path.

The same hourly write commits a `feed.trim` job: the viewer's FEED list keeps its newest
`feed.keep_edges` edges younger than `feed.window_days` (reads never look further), so fan-out
cannot grow it without bound.

Profile visits are VISITED edges (viewer -> user, time = latest visit): one upsert on the
viewer's shard, skipped when the last visit is younger than VISIT_RESOLUTION_MS.
"""

from __future__ import annotations

from config import FeedSettings
from resolvers.job_context import JobContext
from resolvers.records import User, record_of
from tao import Tao
from tao.models import now_ms

DAY_MS = 24 * 3600 * 1000
VISIT_RESOLUTION_MS = 10 * 60 * 1000
TRIM_JOB = "feed.trim"


def last_active(user: User) -> int:
    return int(user.last_active or user.created)


def is_active(user: User, settings: FeedSettings, now: int | None = None) -> bool:
    now = now_ms() if now is None else now
    return last_active(user) >= now - settings.inactive_days * DAY_MS


def rebuild_pending(user: User) -> bool:
    return bool(user.feed_rebuild)


async def touch_active(tao: Tao, user: User, settings: FeedSettings) -> User:
    """Record that the viewer is here. Returns the (possibly updated) user."""
    now = now_ms()
    if now - last_active(user) < settings.active_touch_seconds * 1000:
        return user
    trim = (TRIM_JOB, {"viewer": user.id})
    if is_active(user, settings, now):
        return record_of(await tao.obj_update(user.id, {"last_active": now}, jobs=[trim]))
    # Back after a long absence: fan-out skipped them, so rebuild their FEED list.
    return record_of(await tao.obj_update(user.id, {"last_active": now, "feed_rebuild": now},
                                          jobs=[("feed.rebuild", {"viewer": user.id, "since": last_active(user)}),
                                                trim]))


async def trim_job(job: JobContext, payload: dict) -> None:
    """Bound a viewer's FEED list (see the module docstring). Idempotent."""
    tao = job.tao
    s = job.settings.feed
    await tao.assoc_trim(payload["viewer"], "FEED", keep=max(s.keep_edges, s.page_candidates),
                         before=now_ms() - int(s.window_days * DAY_MS))


async def record_profile_visit(tao: Tao, viewer: int, user_id: int) -> None:
    if viewer == user_id:
        return
    prev = (await tao.assoc_get(viewer, "VISITED", [user_id])).get(user_id)
    if prev is None or now_ms() - prev.time >= VISIT_RESOLUTION_MS:
        await tao.assoc_add(viewer, "VISITED", user_id)
