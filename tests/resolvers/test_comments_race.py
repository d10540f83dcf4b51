"""A comment racing the delete of its post (or of the comment it replies to) leaves nothing
behind, as a like does (`test_likes_race.py`, whose lock helpers these tests use).

The test holds the comment's listing on the parent's list lock (its `assoc_counts` row): the
comment object is written, its edge waits. Meanwhile the post (or parent comment) is deleted and
its cleanup job drains the list (nothing listed yet). Before the fix the comment then committed
its edge and stayed: a comment object and its edge on a deleted post, for good. Now the comment
reads its post (and parent) again once listed, and takes itself back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from config import Settings
from server import create_app
from tests.resolvers.messages_client import store_id
from tests.resolvers.test_likes_race import COMMENT, DELETE_COMMENT, DELETE_POST, NEW_POST, _until_waiting, list_locked
from tests.schema.client import GQL, running_app

pytestmark = pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)  # row locks are MariaDB's


async def _left(tao, parent: int, atype: str, comment: str) -> dict:
    cid = store_id(comment)
    return {"object": cid in await tao.obj_get([cid]), "edge": bool(await tao.assoc_get(parent, atype, [cid])),
            "count": await tao.assoc_count(parent, atype)}


async def _listed_once(gql, token: str, i: dict) -> None:
    """A comment added and deleted: its list's `assoc_counts` row exists (to be locked), empty,
    so the delete's cleanup has nothing of its own to wait for on that lock."""
    cid = (await gql.ok(COMMENT, {"i": i}, token))["addComment"]["comment"]["id"]
    assert (await gql.ok(DELETE_COMMENT, {"i": {"commentId": cid}}, token))["deleteComment"]["errors"] == []
    await gql.tao.run_jobs_until_idle()


