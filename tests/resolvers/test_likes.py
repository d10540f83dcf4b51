"""Likes of posts and comments through GraphQL on both backends: idempotent, exact counts,
`viewerHasLiked`, likers newest first and through privacy."""

from __future__ import annotations

LIKE = "mutation($i: PostLikeInput!) { likePost(input: $i) { post { likeCount viewerHasLiked } errors { code } } }"
UNLIKE = (
    "mutation($i: PostUnlikeInput!) { unlikePost(input: $i) { post { likeCount viewerHasLiked } errors { code } } }"
)
POST = """query($id: ID!) { node(id: $id) { ... on Post { likeCount viewerHasLiked
  likers(first: 10) { nodes { username } } } } }"""


async def new_post(gql, token):
    data = await gql.ok("mutation { createPost(input: {caption: \"p\"}) { post { id } } }", token=token)
    return data["createPost"]["post"]["id"]


async def test_like_unlike_idempotent_with_exact_counts(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    assert (await gql.ok(LIKE, {"i": {"postId": post}}, tb))["likePost"] == {
        "post": {"likeCount": 1, "viewerHasLiked": True}, "errors": []}
    assert (await gql.ok(LIKE, {"i": {"postId": post}}, tb))["likePost"]["post"]["likeCount"] == 1  # idempotent
    await gql.ok(LIKE, {"i": {"postId": post}}, tc)
    p = (await gql.ok(POST, {"id": post}, tb))["node"]
    assert p["likeCount"] == 2 and p["viewerHasLiked"] is True
    assert [n["username"] for n in p["likers"]["nodes"]] == ["cy", "bob"]  # newest like first
    assert (await gql.ok(POST, {"id": post}, ta))["node"]["viewerHasLiked"] is False
    assert (await gql.ok(POST, {"id": post}))["node"]["viewerHasLiked"] is False  # anonymous
    assert (await gql.ok(UNLIKE, {"i": {"postId": post}}, tb))["unlikePost"] == {
        "post": {"likeCount": 1, "viewerHasLiked": False}, "errors": []}
    assert (await gql.ok(UNLIKE, {"i": {"postId": post}}, tb))["unlikePost"]["post"]["likeCount"] == 1
    bob = (await gql.tao.key_get_many("username", ["bob"]))["bob"]
    assert await gql.tao.assoc_count(bob, "LIKES") == 0


async def test_likers_hide_blocked_accounts(gql):
    ta, _ = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    for t in (tb, tc):
        await gql.ok(LIKE, {"i": {"postId": post}}, t)
    await gql.mutate("block", tb, c)
    p = (await gql.ok(POST, {"id": post}, tb))["node"]
    assert p["likeCount"] == 2  # the count is the post's, exact
    assert [n["username"] for n in p["likers"]["nodes"]] == ["bob"]


async def test_comment_likes(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = await new_post(gql, ta)
    data = await gql.ok("mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } } }",
                        {"i": {"postId": post, "text": "hi"}}, tb)
    cid = data["addComment"]["comment"]["id"]
    like = ("mutation($i: CommentLikeInput!) { likeComment(input: $i) { "
            "comment { likeCount viewerHasLiked } errors { code } } }")
    unlike = ("mutation($i: CommentUnlikeInput!) { unlikeComment(input: $i) { "
              "comment { likeCount viewerHasLiked } errors { code } } }")
    for _ in range(2):
        assert (await gql.ok(like, {"i": {"commentId": cid}}, ta))["likeComment"] == {
            "comment": {"likeCount": 1, "viewerHasLiked": True}, "errors": []}
    assert (await gql.ok(unlike, {"i": {"commentId": cid}}, ta))["unlikeComment"]["comment"] == {
        "likeCount": 0, "viewerHasLiked": False}
    # a comment on a post the viewer cannot see cannot be liked
    await gql.mutate("block", ta, (await gql.ok('{ user(username: "bob") { id } }'))["user"]["id"])
    assert (await gql.ok(like, {"i": {"commentId": cid}}, ta))["likeComment"]["errors"] == [{"code": "NOT_FOUND"}]
    body = await gql(like, {"i": {"commentId": post}}, ta)  # a Post's id where a Comment's belongs
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
