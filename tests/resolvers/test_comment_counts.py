"""Counts agree with lists for every viewer: a restricted account's own comments awaiting
approval count for it alone; a post author's reply to such a comment is as hidden as the
comment; accounts pending deletion leave the counts as they leave the lists."""

from __future__ import annotations

import asyncio

from tests.resolvers.messages_client import store_id

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


THREAD = """query($id: ID!) { node(id: $id) { ... on Post { likeCount likers { nodes { username } } commentCount
  comments { nodes { text likeCount replyCount replies { nodes { text } } } } } } }"""
LIKE_POST = "mutation($i: PostLikeInput!) { likePost(input: $i) { errors { code } } }"
LIKE_COMMENT = "mutation($i: CommentLikeInput!) { likeComment(input: $i) { errors { code } } }"
DELETE_ACCOUNT = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"
LOGIN = "mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p}) { token errors { code } } }"


def _agrees(node: dict) -> tuple:
    """(likes, comments, [(text, likes, replies)]), asserting each count equals its list."""
    assert node["likeCount"] == len(node["likers"]["nodes"]), node
    assert node["commentCount"] == len(node["comments"]["nodes"]), node
    for c in node["comments"]["nodes"]:
        assert c["replyCount"] == len(c["replies"]["nodes"]), c
    return (
        node["likeCount"],
        node["commentCount"],
        sorted((c["text"], c["likeCount"], c["replyCount"]) for c in node["comments"]["nodes"]),
    )


async def test_counts_leave_out_an_account_pending_deletion_as_lists_do(gql):
    """An account that asked to be deleted is hidden at once, with its likes and comments; the
    counts kept them (likeCount 2 over one liker) until the purge. They now drop with the lists
    while the deletion is pending, and come back if it is cancelled."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    pid = await new_post(gql, ta)
    mine = await comment(gql, ta, pid, "a1")
    await comment(gql, tb, pid, "b1")
    await comment(gql, tb, pid, "b2", mine)
    await comment(gql, tc, pid, "c1")
    for token in (tb, tc):
        assert (await gql.ok(LIKE_POST, {"i": {"postId": pid}}, token))["likePost"]["errors"] == []
    assert (await gql.ok(LIKE_COMMENT, {"i": {"commentId": mine}}, tb))["likeComment"]["errors"] == []
    before = (2, 3, [("a1", 1, 1), ("b1", 0, 0), ("c1", 0, 0)])
    assert _agrees((await gql.ok(THREAD, {"id": pid}, ta))["node"]) == before

    assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": "password-bob"}}, tb))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    hidden = (1, 2, [("a1", 0, 0), ("c1", 0, 0)])
    for token in (ta, tc, None):
        assert _agrees((await gql.ok(THREAD, {"id": pid}, token))["node"]) == hidden

    # a log-in within the grace period cancels the deletion: everything counts again
    assert (await gql.ok(LOGIN, {"u": "bob", "p": "password-bob"}))["logIn"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert _agrees((await gql.ok(THREAD, {"id": pid}, ta))["node"]) == before

    # deleted again, and purged: the tallies go with what they tallied, and the counts stay right
    gql.tao.settings.account_data.deletion_grace_seconds = 1
    tb = (await gql.ok(LOGIN, {"u": "bob", "p": "password-bob"}))["logIn"]["token"]
    assert (await gql.ok(DELETE_ACCOUNT, {"i": {"password": "password-bob"}}, tb))["deleteAccount"]["ok"]
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert _agrees((await gql.ok(THREAD, {"id": pid}, ta))["node"]) == hidden
    await asyncio.sleep(1.2)
    await gql.tao.run_jobs_until_idle()
    assert _agrees((await gql.ok(THREAD, {"id": pid}, ta))["node"]) == hidden
    pid_, mine_ = store_id(pid), store_id(mine)
    tallies = [
        (pid_, "DORMANT_LIKER"),
        (pid_, "DORMANT_COMMENT"),
        (mine_, "DORMANT_COMMENT_LIKER"),
        (mine_, "DORMANT_REPLY"),
    ]
    assert set((await gql.tao.assoc_count_many(tallies)).values()) == {0}


async def test_deleting_a_comment_deletes_the_replies_awaiting_approval_under_it(gql):
    """A restricted account's reply awaiting approval is listed by the post's PENDING_COMMENT, not
    by its comment's HAS_REPLY: deleting the comment drained HAS_REPLY alone, so the pending
    reply stayed, an orphan in the post's pending list (and in its count) until the post went."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tr, r = await gql.sign_up("rex")
    pid = await new_post(gql, ta)
    top = await comment(gql, tb, pid, "hi")
    await gql.mutate("restrict", ta, r, "errors { code }")
    reply = await comment(gql, tr, pid, "meh", top)
    other = await comment(gql, tr, pid, "hmm")  # pending too, on the post: it stays
    gone = await gql.ok(
        "mutation($i: CommentDeleteInput!) { deleteComment(input: $i) { errors { code } } }",
        {"i": {"commentId": top}},
        tb,
    )
    assert gone["deleteComment"]["errors"] == []
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert (await gql.tao.obj_get([store_id(reply)])).get(store_id(reply)) is None
    assert [a.id2 for a in await gql.tao.assoc_range(store_id(pid), "PENDING_COMMENT", 0, 10)] == [store_id(other)]