async def test_a_comment_racing_its_post_s_delete_is_taken_back(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    pid = store_id(post)
    await _listed_once(gql, ta, {"postId": post, "text": "first"})  # the list's row exists
    async with list_locked(gql.tao, pid, "HAS_COMMENT"):
        adding = asyncio.create_task(gql.ok(COMMENT, {"i": {"postId": post, "text": "raced @ada"}}, tb))
        await _until_waiting(gql.tao, pid, adding)
        assert (await gql.ok(DELETE_POST, {"i": {"postId": post}}, ta))["deletePost"]["errors"] == []
        await gql.tao.run_jobs_until_idle()  # the cleanup: the raced comment is not listed yet
    answer = (await adding)["addComment"]
    await gql.tao.run_jobs_until_idle()
    comments = await gql.tao.obj_scan_naming(pid, "COMMENT", 10, field="post")
    assert (comments, await gql.tao.assoc_count(pid, "HAS_COMMENT")) == ([], 0)
    assert answer == {"comment": None, "errors": [{"code": "POST_NOT_FOUND"}]}


async def test_a_reply_racing_its_comment_s_delete_is_taken_back(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    top = (await gql.ok(COMMENT, {"i": {"postId": post, "text": "top"}}, ta))["addComment"]["comment"]["id"]
    await _listed_once(gql, ta, {"postId": post, "text": "first reply", "replyToId": top})
    async with list_locked(gql.tao, store_id(top), "HAS_REPLY"):
        adding = asyncio.create_task(gql.ok(COMMENT, {"i": {"postId": post, "text": "raced", "replyToId": top}}, tb))
        await _until_waiting(gql.tao, store_id(top), adding)
        assert (await gql.ok(DELETE_COMMENT, {"i": {"commentId": top}}, ta))["deleteComment"]["errors"] == []
        await gql.tao.run_jobs_until_idle()
    answer = (await adding)["addComment"]
    await gql.tao.run_jobs_until_idle()
    left = await gql.tao.obj_scan_naming(store_id(post), "COMMENT", 10, field="post")
    assert (left, await gql.tao.assoc_count(store_id(top), "HAS_REPLY")) == ([], 0)
    assert answer == {"comment": None, "errors": [{"code": "REPLY_TARGET_NOT_FOUND"}]}


@pytest.fixture
async def gql_patient(gql_settings: Settings) -> AsyncIterator[GQL]:
    """`gql` with a 5 s cache call timeout. The settle tests need their re-reads answered by
    memcached (the stale entry they put there); on a busy CI box a starved heartbeat thread
    otherwise opens a blind spot (docs/caching.md) in which the process reads SQL, the race
    never happens, and the test fails its premise (seen once in a clean-clone CI run). No
    fault is tested here."""
    gql_settings.cache.timeout = 5.0
    app = await asyncio.to_thread(create_app, gql_settings)
    async with running_app(gql_settings, app) as client:
        yield client


async def _stale(tao, obj_id: int, cached: dict) -> None:
    """The cache not yet told of the object's delete (as a memcached fault leaves it, for its
    TTL at most: docs/caching.md): its entry is the object as it was before."""
    from tao.cache.base import Install
    from tao.testing import TaoTestHooks

    h = TaoTestHooks(tao)
    key = h.obj_key(obj_id)
    await h.cache.forget_many([key])
    assert not await h.cache.install_many([Install(key, int(cached["v"]), lambda _old: dict(cached))])
    assert (await tao.obj_get([obj_id])).get(obj_id) is not None  # the store's reads now see it there


async def _cached(tao, obj_id: int) -> dict:
    from tao.testing import TaoTestHooks

    h = TaoTestHooks(tao)
    await tao.obj_get([obj_id])  # cached as it is
    return (await h.cache.get_many([h.obj_key(obj_id)]))[h.obj_key(obj_id)]


async def test_a_comment_whose_re_read_missed_the_post_s_delete_is_settled_away(gql_patient):
    gql = gql_patient
    """The comment races its post's delete as above, but its re-read is answered by a cache not
    yet told of the delete: it found the post there and stayed, for good (no job of a comment's
    looked again; docs/graphql.md left it open). The `comments.settle` job committed with its
    listing deletes it a minute later, as a delete does (its notifications retracted)."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    pid = store_id(post)
    await _listed_once(gql, ta, {"postId": post, "text": "first"})
    cached = await _cached(gql.tao, pid)
    async with list_locked(gql.tao, pid, "HAS_COMMENT"):
        adding = asyncio.create_task(gql.ok(COMMENT, {"i": {"postId": post, "text": "raced @ada"}}, tb))
        await _until_waiting(gql.tao, pid, adding)
        assert (await gql.ok(DELETE_POST, {"i": {"postId": post}}, ta))["deletePost"]["errors"] == []
        await gql.tao.run_jobs_until_idle()  # the cleanup: the raced comment is not listed yet
        await _stale(gql.tao, pid, cached)
    answer = (await adding)["addComment"]
    # The race is real when the re-read saw the stale post: the comment stays, for the settle to
    # take away. In the clean-clone CI its re-read has also found the post gone (as the reply's
    # below, not yet explained; 9c12712 on a slow machine): then the comment takes itself back
    # at once. Either way nothing may stay.
    assert answer["comment"] if answer["errors"] == [] else answer["errors"] == [{"code": "POST_NOT_FOUND"}]
    await gql.tao.run_jobs_until_idle()  # the comment's settling (due a minute later), then its cleanup
    comments = await gql.tao.obj_scan_naming(pid, "COMMENT", 10, field="post")
    assert (comments, await gql.tao.assoc_count(pid, "HAS_COMMENT")) == ([], 0)
    assert await gql.tao.obj_get([pid], fresh=True) == {}
    assert (await gql.ok("{ viewer { notifications(first: 5) { edges { node { type } } } } }", token=ta)
            )["viewer"]["notifications"]["edges"] == []


async def test_a_reply_whose_re_read_missed_its_comment_s_delete_is_settled_away(gql_patient):
    gql = gql_patient
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    top = (await gql.ok(COMMENT, {"i": {"postId": post, "text": "top"}}, ta))["addComment"]["comment"]["id"]
    await _listed_once(gql, ta, {"postId": post, "text": "first reply", "replyToId": top})
    cached = await _cached(gql.tao, store_id(top))
    async with list_locked(gql.tao, store_id(top), "HAS_REPLY"):
        adding = asyncio.create_task(gql.ok(COMMENT, {"i": {"postId": post, "text": "raced", "replyToId": top}}, tb))
        await _until_waiting(gql.tao, store_id(top), adding)
        assert (await gql.ok(DELETE_COMMENT, {"i": {"commentId": top}}, ta))["deleteComment"]["errors"] == []
        await gql.tao.run_jobs_until_idle()
        await _stale(gql.tao, store_id(top), cached)
    answer = (await adding)["addComment"]
    # The race is real when the re-read saw the stale parent: the reply stays, for the settle to
    # take away. In the clean-clone CI (two xdist workers beside their servers) its re-read twice
    # found the parent gone instead, not yet explained (not a blind spot: a 5 s cache timeout did
    # not change it); then the reply takes itself back at once. Either way nothing may stay.
    assert answer["comment"] if answer["errors"] == [] else answer["errors"] == [{"code": "REPLY_TARGET_NOT_FOUND"}]
    await gql.tao.run_jobs_until_idle()
    left = await gql.tao.obj_scan_naming(store_id(post), "COMMENT", 10, field="post")
    assert (left, await gql.tao.assoc_count(store_id(top), "HAS_REPLY")) == ([], 0)
    assert await gql.tao.assoc_count(store_id(post), "HAS_COMMENT") == 0


async def test_the_settle_keeps_a_comment_whose_post_is_there(gql):
    """Every comment and reply commits its settle: run (a drain of delayed jobs), it keeps them."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await gql.ok(NEW_POST, token=ta))["createPost"]["post"]["id"]
    top = (await gql.ok(COMMENT, {"i": {"postId": post, "text": "top"}}, tb))["addComment"]["comment"]["id"]
    await gql.ok(COMMENT, {"i": {"postId": post, "text": "reply", "replyToId": top}}, ta)
    await gql.tao.run_jobs_until_idle()
    q = "query($id: ID!) { node(id: $id) { ... on Post { commentCount comments { nodes { replyCount } } } } }"
    want = {"commentCount": 1, "comments": {"nodes": [{"replyCount": 1}]}}
    assert (await gql.ok(q, {"id": post}, ta))["node"] == want
