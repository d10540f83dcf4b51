"""Blocks on every surface that takes an id: the blocked can never tell a blocker from nobody.

A matrix: each mutation that names a user, a post or a comment, run by the blocked user against
what the blocker owns, must answer exactly what it answers for a well-formed id of nothing and
for a deleted account, and change nothing. The blocker keeps the means to undo their block.
"""

from __future__ import annotations

import pytest

from schema.relay import to_global_id
from tao.ids import EPOCH_MS, make_id

pytestmark = pytest.mark.no_blocking

USER_ID_MUTATIONS = ("follow", "unfollow", "approveFollowRequest", "rejectFollowRequest",
                     "block", "unblock", "mute", "unmute")
FIELDS = "user { id } status errors { code message field }"
# Every edge one user can hold toward another; none may appear from the blocked toward the blocker.
PAIR_EDGES = ("FOLLOWS", "FOLLOW_REQUESTED", "BLOCKS", "MUTES")


def nobody(typename: str) -> str:
    """A well-formed global id that names no object (shard 0, a second after the id epoch)."""
    return to_global_id(typename, make_id(EPOCH_MS + 1000, 0, 7))


def store_id(global_id: str) -> int:
    from base64 import urlsafe_b64decode

    return int(urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode().split(":")[1])


async def pair_edges(gql, a: str, b: str) -> list[str]:
    found = []
    for atype in PAIR_EDGES:
        if await gql.tao.assoc_get(store_id(a), atype, [store_id(b)]):
            found.append(atype)
    return found


@pytest.mark.parametrize("mutation", USER_ID_MUTATIONS)
async def test_every_user_mutation_answers_a_blocker_as_nobody(gql, mutation):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan", private=True)
    _, gone = await gql.sign_up("gone")
    await gql.mutate("follow", ta, d)  # a pending request from ada to dan (the block removes it)
    await gql.mutate("block", ta, d)
    await gql.tao.obj_delete(store_id(gone))
    answers = {name: await gql.mutate(mutation, td, target, FIELDS)
               for name, target in (("blocker", a), ("deleted", gone), ("nobody", nobody("User")))}
    assert answers["blocker"] == answers["nobody"] == answers["deleted"], answers
    assert answers["blocker"]["errors"][0]["code"] == "USER_NOT_FOUND"
    assert answers["blocker"]["errors"][0]["field"] == "userId"
    assert await pair_edges(gql, d, a) == []
    assert await pair_edges(gql, a, d) == ["BLOCKS"]


async def test_the_blocker_can_still_address_the_blocked(gql):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    await gql.mutate("block", ta, d)
    # her own block hides dan from ada's reads, not from her mutations: she knows of it
    assert await gql.mutate("block", ta, d, FIELDS) == {"user": None, "status": "NONE", "errors": []}
    assert (await gql.mutate("follow", ta, d, "errors { code }"))["errors"] == [{"code": "BLOCKED"}]
    assert await gql.mutate("unblock", ta, d, FIELDS) == {"user": {"id": d}, "status": "NONE", "errors": []}
    assert await pair_edges(gql, a, d) == []
    assert (await gql.mutate("follow", td, a, FIELDS))["status"] == "FOLLOWING"


CREATE = "mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }"
ADD = "mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code field message } } }"
# Each mutation that takes a post or comment id: (name, input type, input builder, payload fields).
CONTENT_MUTATIONS = [
    ("likePost", "PostLikeInput", lambda t: {"postId": t["post"]}, "post { id } errors { code field message }"),
    ("unlikePost", "PostUnlikeInput", lambda t: {"postId": t["post"]}, "post { id } errors { code field message }"),
    ("editPost", "PostEditInput", lambda t: {"postId": t["post"], "caption": "x"}, "post { id } errors { code field message }"),
    ("deletePost", "PostDeleteInput", lambda t: {"postId": t["post"]}, "deletedPostId errors { code field message }"),
    ("addComment", "CommentAddInput", lambda t: {"postId": t["post"], "text": "hi"}, "comment { id } errors { code field message }"),
    ("addComment", "CommentAddInput", lambda t: {"postId": t["other_post"], "text": "hi", "replyToId": t["comment"]},
     "comment { id } errors { code field message }"),
    ("deleteComment", "CommentDeleteInput", lambda t: {"commentId": t["comment"]},
     "deletedCommentId errors { code field message }"),
    ("likeComment", "CommentLikeInput", lambda t: {"commentId": t["comment"]}, "comment { id } errors { code field message }"),
    ("unlikeComment", "CommentUnlikeInput", lambda t: {"commentId": t["comment"]},
     "comment { id } errors { code field message }"),
]


@pytest.mark.parametrize("name,input_type,build,fields", CONTENT_MUTATIONS, ids=lambda v: v if isinstance(v, str) else "")
async def test_every_content_mutation_answers_a_blockers_content_as_nothing(gql, name, input_type, build, fields):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    tc, _ = await gql.sign_up("cy")
    post = (await gql.ok(CREATE, {"i": {"caption": "ada's"}}, ta))["createPost"]["post"]["id"]
    other_post = (await gql.ok(CREATE, {"i": {"caption": "cy's"}}, tc))["createPost"]["post"]["id"]
    # ada's comment on a third party's public post: still hers, so hidden from dan too
    comment = (await gql.ok(ADD, {"i": {"postId": other_post, "text": "ada was here"}}, ta))["addComment"]["comment"]["id"]
    await gql.mutate("block", ta, d)
    q = f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ {fields} }} }}"
    real = {"post": post, "other_post": other_post, "comment": comment}
    fake = {"post": nobody("Post"), "other_post": other_post, "comment": nobody("Comment")}
    blocked = (await gql.ok(q, {"i": build(real)}, td))[name]
    missing = (await gql.ok(q, {"i": build(fake)}, td))[name]
    assert blocked == missing, (blocked, missing)
    assert blocked["errors"] and blocked["errors"][0]["code"].endswith("NOT_FOUND")
    assert await gql.tao.assoc_count(store_id(post), "LIKED_BY") == 0
    assert await gql.tao.assoc_count(store_id(post), "HAS_COMMENT") == 0
    assert await gql.tao.assoc_count(store_id(comment), "COMMENT_LIKED_BY") == 0
    assert await gql.tao.assoc_count(store_id(comment), "HAS_REPLY") == 0