async def test_a_comment_that_shows_as_nothing_or_holds_controls_is_refused(gql):
    """A zero-width space alone (or with a word joiner) posted a comment that shows as nothing,
    and a bell or a terminal escape was taken as text. Line breaks and tabs stay fine."""
    ta, _ = await gql.sign_up("ada")
    pid = await new_post(gql, ta)
    cases = {
        "\u200b": "TEXT_EMPTY",
        "\u200b \u2060\ufeff": "TEXT_EMPTY",
        "a\x07b": "TEXT_INVALID",
        "\x1b[31mred": "TEXT_INVALID",
        "a\x85b": "TEXT_INVALID",
    }
    for text, code in cases.items():
        p = (await gql.ok(ADD, {"i": {"postId": pid, "text": text}}, ta))["addComment"]
        assert p == {"comment": None, "errors": [{"code": code}]}, (text, p)
    assert (await gql.ok(POST, {"id": pid}, ta))["node"]["commentCount"] == 0
    await comment(gql, ta, pid, "two\nlines\tand a tab \u200d")


async def test_a_caption_with_control_characters_is_refused_on_create_and_edit(gql):
    ta, _ = await gql.sign_up("ada")
    create = "mutation($c: String!) { createPost(input: {caption: $c}) { post { id } errors { code field } } }"
    for caption in ("a\x07b", "\x1b[2Jcleared"):
        p = (await gql.ok(create, {"c": caption}, ta))["createPost"]
        assert p == {"post": None, "errors": [{"code": "CAPTION_INVALID", "field": "caption"}]}, p
    pid = (await gql.ok(create, {"c": "two\nlines\tfine"}, ta))["createPost"]["post"]["id"]
    edit = "mutation($i: PostEditInput!) { editPost(input: $i) { post { caption } errors { code field } } }"
    p = (await gql.ok(edit, {"i": {"postId": pid, "caption": "x\x08"}}, ta))["editPost"]
    assert p == {"post": None, "errors": [{"code": "CAPTION_INVALID", "field": "caption"}]}, p
    assert (await gql.ok("query($id: ID!) { node(id: $id) { ... on Post { caption } } }", {"id": pid}, ta))["node"] == {
        "caption": "two\nlines\tfine"
    }


async def test_an_approval_racing_a_delete_leaves_no_count_of_a_deleted_comment(gql):
    """approveComment and deleteComment of one pending comment at once: the delete removed it
    from the pending list, then the approval added it to the post's comments, an edge to a
    deleted comment that commentCount counted (every time, here). Both now write at the version
    they read (a compare-and-set), and the approval checks the comment still exists after its edge."""
    ta, _ = await gql.sign_up("ada")
    tr, r = await gql.sign_up("rex")
    pid = await new_post(gql, ta)
    await gql.mutate("restrict", ta, r, "errors { code }")
    approve = "mutation($i: CommentApproveInput!) { approveComment(input: $i) { errors { code } } }"
    delete = "mutation($i: CommentDeleteInput!) { deleteComment(input: $i) { errors { code } } }"
    for i in range(5):
        c = await comment(gql, tr, pid, f"c{i}")
        await asyncio.gather(gql(approve, {"i": {"commentId": c}}, ta), gql(delete, {"i": {"commentId": c}}, tr))
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    edges = await gql.tao.assoc_range(store_id(pid), "HAS_COMMENT", 0, 100)
    assert edges == [] and not await gql.tao.obj_get([e.id2 for e in edges])
    assert (await gql.ok(POST, {"id": pid}, ta))["node"] == {"commentCount": 0, "comments": {"nodes": []}}
