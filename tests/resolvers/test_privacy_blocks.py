"""Blocks on every surface that takes an id: the blocked can never tell a blocker from nobody.

A matrix: each mutation that names a user, a post or a comment, run by the blocked user against
what the blocker owns, must answer exactly what it answers for a well-formed id of nothing and
for a deleted account, and change nothing. The blocker keeps the means to undo their block.
"""

from __future__ import annotations

import pytest

from schema.relay import to_global_id
from tao.ids import EPOCH_MS, make_id

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
    (
        "editPost",
        "PostEditInput",
        lambda t: {"postId": t["post"], "caption": "x"},
        "post { id } errors { code field message }",
    ),
    ("deletePost", "PostDeleteInput", lambda t: {"postId": t["post"]}, "deletedPostId errors { code field message }"),
    (
        "addComment",
        "CommentAddInput",
        lambda t: {"postId": t["post"], "text": "hi"},
        "comment { id } errors { code field message }",
    ),
    (
        "addComment",
        "CommentAddInput",
        lambda t: {"postId": t["other_post"], "text": "hi", "replyToId": t["comment"]},
        "comment { id } errors { code field message }",
    ),
    (
        "deleteComment",
        "CommentDeleteInput",
        lambda t: {"commentId": t["comment"]},
        "deletedCommentId errors { code field message }",
    ),
    (
        "likeComment",
        "CommentLikeInput",
        lambda t: {"commentId": t["comment"]},
        "comment { id } errors { code field message }",
    ),
    (
        "unlikeComment",
        "CommentUnlikeInput",
        lambda t: {"commentId": t["comment"]},
        "comment { id } errors { code field message }",
    ),
]


@pytest.mark.parametrize(
    "name,input_type,build,fields", CONTENT_MUTATIONS, ids=lambda v: v if isinstance(v, str) else ""
)
async def test_every_content_mutation_answers_a_blockers_content_as_nothing(gql, name, input_type, build, fields):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    tc, _ = await gql.sign_up("cy")
    post = (await gql.ok(CREATE, {"i": {"caption": "ada's"}}, ta))["createPost"]["post"]["id"]
    other_post = (await gql.ok(CREATE, {"i": {"caption": "cy's"}}, tc))["createPost"]["post"]["id"]
    # ada's comment on a third party's public post: still hers, so hidden from dan too
    comment = (await gql.ok(ADD, {"i": {"postId": other_post, "text": "ada was here"}}, ta))["addComment"]["comment"][
        "id"
    ]
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


LIKE = "mutation($i: PostLikeInput!) { likePost(input: $i) { errors { code } } }"
LIKE_COMMENT = "mutation($i: CommentLikeInput!) { likeComment(input: $i) { errors { code } } }"
POST_VIEW = """query($id: ID!) { node(id: $id) { ... on Post { likeCount commentCount
  likers { nodes { username } }
  comments { nodes { text replyCount replies { nodes { text } } } } } } }"""
POSTS_VIEW = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Post { likeCount commentCount } } }"


async def comment(gql, token, post, text, reply_to=None):
    i = {"postId": post, "text": text, **({"replyToId": reply_to} if reply_to else {})}
    p = (await gql.ok(ADD, {"i": i}, token))["addComment"]
    assert p["errors"] == [], p
    return p["comment"]["id"]


async def test_a_block_removes_the_blockeds_likes_and_comments_from_the_blockers_posts(gql):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    tc, _ = await gql.sign_up("cy")
    p1 = (await gql.ok(CREATE, {"i": {"caption": "one"}}, ta))["createPost"]["post"]["id"]
    p2 = (await gql.ok(CREATE, {"i": {"caption": "two"}}, ta))["createPost"]["post"]["id"]
    elsewhere = (await gql.ok(CREATE, {"i": {"caption": "cy's"}}, tc))["createPost"]["post"]["id"]
    for token in (td, tc):
        for post in (p1, p2, elsewhere):
            await gql.ok(LIKE, {"i": {"postId": post}}, token)
    cy_top = await comment(gql, tc, p1, "cy top")
    dan_top = await comment(gql, td, p1, "dan top")
    await comment(gql, tc, p1, "cy under dan", dan_top)  # a reply under dan's comment goes with it
    await comment(gql, td, p1, "dan reply", cy_top)
    await comment(gql, tc, p1, "cy reply", cy_top)
    await gql.ok(LIKE_COMMENT, {"i": {"commentId": cy_top}}, td)
    await comment(gql, td, elsewhere, "dan elsewhere")  # not on ada's posts: stays
    await gql.mutate("block", ta, d)
    await gql.tao.run_jobs_until_idle()

    # every viewer, every surface: dan's engagement is gone from ada's posts, counts exact
    want = {"likeCount": 1, "commentCount": 1, "likers": {"nodes": [{"username": "cy"}]},
            "comments": {"nodes": [{"text": "cy top", "replyCount": 1, "replies": {"nodes": [{"text": "cy reply"}]}}]}}
    for token in (ta, tc, None):
        assert (await gql.ok(POST_VIEW, {"id": p1}, token))["node"] == want
        assert (await gql.ok(POSTS_VIEW, {"ids": [p1, p2]}, token))["nodes"] == [
            {"likeCount": 1, "commentCount": 1}, {"likeCount": 1, "commentCount": 0}]
    # the store agrees on both sides of every edge
    dan = store_id(d)
    assert await gql.tao.assoc_count(dan, "LIKES") == 1  # cy's post only
    assert await gql.tao.assoc_get(dan, "LIKES", [store_id(p1), store_id(p2)]) == {}
    assert await gql.tao.assoc_count(dan, "COMMENT_LIKES") == 0
    assert await gql.tao.assoc_count(store_id(cy_top), "COMMENT_LIKED_BY") == 0
    other = (await gql.ok(POST_VIEW, {"id": elsewhere}, tc))["node"]
    assert other["likeCount"] == 2 and [c["text"] for c in other["comments"]["nodes"]] == ["dan elsewhere"]

    # idempotent: the job again changes nothing
    from resolvers.block_cleanup import remove_engagement_job
    from resolvers.job_context import JobContext

    await remove_engagement_job(JobContext(gql.tao, gql.tao.settings), {"blocker": store_id(a), "blocked": dan})
    assert (await gql.ok(POST_VIEW, {"id": p1}, tc))["node"] == want


