"""Counts agree with lists for every viewer: a restricted account's own comments awaiting
approval count for it alone; a post author's reply to such a comment is as hidden as the
comment; accounts pending deletion leave the counts as they leave the lists."""

from __future__ import annotations

ADD = """mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code } } }"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Comment { text } } }"
POST = """query($id: ID!) { node(id: $id) { ... on Post { commentCount comments { nodes { text
  replyCount replies { nodes { text } } } } } } }"""


async def new_post(gql, token) -> str:
    return (await gql.ok('mutation { createPost(input: {caption: "p"}) { post { id } } }', token=token))["createPost"][
        "post"
    ]["id"]


async def comment(gql, token, post, text, reply_to=None) -> str:
    i = {"postId": post, "text": text} | ({"replyToId": reply_to} if reply_to else {})
    p = (await gql.ok(ADD, {"i": i}, token))["addComment"]
    assert p["errors"] == [], p
    return p["comment"]["id"]


async def test_a_reply_to_a_pending_comment_is_as_hidden_as_the_comment(gql):
    """The post's author may reply to a restricted account's comment awaiting approval; the reply
    was then visible to anyone through node(id:) (its rule checked the reply, not its parent)."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tr, r = await gql.sign_up("rex")
    pid = await new_post(gql, ta)
    await gql.mutate("restrict", ta, r, "errors { code }")
    pending = await comment(gql, tr, pid, "hmm")
    reply = await comment(gql, ta, pid, "why?", pending)
    for token in (ta, tr):
        assert (await gql.ok(NODE, {"id": reply}, token))["node"] == {"id": reply, "text": "why?"}
    for token in (tb, None):
        assert (await gql.ok(NODE, {"id": pending}, token))["node"] is None
        assert (await gql.ok(NODE, {"id": reply}, token))["node"] is None
    # Approved, the thread shows to everyone.
    ok = await gql.ok(
        "mutation($i: CommentApproveInput!) { approveComment(input: $i) { errors { code } } }",
        {"i": {"commentId": pending}},
        ta,
    )
    assert ok["approveComment"]["errors"] == []
    assert (await gql.ok(NODE, {"id": reply}, tb))["node"] == {"id": reply, "text": "why?"}


PAGE = """query { user(username: "ada") { posts { nodes { commentCount comments { nodes { text replyCount } } } } } }"""


async def test_a_restricted_account_counts_its_own_pending_comments_and_replies(gql):
    """A restricted account sees its own comments and replies awaiting approval as posted; the
    counts it saw left them out (commentCount 0 under its own comment): the tell restrict must
    not give. Everyone else's counts leave them out, on one post and on a page of posts."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tr, r = await gql.sign_up("rex")
    pid = await new_post(gql, ta)
    await comment(gql, tb, pid, "hi")
    await gql.mutate("restrict", ta, r, "errors { code }")
    await comment(gql, tr, pid, "hmm")
    hi = await gql.ok(
        "query($id: ID!) { node(id: $id) { ... on Post { comments { nodes { id text } } } } }", {"id": pid}, tb
    )
    hi_id = hi["node"]["comments"]["nodes"][0]["id"]
    await comment(gql, tr, pid, "meh", hi_id)

    async def seen(token):
        one = (await gql.ok(POST, {"id": pid}, token))["node"]
        page = (await gql.ok(PAGE, token=token))["user"]["posts"]["nodes"][0]
        counts = [(one["commentCount"], [(c["text"], c["replyCount"]) for c in one["comments"]["nodes"]])]
        counts.append((page["commentCount"], [(c["text"], c["replyCount"]) for c in page["comments"]["nodes"]]))
        assert counts[0] == counts[1], counts
        return counts[0]

    assert await seen(tr) == (2, [("hmm", 0), ("hi", 1)])
    for token in (ta, tb, None):
        assert await seen(token) == (1, [("hi", 0)])
