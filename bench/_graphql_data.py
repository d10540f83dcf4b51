"""The GraphQL benchmark's data: a synthetic social graph with posts, likes and comments, and
viewer accounts with session tokens — written straight into the store with its bulk verbs.

Users and follows come from `resolvers.synthetic.load_graph` (heavy-tailed follows; users hold
their username claims). Posts are built
with `resolvers.posts.post_data` (the one definition of a POST's data) and listed through
AUTHORED edges, as `do_create_post` would; likes are LIKES edges; comments are COMMENT objects
on their post's shard listed by HAS_COMMENT, as `do_add_comment` writes them. Viewers are real
accounts made by `do_sign_up`, each liking about a third of the posts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from config import Settings
from resolvers.accounts import do_sign_up, normalize_username
from resolvers.dormant import TALLY_OF
from resolvers.posts import post_data
from resolvers.synthetic import GraphSpec, load_graph
from tao import Tao

BATCH = 2000


@dataclass
class BenchData:
    users: list[int] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)       # usernames whose profiles are read
    author_ids: list[int] = field(default_factory=list)
    posts: list[int] = field(default_factory=list)
    comments: list[int] = field(default_factory=list)
    viewer_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    likes: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.users)} users, {len(self.authors)} authors x {len(self.posts) // max(1, len(self.authors))} "
            f"posts = {len(self.posts)} posts, {self.likes} likes, {len(self.comments)} comments, "
            f"{len(self.tokens)} viewers"
        )


def _chunks(seq: list, n: int = BATCH):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


async def make_data(tao: Tao, settings: Settings, *, users: int, authors: int, posts_per_author: int,
                    max_likes: int, max_comments: int, viewers: int, seed: int) -> BenchData:
    rng = random.Random(seed)
    d = BenchData()
    graph = await load_graph(tao, GraphSpec(users=users, posts_per_user=0, likes_per_user=0, seed=seed))
    d.users = graph.users
    d.author_ids = d.users[:authors]
    named = await tao.obj_get(d.author_ids)
    d.authors = [named[uid].data["username"] for uid in d.author_ids]

    t0 = 1_700_000_000_000
    items, times = [], []
    for a_i, author in enumerate(d.author_ids):
        for k in range(posts_per_author):
            t = t0 + (k * authors + a_i) * 60_000
            kind = rng.choice(("photo", "photo", "video", "carousel"))
            items.append(("POST", post_data(author, f"post {k} by {author} #bench", kind=kind, published_at=t), author))
            times.append(t)
    for chunk, tchunk in zip(_chunks(items), _chunks(times)):
        ids = await tao.obj_add_many(chunk)
        d.posts += ids
        await tao.assoc_add_many([(it[2], "AUTHORED", p, t) for it, p, t in zip(chunk, ids, tchunk)])

    likes = {(d.users[rng.randrange(len(d.users))], "LIKES", p) for p in d.posts
             for _ in range(int(rng.paretovariate(1.2)) % (max_likes + 1))}
    for chunk in _chunks(list(likes)):
        d.likes += await tao.assoc_add_many(chunk)

    comment_items, parents = [], []
    for p in d.posts:
        for _ in range(rng.randrange(max_comments + 1)):
            author = d.users[rng.randrange(len(d.users))]
            comment_items.append(("COMMENT", {"post": p, "author": author, "text": f"nice one, says {author}",
                                              "reply_to": None, "mentions": []}, p))
            parents.append(p)
    for chunk, pchunk in zip(_chunks(comment_items), _chunks(parents)):
        ids = await tao.obj_add_many(chunk)
        d.comments += ids
        await tao.assoc_add_many([(p, "HAS_COMMENT", c) for p, c in zip(pchunk, ids)])

    for i in range(viewers):
        user, token = await do_sign_up(tao, f"viewer{seed}_{i}", "benchmark-password", f"Viewer {i}")
        d.viewer_ids.append(user.id)
        d.tokens.append(token)
        liked = [(user.id, "LIKES", p) for p in d.posts if rng.random() < 0.33]
        for chunk in _chunks(liked):
            d.likes += await tao.assoc_add_many(chunk)
    return d


def prewarm_body(d: BenchData) -> dict:
    """Everything the two queries read, for the server's `/_bench/prewarm`."""
    people = d.users + d.viewer_ids
    return {
        "objects": people + d.posts + d.comments,
        # Lists whose edges the pages show (posts, likers, comments): windows and counts.
        "lists": [[a, "AUTHORED"] for a in d.author_ids]
        # PENDING_COMMENT: a viewer's own comments awaiting approval (restrict) show in a comment page.
        + [[p, t] for p in d.posts for t in ("LIKED_BY", "HAS_COMMENT", "PENDING_COMMENT")]
        # The viewer's block lists: privacy reads them whole for a page of users (resolvers/privacy.py).
        + [[v, t] for v in d.viewer_ids for t in ("BLOCKS", "BLOCKED_BY")],
        # Lists the pages only count.
        "counts": (
            [[a, t] for a in d.author_ids for t in ("FOLLOWED_BY", "FOLLOWS")]
            + [[c, t] for c in d.comments for t in ("HAS_REPLY", "COMMENT_LIKED_BY")]
            # Each count less its pending-deletion accounts' tally (resolvers/dormant.py)
            + [[a, TALLY_OF[t]] for a in d.author_ids for t in ("FOLLOWED_BY", "FOLLOWS")]
            + [[p, TALLY_OF[t]] for p in d.posts for t in ("LIKED_BY", "HAS_COMMENT")]
            + [[c, TALLY_OF[t]] for c in d.comments for t in ("HAS_REPLY", "COMMENT_LIKED_BY")]
        ),
        "edges": (
            [[v, "LIKES", p] for v in d.viewer_ids for p in d.posts]
            + [[v, t, u] for v in d.viewer_ids for u in people if u != v for t in ("BLOCKS", "BLOCKED_BY", "FOLLOWS")]
        ),
        "usernames": [normalize_username(a) for a in d.authors],
    }
