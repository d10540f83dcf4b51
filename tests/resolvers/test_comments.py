"""Comments through GraphQL on both backends: adding, replies one level deep, newest-first
pages, exact counts, deletion by the comment's or the post's author, privacy, bad input."""

from __future__ import annotations

ADD = """mutation($i: CommentAddInput!) { addComment(input: $i) {
  comment { id text author { username } replyTo { id } post { id } } errors { code field } } }"""
DELETE = "mutation($i: CommentDeleteInput!) { deleteComment(input: $i) { deletedCommentId errors { code } } }"
POST = """query($id: ID!) { node(id: $id) { ... on Post { commentCount
  comments(first: 10) { nodes { text replyCount replies { nodes { text replyTo { text } } } } } } } }"""


async def new_post(gql, token, caption="post"):
    data = await gql.ok("mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }",
                        {"i": {"caption": caption}}, token)
    return data["createPost"]["post"]["id"]


async def add(gql, token, post_id, text, reply_to=None):
    i = {"postId": post_id, "text": text}
    if reply_to:
        i["replyToId"] = reply_to
    return (await gql.ok(ADD, {"i": i}, token))["addComment"]


def texts(conn):
    return [n["text"] for n in conn["nodes"]]


async def test_comments_replies_and_counts(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = await new_post(gql, ta)
    first = await add(gql, tb, post, "  first!  ")
    assert first["errors"] == [] and first["comment"]["text"] == "first!"  # trimmed
    assert first["comment"]["author"] == {"username": "bob"} and first["comment"]["post"] == {"id": post}
    second = await add(gql, ta, post, "second")
    reply = await add(gql, ta, post, "thanks", first["comment"]["id"])
    assert reply["comment"]["replyTo"] == {"id": first["comment"]["id"]}
    # a reply to a reply joins the top-level comment
    nested = await add(gql, tb, post, "you're welcome", reply["comment"]["id"])
    assert nested["comment"]["replyTo"] == {"id": first["comment"]["id"]}
    p = (await gql.ok(POST, {"id": post}, tb))["node"]
    assert p["commentCount"] == 2
    assert texts(p["comments"]) == ["second", "first!"]  # newest first
    top = p["comments"]["nodes"][1]
    assert top["replyCount"] == 2 and texts(top["replies"]) == ["you're welcome", "thanks"]
    assert top["replies"]["nodes"][0]["replyTo"] == {"text": "first!"}
    assert second["errors"] == []


async def test_comment_pages_are_keyset_and_stable(gql):
    ta, _ = await gql.sign_up("ada")
    post = await new_post(gql, ta)
    for i in range(5):
        await add(gql, ta, post, f"c{i}")
    q = """query($id: ID!, $after: String) { node(id: $id) { ... on Post {
      comments(first: 2, after: $after) { nodes { text } pageInfo { hasNextPage endCursor } } } } }"""
    seen, after = [], None
    while True:
        page = (await gql.ok(q, {"id": post, "after": after}, ta))["node"]["comments"]
        seen += texts(page)
        if len(seen) == 2:
            await add(gql, ta, post, "late")  # a new comment at the head does not shift the pages
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["c4", "c3", "c2", "c1", "c0"]


async def test_delete_comment_by_author_or_post_author_only(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    c1 = (await add(gql, tb, post, "by bob"))["comment"]["id"]
    c2 = (await add(gql, tc, post, "by cy"))["comment"]["id"]
    r = (await add(gql, tc, post, "reply by cy", c1))["comment"]["id"]
    await gql.ok(
        "mutation($i: CommentLikeInput!) { likeComment(input: $i) { errors { code } } }", {"i": {"commentId": c1}}, tc
    )
    # a third party may not delete
    assert (await gql.ok(DELETE, {"i": {"commentId": c1}}, tc))["deleteComment"]["errors"] == [{"code": "NOT_ALLOWED"}]
    # the comment's author may; its replies go with it
    assert (await gql.ok(DELETE, {"i": {"commentId": c1}}, tb))["deleteComment"] == {
        "deletedCommentId": c1,
        "errors": [],
    }
    # the post's author may delete anyone's comment
    assert (await gql.ok(DELETE, {"i": {"commentId": c2}}, ta))["deleteComment"]["errors"] == []
    p = (await gql.ok(POST, {"id": post}, ta))["node"]
    assert p["commentCount"] == 0 and texts(p["comments"]) == []
    await gql.tao.run_jobs_until_idle()
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert (await gql.ok(node, {"id": r}, tc))["node"] is None  # the reply went with its comment
    cy = (await gql.tao.key_get_many("username", ["cy"]))["cy"]
    assert await gql.tao.assoc_count(cy, "COMMENT_LIKES") == 0
    assert (await gql.ok(DELETE, {"i": {"commentId": c1}}, tb))["deleteComment"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_bad_comments_are_refused_and_change_nothing(gql):
    ta, _ = await gql.sign_up("ada", private=True)
    tb, _ = await gql.sign_up("bob")
    secret = await new_post(gql, ta, "secret")
    public = await new_post(gql, tb, "public")
    other = await new_post(gql, tb, "other")
    on_other = (await add(gql, tb, other, "elsewhere"))["comment"]["id"]
    cases = [
        (tb, public, "   ", None, "TEXT_EMPTY"),
        (tb, public, "x" * 2201, None, "TEXT_TOO_LONG"),
        (tb, public, " ".join(f"@u{i}" for i in range(21)), None, "TOO_MANY_MENTIONS"),
        (tb, secret, "let me in", None, "POST_NOT_FOUND"),  # a private account's post
        (tb, public, "wrong thread", on_other, "REPLY_TARGET_NOT_FOUND"),
    ]
    for token, post, text, reply_to, code in cases:
        p = await add(gql, token, post, text, reply_to)
        assert p["comment"] is None and [e["code"] for e in p["errors"]] == [code], code
    assert (await gql.ok(POST, {"id": public}, tb))["node"]["commentCount"] == 0
    body = await gql(ADD, {"i": {"postId": "bogus", "text": "x"}}, tb)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await gql(ADD, {"i": {"postId": public, "text": "x"}})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_blocked_commenters_are_hidden(gql):
    ta, _ = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy", private=True)
    post = await new_post(gql, ta)
    await add(gql, tb, post, "from bob")
    await add(gql, tc, post, "from private cy")  # a private account's comment shows on a public post
    assert texts((await gql.ok(POST, {"id": post}, tb))["node"]["comments"]) == ["from private cy", "from bob"]
    await gql.mutate("block", tc, b)
    assert texts((await gql.ok(POST, {"id": post}, tb))["node"]["comments"]) == ["from bob"]
    assert texts((await gql.ok(POST, {"id": post}, ta))["node"]["comments"]) == ["from private cy", "from bob"]