async def test_a_block_lifted_before_its_job_runs_removes_nothing(gql):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    post = (await gql.ok(CREATE, {"i": {"caption": "one"}}, ta))["createPost"]["post"]["id"]
    await gql.ok(LIKE, {"i": {"postId": post}}, td)
    await gql.tao.run_jobs_until_idle()
    await gql.mutate("block", ta, d)
    await gql.mutate("unblock", ta, d)
    await gql.tao.run_jobs_until_idle()
    assert await gql.tao.assoc_count(store_id(post), "LIKED_BY") == 1


# The other mutations that name users, each as (name, input type, input builder, payload fields);
# `t` maps "user" to the id under test, "friend" to a third user, "thread" to a group dan is in.
OTHER_USER_MUTATIONS = [
    ("recordProfileVisit", "ProfileVisitRecordInput", lambda t: {"userId": t["user"]},
     "ok errors { code field message }"),
    (
        "sendMessage",
        "MessageSendInput",
        lambda t: {"clientMessageId": "c-" + t["user"][-8:], "recipientIds": [t["user"]], "text": "hi"},
        "message { id } errors { code field message }",
    ),
    (
        "sendMessage",
        "MessageSendInput",
        lambda t: {"clientMessageId": "g-" + t["user"][-8:], "recipientIds": [t["friend"], t["user"]], "text": "hi"},
        "message { id } errors { code field message }",
    ),
    ("createGroupThread", "ThreadCreateInput", lambda t: {"userIds": [t["friend"], t["user"]]},
     "thread { id } errors { code field message }"),
    ("addThreadMembers", "ThreadAddMembersInput", lambda t: {"threadId": t["thread"], "userIds": [t["user"]]},
     "thread { id } errors { code field message }"),
]


@pytest.mark.parametrize(
    "name,input_type,build,fields", OTHER_USER_MUTATIONS, ids=lambda v: v if isinstance(v, str) else ""
)
async def test_every_other_user_naming_mutation_answers_a_blocker_as_nobody(gql, name, input_type, build, fields):
    """Visits, direct messages and groups: a blocker is USER_NOT_FOUND exactly as nobody and a deleted account."""
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    _, friend = await gql.sign_up("cy")
    _, gone = await gql.sign_up("gone")
    group = "mutation($i: ThreadCreateInput!) { createGroupThread(input: $i) { thread { id } errors { code } } }"
    made = (await gql.ok(group, {"i": {"userIds": [friend]}}, td))["createGroupThread"]
    assert made["errors"] == [], made
    await gql.mutate("block", ta, d)
    await gql.tao.obj_delete(store_id(gone))
    q = f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ {fields} }} }}"
    answers = {}
    for label, target in (("blocker", a), ("deleted", gone), ("nobody", nobody("User"))):
        t = {"user": target, "friend": friend, "thread": made["thread"]["id"]}
        answers[label] = (await gql.ok(q, {"i": build(t)}, td))[name]
    assert answers["blocker"] == answers["nobody"] == answers["deleted"], answers
    assert answers["blocker"]["errors"][0]["code"] == "USER_NOT_FOUND"
    assert await gql.tao.assoc_count(store_id(d), "VISITED") == 0
    assert await pair_edges(gql, d, a) == []


async def test_sharing_a_blockers_post_in_a_message_answers_as_a_missing_post(gql):
    ta, a = await gql.sign_up("ada")
    td, d = await gql.sign_up("dan")
    _, friend = await gql.sign_up("cy")
    post = (await gql.ok(CREATE, {"i": {"caption": "ada's"}}, ta))["createPost"]["post"]["id"]
    await gql.mutate("block", ta, d)
    send = "mutation($i: MessageSendInput!) { sendMessage(input: $i) { message { id } errors { code field message } } }"
    answers = [(await gql.ok(send, {"i": {"clientMessageId": f"share-{n}", "recipientIds": [friend], "postId": p}},
                             td))["sendMessage"] for n, p in enumerate((post, nobody("Post")))]
    assert answers[0] == answers[1], answers
    assert answers[0]["errors"][0]["code"] == "POST_NOT_FOUND"
