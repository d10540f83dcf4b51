"""Explore sessions and the seen set.

The first page ranks the viewer's pool once and stores the order as an EXPLORE_SESSION object on
the viewer's shard (`{"viewer", "t", "ids", "au"}`), with its expiry job in the same transaction
(readable for `explore.session_ttl_seconds`). A cursor is (session, index of the last position
the page consumed): the next page reads `ids[index + 1:]`, whatever was posted or liked since, so
scrolling never repeats or skips a post. Positions a page skipped (a post deleted, an author
blocked mid-scroll) are consumed with it.

Seen set: every post a page serves gets an `viewer -EXPLORE_SEEN-> post` edge (time = when, data
= the session), one multi-row write on the viewer's shard. A new snapshot leaves out the seen
posts younger than `seen_ttl_days` (it reads the newest `seen_max` marks, one SQL statement:
the list is neither cached nor counted), and every page checks its posts' marks, so a post
served by one session is never served by another (a retried page of the same session is served
again). When the read finds the list full, a job trims it to `seen_max` and `seen_ttl_days`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from resolvers.errors import BadInputError
from resolvers.job_context import JobContext
from resolvers.records import register_record
from tao import Obj
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

ExploreCursor = tuple[int, int]  # (session id, index of the last position consumed)
EXPIRE_JOB = "explore.session_expire"
TRIM_SEEN_JOB = "explore.trim_seen"
SEEN = "EXPLORE_SEEN"
DAY_MS = 86_400_000
BAD_CURSOR = "`after` is not a valid Explore cursor: pass a `cursor` or `pageInfo.endCursor` from `explore`."


@dataclass(slots=True)
class ExploreSession:
    id: int
    viewer: int
    created: int
    ids: list[int]
    authors: list[int]

    @classmethod
    def from_obj(cls, obj: Obj) -> ExploreSession:
        d = obj.data
        return cls(obj.id, int(d["viewer"]), int(d["t"]), list(d["ids"]), list(d["au"]))


register_record("EXPLORE_SESSION", ExploreSession.from_obj)


async def create_session(ctx: RequestContext, viewer: int, posts: list[int], authors: list[int]) -> ExploreSession:
    now = now_ms()
    ttl_ms = ctx.settings.explore.session_ttl_seconds * 1000
    data = {"viewer": viewer, "t": now, "ids": posts, "au": authors}
    sid = await ctx.tao.obj_add("EXPLORE_SESSION", data, owner=viewer,
                                jobs=lambda new_id: [(EXPIRE_JOB, {"session": new_id}, ttl_ms)])
    return ExploreSession(sid, viewer, now, posts, authors)


async def load_session(ctx: RequestContext, viewer: int, cursor: ExploreCursor) -> ExploreSession:
    session = await ctx.loaders.object_by_id.load(cursor[0])
    expired = BadInputError("This Explore cursor has expired: fetch the first page again (no `after`).")
    if not isinstance(session, ExploreSession) or session.viewer != viewer:
        raise expired
    if now_ms() - session.created > ctx.settings.explore.session_ttl_seconds * 1000:
        raise expired
    if not -1 <= cursor[1] < len(session.ids):
        raise BadInputError(BAD_CURSOR)
    return session


async def expire_session_job(job: JobContext, payload: dict) -> None:
    await job.tao.obj_delete(payload["session"])


async def seen_posts(ctx: RequestContext, viewer: int) -> set[int]:
    """The posts served to the viewer on Explore within `seen_ttl_days` (the newest `seen_max`);
    a full list asks for a trim."""
    s = ctx.settings.explore
    edges = await ctx.tao.assoc_time_range(viewer, SEEN, low=now_ms() - int(s.seen_ttl_days * DAY_MS),
                                           limit=s.seen_max)
    if len(edges) >= s.seen_max:
        await ctx.tao.enqueue(viewer, TRIM_SEEN_JOB, {"viewer": viewer})
    return {e.id2 for e in edges}


async def seen_elsewhere(ctx: RequestContext, viewer: int, session: int, posts: list[int]) -> set[int]:
    """Those of `posts` another session already served (one lookup on the viewer's shard)."""
    if not posts:
        return set()
    found = await ctx.tao.assoc_get(viewer, SEEN, posts)
    return {p for p, e in found.items() if e.data.get("s") != session}


async def record_served(ctx: RequestContext, viewer: int, session: int, posts: list[int]) -> None:
    if posts:
        now = now_ms()
        await ctx.tao.assoc_add_many([(viewer, SEEN, p, now, {"s": session}) for p in posts])


async def trim_seen_job(job: JobContext, payload: dict) -> None:
    s = job.settings.explore
    await job.tao.assoc_trim(payload["viewer"], SEEN, keep=s.seen_max,
                             before=now_ms() - int(s.seen_ttl_days * DAY_MS))
