"""What a block takes away: the blocked user's likes and comments on the blocker's posts.

As on Instagram, blocking someone removes, from every post of the blocker: the blocked user's
likes, their comments and replies (with what hangs off them), and their likes of the comments
there. The work is the `blocks.remove_engagement` job, committed in the same transaction as the
BLOCKS edge (`on_block`), so an acknowledged block always gets it; it walks the blocker's posts
in keyset pages, whatever their number.

Invariants: idempotent (every removal goes through `assoc_delete` or the comment delete path,
which keep counts exact, and a second run finds nothing to remove); a job that runs after the
block was lifted does nothing (the block's consequence belongs to the block). Until it has run,
privacy already hides the blocked user's comments from the blocker; others may still see them
for that moment.
"""

from __future__ import annotations

from resolvers.comments import delete_comment_tree
from resolvers.job_context import JobContext
from resolvers.records import Comment, record_of
from tao import Assoc, Tao

REMOVE_ENGAGEMENT_JOB = "blocks.remove_engagement"
PAGE = 200


def on_block(blocker: int, blocked: int) -> list[tuple[str, dict]]:
    """The jobs to commit with the BLOCKS edge."""
    return [(REMOVE_ENGAGEMENT_JOB, {"blocker": blocker, "blocked": blocked})]


async def _pages(tao: Tao, id1: int, atype: str):
    """Every edge of (id1, atype), newest first, a keyset page at a time (stable under removals)."""
    after: tuple[int, int] | None = None
    while True:
        page: list[Assoc] = await tao.assoc_time_range(id1, atype, limit=PAGE, after=after)
        if not page:
            return
        yield page
        if len(page) < PAGE:
            return
        after = (page[-1].time, page[-1].id2)


async def _remove_from(tao: Tao, parent: int, atype: str, blocked: int) -> list[int]:
    """Delete the blocked user's comments listed under `parent` and their likes of the others;
    returns the other comments that have replies (to look through next)."""
    with_replies: list[int] = []
    async for page in _pages(tao, parent, atype):
        ids = [a.id2 for a in page]
        comments = await tao.obj_get(ids)
        liked = await tao.assoc_get(blocked, "COMMENT_LIKES", ids)
        counts = await tao.assoc_count_many([(c, "HAS_REPLY") for c in ids]) if atype == "HAS_COMMENT" else {}
        for cid in ids:
            c = record_of(comments[cid]) if cid in comments else None
            if isinstance(c, Comment) and c.author == blocked:
                await delete_comment_tree(tao, cid, parent, atype)
                continue
            if cid in liked:
                await tao.assoc_delete(blocked, "COMMENT_LIKES", cid)
            if counts.get((cid, "HAS_REPLY")):
                with_replies.append(cid)
    return with_replies


async def remove_engagement_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    blocker, blocked = int(payload["blocker"]), int(payload["blocked"])
    if not await tao.assoc_get(blocker, "BLOCKS", [blocked]):
        return  # unblocked before the job ran: the likes and comments stay
    async for page in _pages(tao, blocker, "AUTHORED"):
        post_ids = [a.id2 for a in page]
        for post_id in await tao.assoc_get(blocked, "LIKES", post_ids):
            await tao.assoc_delete(blocked, "LIKES", post_id)
        for post_id in post_ids:
            for comment_id in await _remove_from(tao, post_id, "HAS_COMMENT", blocked):
                await _remove_from(tao, comment_id, "HAS_REPLY", blocked)
