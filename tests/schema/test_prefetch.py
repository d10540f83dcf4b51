"""A page of posts loads what the request selects of its posts in one batched round
(schema/prefetch.py): the answers are exactly what each field's own resolver gives, for any
selection (aliases with other arguments, fragments, privacy), and the work no longer grows a task
per post and field."""

from __future__ import annotations

import asyncio

from tests.schema.client import GQL

POST_FIELDS = """id likeCount viewerHasLiked commentCount author { username }
  comments(first: 2) { nodes { text author { username } likeCount replyCount viewerHasLiked }
                       pageInfo { hasNextPage endCursor } }"""


async def _post(gql: GQL, token: str, caption: str) -> str:
    data = await gql.ok("mutation($c: String!) { createPost(input: {caption: $c}) { post { id } } }", {"c": caption},
                        token)
    return data["createPost"]["post"]["id"]


async def _comment(gql: GQL, token: str, post: str, text: str) -> str:
    data = await gql.ok("mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code } } }",
                        {"i": {"postId": post, "text": text}}, token)
    return data["addComment"]["comment"]["id"]


async def _world(gql: GQL) -> dict:
    """An author with 4 posts; likes and comments from several accounts, one of which the viewer
    blocks (its comments must not show on the page, as on each post alone)."""
    author, _ = await gql.sign_up("author")
    viewer, _ = await gql.sign_up("viewer")
    fan, _ = await gql.sign_up("fan")
    troll, troll_id = await gql.sign_up("troll")
    posts = [await _post(gql, author, f"post {i}") for i in range(4)]
    for i, post in enumerate(posts):
        for who in [viewer, fan][: i % 3]:
            await gql.ok("mutation($i: PostLikeInput!) { likePost(input: $i) { errors { code } } }",
                         {"i": {"postId": post}}, who)
        for n in range(i):
            await _comment(gql, [fan, troll, author][n % 3], post, f"comment {n} on {i}")
    liked = await _comment(gql, fan, posts[3], "likeable")
    await gql.ok("mutation($i: CommentLikeInput!) { likeComment(input: $i) { errors { code } } }",
                 {"i": {"commentId": liked}}, viewer)
    await gql.mutate("block", viewer, troll_id)
    return {"viewer": viewer, "posts": posts}


async def _each_alone(gql: GQL, ids: list[str], fields: str, token: str) -> list[dict]:
    """The same fields read through `node(id:)`: one post at a time, nothing prefetched."""
    out = []
    for post_id in ids:
        data = await gql.ok(f"query($id: ID!) {{ node(id: $id) {{ ... on Post {{ {fields} }} }} }}", {"id": post_id},
                            token)
        out.append(data["node"])
    return out


async def test_a_page_answers_what_each_post_alone_answers(gql: GQL) -> None:
    w = await _world(gql)
    page = await gql.ok(f'{{ user(username: "author") {{ posts(first: 10) {{ nodes {{ {POST_FIELDS} }} }} }} }}',
                        token=w["viewer"])
    nodes = page["user"]["posts"]["nodes"]
    assert [n["id"] for n in nodes] == list(reversed(w["posts"]))
    assert nodes == await _each_alone(gql, [n["id"] for n in nodes], POST_FIELDS, w["viewer"])
    # The data is what was written: the viewer's block hides the troll's comments everywhere.
    assert all(c["author"]["username"] != "troll" for n in nodes for c in n["comments"]["nodes"])
    assert any(n["viewerHasLiked"] for n in nodes) and any(n["likeCount"] == 2 for n in nodes)


async def test_aliases_fragments_and_arguments_each_get_their_own_answer(gql: GQL) -> None:
    w = await _world(gql)
    fields = """id ...Counts one: comments(first: 1) { nodes { text } } three: comments(first: 3) { nodes { text } }
                ... on Post { who: author { username } }"""
    page = await gql.ok(f"""{{ user(username: "author") {{ posts(first: 10) {{ edges {{ node {{ {fields} }} }} }} }} }}
                            fragment Counts on Post {{ likeCount commentCount }}""", token=w["viewer"])
    nodes = [e["node"] for e in page["user"]["posts"]["edges"]]
    alone = []
    for post_id in [n["id"] for n in nodes]:
        data = await gql.ok(f"""query($id: ID!) {{ node(id: $id) {{ ... on Post {{ {fields} }} }} }}
                                fragment Counts on Post {{ likeCount commentCount }}""", {"id": post_id}, w["viewer"])
        alone.append(data["node"])
    assert nodes == alone
    # Pages are read then filtered (a page may be short): the troll's comments are hidden.
    assert [len(n["three"]["nodes"]) for n in nodes] == [2, 1, 1, 0]
    assert [len(n["one"]["nodes"]) for n in nodes] == [1, 0, 1, 0]


async def test_a_bad_argument_is_reported_by_the_field_as_before(gql: GQL) -> None:
    w = await _world(gql)
    body = await gql('{ user(username: "author") { posts(first: 2) { nodes { comments(first: 2, after: "nope") '
                     '{ nodes { text } } } } } }', token=w["viewer"])
    assert body["errors"] and all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in body["errors"])
    assert "cursor" in body["errors"][0]["message"]


async def test_tasks_per_page_do_not_grow_with_the_page(gql: GQL) -> None:
    """Before the prefetch, each post's async fields (author, counts, the viewer's like, its
    comment page, each comment's author) were coroutines graphql-core gathered as tasks: ~10
    tasks per post. Now a page of 4 posts costs what a page of 1 does."""
    w = await _world(gql)
    loop = asyncio.get_running_loop()
    created = 0
    default_factory = loop.get_task_factory()

    def counting_factory(loop_, coro, **kwargs):
        nonlocal created
        created += 1
        if default_factory is not None:
            return default_factory(loop_, coro, **kwargs)
        return asyncio.Task(coro, loop=loop_, **kwargs)

    async def tasks_for(first: int) -> int:
        nonlocal created
        query = f'{{ user(username: "author") {{ posts(first: {first}) {{ nodes {{ {POST_FIELDS} }} }} }} }}'
        await gql.ok(query, token=w["viewer"])  # warm: the same request's loads, cached
        created = 0
        loop.set_task_factory(counting_factory)
        try:
            await gql.ok(query, token=w["viewer"])
        finally:
            loop.set_task_factory(default_factory)
        return created

    one, four = await tasks_for(1), await tasks_for(4)
    assert four <= one + 2, (one, four)
