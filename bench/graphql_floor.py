"""The floor for the profile page: what plain strawberry needs to run `bench/graphql_bench.py`'s
profile query over in-memory objects, with no I/O, no caches, no extensions and no HTTP.

    PYTHONPATH=. .venv/bin/python bench/graphql_floor.py             # CPU per execution
    PYTHONPATH=. .venv/bin/python bench/graphql_floor.py --profile   # where that CPU goes
    PYTHONPATH=. .venv/bin/python bench/graphql_floor.py --async-fields  # and with taogram's async fields

A schema of the same shape as taogram's for the fields the query reads (User, a Relay connection
of 20 Posts, each with its author, counts, the viewer's like and a connection of 3 Comments with
their authors, the same scalar types, DateTime included), every field a plain attribute or a
method over Python objects. Each execution is `schema.execute(query, variables)` as a strawberry
user would call it: the document parsed and validated every time (strawberry's default, no
`ParserCache`/`ValidationCache`), executed, and its result serialized to JSON, as a server
must. `graphql_bench.py` imports `run_floor` and runs it in the same run as the server, so
both see the same machine; CPU time (`time.process_time`), not wall time, since the box is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import strawberry

from bench.graphql_bench import QUERIES

POSTS, COMMENTS = 20, 3


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class User:
    id: strawberry.ID
    username: str
    full_name: str
    post_count: int
    follower_count: int
    all_posts: strawberry.Private[list[Post]] = field(default_factory=list)

    @strawberry.field
    def posts(self, first: int = 20, after: str | None = None) -> PostConnection:
        page = self.all_posts[:first]
        edges = [PostEdge(cursor=f"c{p.id}", node=p) for p in page]
        return PostConnection(edges=edges, page_info=PageInfo(
            has_next_page=len(self.all_posts) > first, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))


@strawberry.type
class Comment:
    id: strawberry.ID
    text: str
    created_at: datetime
    author: User


@strawberry.type
class CommentEdge:
    cursor: str
    node: Comment


@strawberry.type
class CommentConnection:
    edges: list[CommentEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Comment]:
        return [e.node for e in self.edges]


@strawberry.type
class Post:
    id: strawberry.ID
    caption: str
    created_at: datetime
    author: User
    like_count: int
    viewer_has_liked: bool
    comment_count: int
    all_comments: strawberry.Private[list[Comment]]

    @strawberry.field
    def comments(self, first: int = 20, after: str | None = None) -> CommentConnection:
        page = self.all_comments[:first]
        edges = [CommentEdge(cursor=f"c{c.id}", node=c) for c in page]
        return CommentConnection(edges=edges, page_info=PageInfo(
            has_next_page=len(self.all_comments) > first, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))


@strawberry.type
class PostEdge:
    cursor: str
    node: Post


@strawberry.type
class PostConnection:
    edges: list[PostEdge]
    page_info: PageInfo


@dataclass
class Store:
    users: dict[str, User] = field(default_factory=dict)


STORE = Store()


@strawberry.type
class Query:
    @strawberry.field
    def user(self, username: str) -> User | None:
        return STORE.users.get(username)


SCHEMA = strawberry.Schema(query=Query)


# ---- the same shape with taogram's async fields (`--async-fields`) ---------------------------------
# Not the floor: the fields taogram resolves with I/O (author, counts, the viewer's like, the
# connections) as `async def` over the same in-memory objects, with no loaders. The difference
# from the floor is what async field resolution itself costs in graphql-core and strawberry.

@strawberry.type(name="Comment")
class AsyncComment:
    id: strawberry.ID
    text: str
    created_at: datetime
    c: strawberry.Private[Comment]

    @strawberry.field
    async def author(self) -> AsyncUser:
        return AsyncUser.of(self.c.author)


@strawberry.type(name="CommentEdge")
class AsyncCommentEdge:
    cursor: str
    node: AsyncComment


@strawberry.type(name="CommentConnection")
class AsyncCommentConnection:
    edges: list[AsyncCommentEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[AsyncComment]:
        return [e.node for e in self.edges]


@strawberry.type(name="Post")
class AsyncPost:
    id: strawberry.ID
    caption: str
    created_at: datetime
    p: strawberry.Private[Post]

    @strawberry.field
    async def author(self) -> AsyncUser:
        return AsyncUser.of(self.p.author)

    @strawberry.field
    async def like_count(self) -> int:
        return self.p.like_count

    @strawberry.field
    async def viewer_has_liked(self) -> bool:
        return self.p.viewer_has_liked

    @strawberry.field
    async def comment_count(self) -> int:
        return self.p.comment_count

    @strawberry.field
    async def comments(self, first: int = 20, after: str | None = None) -> AsyncCommentConnection:
        page = self.p.all_comments[:first]
        edges = [AsyncCommentEdge(cursor=f"c{c.id}",
                                  node=AsyncComment(id=c.id, text=c.text, created_at=c.created_at, c=c))
                 for c in page]
        return AsyncCommentConnection(edges=edges, page_info=PageInfo(
            has_next_page=len(self.p.all_comments) > first, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))


@strawberry.type(name="PostEdge")
class AsyncPostEdge:
    cursor: str
    node: AsyncPost


@strawberry.type(name="PostConnection")
class AsyncPostConnection:
    edges: list[AsyncPostEdge]
    page_info: PageInfo


@strawberry.type(name="User")
class AsyncUser:
    id: strawberry.ID
    username: str
    full_name: str
    u: strawberry.Private[User]

    @classmethod
    def of(cls, u: User) -> AsyncUser:
        return cls(id=u.id, username=u.username, full_name=u.full_name, u=u)

    @strawberry.field
    async def post_count(self) -> int:
        return self.u.post_count

    @strawberry.field
    async def follower_count(self) -> int:
        return self.u.follower_count

    @strawberry.field
    async def posts(self, first: int = 20, after: str | None = None) -> AsyncPostConnection:
        page = self.u.all_posts[:first]
        edges = [AsyncPostEdge(cursor=f"c{p.id}",
                               node=AsyncPost(id=p.id, caption=p.caption, created_at=p.created_at, p=p))
                 for p in page]
        return AsyncPostConnection(edges=edges, page_info=PageInfo(
            has_next_page=len(self.u.all_posts) > first, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None))


@strawberry.type(name="Query")
class AsyncQuery:
    @strawberry.field
    async def user(self, username: str) -> AsyncUser | None:
        u = STORE.users.get(username)
        return AsyncUser.of(u) if u is not None else None


ASYNC_SCHEMA = strawberry.Schema(query=AsyncQuery)


def make_objects(authors: int = 20) -> list[str]:
    """`authors` profiles of 24 posts with 3 comments each (the bench's data, in memory)."""
    STORE.users.clear()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    commenters = [User(id=strawberry.ID(f"U{i}"), username=f"commenter{i}", full_name=f"C {i}", post_count=0,
                       follower_count=i) for i in range(50)]
    for a in range(authors):
        u = User(id=strawberry.ID(f"A{a}"), username=f"author{a}", full_name=f"Author {a}", post_count=24,
                 follower_count=100 + a)
        for k in range(24):
            comments = [Comment(id=strawberry.ID(f"C{a}.{k}.{c}"), text=f"nice one, says {c}", created_at=t0,
                                author=commenters[(a + k + c) % 50]) for c in range(COMMENTS)]
            u.all_posts.append(Post(id=strawberry.ID(f"P{a}.{k}"), caption=f"post {k} by {a} #bench", created_at=t0,
                                    author=u, like_count=k, viewer_has_liked=k % 3 == 0, comment_count=COMMENTS,
                                    all_comments=comments))
        STORE.users[u.username] = u
    return list(STORE.users)


async def _run(usernames: list[str], n: int, schema: strawberry.Schema = SCHEMA) -> None:
    query = QUERIES["profile"]
    for i in range(n):
        result = await schema.execute(query, variable_values={"u": usernames[i % len(usernames)]})
        body = json.dumps({"data": result.data})  # a server sends it
        if result.errors or len(result.data["user"]["posts"]["edges"]) != POSTS or not body:
            raise RuntimeError(f"the floor's query failed: {result.errors}")


def run_floor(usernames: list[str], n: int, schema: strawberry.Schema = SCHEMA) -> None:
    """`n` executions, in an event loop of their own (callable from any thread)."""
    asyncio.run(_run(usernames, n, schema))


def measure_floor(n: int = 300, repeats: int = 3, schema: strawberry.Schema = SCHEMA) -> float:
    """CPU seconds per profile-page execution: the best of `repeats` runs of `n` executions (the
    least disturbed by other processes' cache and frequency effects)."""
    usernames = make_objects()
    asyncio.run(_run(usernames, 20, schema))  # warm: imports, strawberry's per-type caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        asyncio.run(_run(usernames, n, schema))
        best = min(best, (time.process_time() - t0) / n)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=300, help="executions per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    p.add_argument("--async-fields", action="store_true",
                   help="also measure the same shape with taogram's I/O fields as async resolvers (not the floor)")
    args = p.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats
        usernames = make_objects()
        asyncio.run(_run(usernames, 20))
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, _run(usernames, args.n))
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        return 0
    per = measure_floor(args.n, args.repeats)
    print(f"floor: {per * 1000:.3f} ms CPU per profile-page execution "
          f"(plain strawberry, in-memory objects, parse + validate + execute + JSON; "
          f"best of {args.repeats} x {args.n})")
    if args.async_fields:
        per_async = measure_floor(args.n, args.repeats, ASYNC_SCHEMA)
        print(f"same shape, I/O fields async: {per_async * 1000:.3f} ms ({per_async / per:.2f}x the floor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
