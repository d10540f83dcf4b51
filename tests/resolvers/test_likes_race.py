"""A like racing the delete of what it likes leaves nothing behind (docs/graphql.md, "Likes").

Each test holds a like for real between its read of the target (visible) and its write: a
transaction of the test's own locks the liker's LIKES (or COMMENT_LIKES) list, its
`assoc_counts` row, which the like's write locks too. While it waits, the target's author
deletes the target and its cleanup job runs (it drains the likes it finds: none yet); then the
test lets the like go. Before the fix the like committed and stayed: an edge to a deleted object
in the liker's list, counted in their likes, with its inverse on the deleted object's list,
and the mutation answered as if it had liked something. Now the like reads its target again
once written, finds it gone and takes itself back (`NOT_FOUND`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tao.testing import TaoTestHooks as hooks
from tests.resolvers.messages_client import store_id
from tests.row_locks import held_by_a_transaction

pytestmark = pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)  # row locks are MariaDB's

NEW_POST = "mutation { createPost(input: {caption: \"p\"}) { post { id } } }"
LIKE_POST = "mutation($i: PostLikeInput!) { likePost(input: $i) { post { id } errors { code } } }"
DELETE_POST = "mutation($i: PostDeleteInput!) { deletePost(input: $i) { errors { code } } }"
COMMENT = "mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code } } }"
LIKE_COMMENT = "mutation($i: CommentLikeInput!) { likeComment(input: $i) { comment { id } errors { code } } }"
DELETE_COMMENT = "mutation($i: CommentDeleteInput!) { deleteComment(input: $i) { errors { code } } }"


@asynccontextmanager
async def list_locked(tao, user: int, atype: str) -> AsyncIterator[None]:
    """The user's `atype` list locked by a transaction of the test's own until the block ends."""
    async with held_by_a_transaction(
            tao, tao.shard(user), "SELECT version FROM {assoc_counts} WHERE id1 = %s AND atype = %s FOR UPDATE",
            (user, hooks(tao).atype(atype).code)) as rows:
        assert rows, "the list's row must exist to be locked"
        yield


async def _until_waiting(tao, user: int, task: asyncio.Task) -> None:
    """Until a write of the user's shard waits on the held lock (the like has read its target)."""
    h = hooks(tao)
    for _ in range(300):
        assert not task.done(), task.result()
        async with h.read(tao.shard(user)) as conn:
            rows = await conn.fetchall("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
                                       "AND INFO LIKE %s AND INFO LIKE %s", ("%assoc_counts%", f"%{user}%"))
        if rows[0][0]:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the like never waited on the held list")


async def _leftovers(tao, liker: int, atype: str, inverse: str, target: int) -> dict:
    return {"edge": bool(await tao.assoc_get(liker, atype, [target])),
            "count": await tao.assoc_count(liker, atype),
            "inverse": bool(await tao.assoc_get(target, inverse, [liker])),
            "inverse_count": await tao.assoc_count(target, inverse)}


async def test_a_like_racing_the_post_s_delete_is_taken_back(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    first = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    bob = store_id((await gql.ok('{ user(username: "bob") { id } }'))["user"]["id"])
    await gql.ok(LIKE_POST, {"i": {"postId": first}}, tb)  # bob's LIKES list exists (its row is the lock)
    await gql.ok(DELETE_POST, {"i": {"postId": first}}, ta)
    await gql.tao.run_jobs_until_idle()
    async with list_locked(gql.tao, bob, "LIKES"):
        like = asyncio.create_task(gql.ok(LIKE_POST, {"i": {"postId": post}}, tb))
        await _until_waiting(gql.tao, bob, like)
        assert (await gql.ok(DELETE_POST, {"i": {"postId": post}}, ta))["deletePost"]["errors"] == []
        await gql.tao.run_jobs_until_idle()  # the cleanup: no like to drain yet
    answer = (await like)["likePost"]
    await gql.tao.run_jobs_until_idle()
    assert await _leftovers(gql.tao, bob, "LIKES", "LIKED_BY", store_id(post)) == {
        "edge": False, "count": 0, "inverse": False, "inverse_count": 0}
    assert answer == {"post": None, "errors": [{"code": "NOT_FOUND"}]}


async def test_a_comment_like_racing_the_comment_s_delete_is_taken_back(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    first, comment = [(await gql.ok(COMMENT, {"i": {"postId": post, "text": t}}, ta))["addComment"]["comment"]["id"]
                      for t in ("one", "two")]
    bob = store_id((await gql.ok('{ user(username: "bob") { id } }'))["user"]["id"])
    await gql.ok(LIKE_COMMENT, {"i": {"commentId": first}}, tb)
    await gql.ok(DELETE_COMMENT, {"i": {"commentId": first}}, ta)
    await gql.tao.run_jobs_until_idle()
    async with list_locked(gql.tao, bob, "COMMENT_LIKES"):
        like = asyncio.create_task(gql.ok(LIKE_COMMENT, {"i": {"commentId": comment}}, tb))
        await _until_waiting(gql.tao, bob, like)
        assert (await gql.ok(DELETE_COMMENT, {"i": {"commentId": comment}}, ta))["deleteComment"]["errors"] == []
        await gql.tao.run_jobs_until_idle()
    answer = (await like)["likeComment"]
    await gql.tao.run_jobs_until_idle()
    assert await _leftovers(gql.tao, bob, "COMMENT_LIKES", "COMMENT_LIKED_BY", store_id(comment)) == {
        "edge": False, "count": 0, "inverse": False, "inverse_count": 0}
    assert answer == {"comment": None, "errors": [{"code": "NOT_FOUND"}]}


async def test_a_like_whose_inverse_sync_failed_does_not_outlive_the_post(gql, caplog):
    """The like's inverse sync fails for real (the post's LIKED_BY list held by a transaction of the
    test's own until the store's query timeout), so the post's delete, just after, drains its likers
    without it; the sync's repair job then wrote the inverse on the deleted post, and the like stayed
    for good (the gap docs/graphql.md left open). The like's `likes.settle` job, committed with it,
    removes it."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    pid = store_id(post)
    bob = store_id((await gql.ok('{ user(username: "bob") { id } }'))["user"]["id"])
    await gql.ok(LIKE_POST, {"i": {"postId": post}}, tc)  # the post's LIKED_BY row exists (the lock)
    await gql.tao.run_jobs_until_idle()
    async with list_locked(gql.tao, pid, "LIKED_BY"):
        answer = (await gql.ok(LIKE_POST, {"i": {"postId": post}}, tb))["likePost"]
    assert answer == {"post": {"id": post}, "errors": []}  # the like is acknowledged; its inverse is not
    assert not await gql.tao.assoc_get(pid, "LIKED_BY", [bob])
    assert (await gql.ok(DELETE_POST, {"i": {"postId": post}}, ta))["deletePost"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)  # the delete's cleanup: bob's like not listed
    await gql.tao.run_jobs_until_idle()  # then the inverse's repair, and the like's settling
    assert await _leftovers(gql.tao, bob, "LIKES", "LIKED_BY", pid) == {
        "edge": False, "count": 0, "inverse": False, "inverse_count": 0}
