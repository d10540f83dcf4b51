"""Feed sessions: the ranked snapshot a viewer scrolls, so cursors never repeat or skip a post.

The first page of a feed ranks the candidates once and stores the order as a FEED_SESSION
object on the viewer's shard: `{"viewer", "t" (ms), "mode", "ids": [post, ...], "au": [author of
each, ...], "dbg": [...]}`
(`dbg`, the score components, only for developers). A cursor is (session, index, page_start):
the next page is `ids[index + 1:]`, whatever was posted, liked or ranked since, so no post is
shown twice or skipped while the viewer scrolls. Later pages re-apply the read-time filters
(a post deleted or an author blocked mid-scroll disappears at once; the offset still advances).

A session is readable for `feed.session_ttl_seconds`; a delayed job deletes it after that.
Serving a page with a cursor records the previous page (ids[page_start:index + 1], the posts
the viewer scrolled past) as seen: a mark on each post's FEED edge, one multi-row write on the
viewer's shard, read back with the FEED list on the next refresh (ranking sinks seen posts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resolvers.edge_data import feed_edge_data
from resolvers.errors import BadInputError
from resolvers.feed.fanout import post_time
from resolvers.feed.ranking import COMPONENTS, Scored
from resolvers.job_context import JobContext
from resolvers.records import Post, register_record
from tao import Obj
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

FeedCursor = tuple[int, int, int]  # (session id, index of the last item served, index where its page began)
EXPIRE_JOB = "feed.session_expire"
_UNSCORED = (0.0,) * len(COMPONENTS)


@dataclass(slots=True)
class Session:
    id: int
    viewer: int
    created: int
    mode: str
    ids: list[int]
    authors: list[int]  # of each post, as its edge said (a page loads posts and authors at once)
    debug: list[list[float]] | None

    @classmethod
    def from_obj(cls, obj: Obj) -> Session:
        d = obj.data
        return cls(obj.id, int(d["viewer"]), int(d["t"]), d["mode"], list(d["ids"]), list(d["au"]), d.get("dbg"))

    def debug_of(self, index: int) -> dict[str, float] | None:
        if self.debug is None or index >= len(self.debug):
            return None
        row = self.debug[index]
        return {"score": row[0], **dict(zip(COMPONENTS, row[1:5])), "seen": bool(row[5])}


register_record("FEED_SESSION", Session.from_obj)


async def create_session(ctx: RequestContext, viewer: int, mode: str, ordered: list[Scored],
                         with_debug: bool) -> Session:
    now = now_ms()
    data: dict[str, Any] = {"viewer": viewer, "t": now, "mode": mode, "ids": [x.cand.post for x in ordered],
            "au": [x.cand.author for x in ordered]}
    if with_debug:
        data["dbg"] = [[round(x.score, 4), *(round(v, 4) for v in x.parts or _UNSCORED), int(x.seen)]
                       for x in ordered]
    ttl_ms = ctx.settings.feed.session_ttl_seconds * 1000
    # The expiry job commits with the session: one transaction for both.
    sid = await ctx.tao.obj_add("FEED_SESSION", data, owner=viewer,
                                jobs=lambda new_id: [(EXPIRE_JOB, {"session": new_id}, ttl_ms)])
    return Session(sid, viewer, now, mode, data["ids"], data["au"], data.get("dbg"))


async def load_session(ctx: RequestContext, viewer: int, cursor: FeedCursor) -> Session:
    session = await ctx.loaders.object_by_id.load(cursor[0])
    expired = BadInputError("This feed cursor has expired: fetch the first page again (no `after`).")
    # (A session without "au" predates authors in sessions: it does not decode, and its cursors
    # expire like old ones.)
    if not isinstance(session, Session) or session.viewer != viewer:
        raise expired
    if now_ms() - session.created > ctx.settings.feed.session_ttl_seconds * 1000:
        raise expired
    # (session, index, start): the page [start, index] (empty when index = start - 1) was read.
    if not 0 <= cursor[2] <= cursor[1] + 1 <= len(session.ids):
        raise BadInputError("`after` is not a valid feed cursor: pass a `cursor` or `pageInfo.endCursor` from `feed`.")
    return session


async def record_seen(ctx: RequestContext, session: Session, cursor: FeedCursor) -> None:
    """The page that ended at the cursor was scrolled past: mark its posts seen on the viewer's
    FEED edges (`"s"`: when), one bulk upsert on the viewer's shard. A pulled post gets a FEED
    edge for its mark, so the next refresh reads every mark with the FEED list it reads anyway."""
    posts = session.ids[cursor[2]:cursor[1] + 1]
    if not posts:
        return
    now = now_ms()
    objs = await ctx.loaders.object_by_id.load_many(posts)
    edges = [(session.viewer, "FEED", o.id, post_time(o), feed_edge_data(o.author, o.kind.value, shown=now))
             for o in objs if isinstance(o, Post)]
    if edges:
        await ctx.tao.assoc_add_many(edges)


async def expire_session_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    await tao.obj_delete(payload["session"])
