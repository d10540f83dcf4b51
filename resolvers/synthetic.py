"""A synthetic social graph for demos, benchmarks and trying the API: users, heavy-tailed
follows, posts and likes, loaded in bulk through the domain:

    .venv/bin/python -m resolvers load-graph --users 5000     # on the settings' store
    # or from code:
    from resolvers.jobs import register_job_handlers
    from resolvers.synthetic import GraphSpec, load_graph
    register_job_handlers(tao)  # posts commit their feed fan-out jobs, as the API's do
    made = await load_graph(tao, GraphSpec(users=5000), progress=True)
    print(made.summary())

Follows are heavy-tailed like a real social graph: who gets followed is drawn from a Zipf-like
popularity (a few accounts collect most followers), and how many accounts each user follows is
drawn from a log-normal.

Why this lives in `resolvers` and not in `tao`: what makes data servable by the API is the
domain's (a USER holds its `username` claim, a POST is VISIBLE with `published_at` and commits
its feed fan-out with its AUTHORED edge, a like carries the post's author and kind). A loader in
`tao` cannot import `resolvers`, so it could only copy those rules — and a copy drifts: the
loader that lived there wrote users no `user(username:)` could find and posts `posts` never
showed. Moving the rules down into the store would teach it the product. So the loader writes
through the domain's bulk actions (`resolvers.bulk`), the same records and keys as the API's
own writes, and the command that runs it is `python -m resolvers load-graph`.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from bisect import bisect
from dataclasses import dataclass, field
from functools import partial

from tqdm import tqdm

from resolvers.accounts import USERNAME_KEYS
from resolvers.bulk import do_add_follows_bulk, do_add_likes_bulk, do_add_posts_bulk, do_add_users_bulk
from resolvers.usernames import SKELETON_KEYS, skeleton
from tao import Tao

BATCH = 2000


@dataclass
class GraphSpec:
    users: int = 1000
    posts_per_user: float = 3.0
    mean_follows: float = 20.0
    likes_per_user: float = 10.0
    popularity_exponent: float = 1.0  # Zipf exponent of "who gets followed"
    seed: int = 1
    username_prefix: str = "user"  # users are <prefix>0, <prefix>1, ...


@dataclass
class MadeGraph:
    users: list[int] = field(default_factory=list)
    posts: list[int] = field(default_factory=list)
    follows: int = 0
    likes: int = 0
    seconds: float = 0.0
    top_followers: list[tuple[int, int]] = field(default_factory=list)  # (user, followers)

    def summary(self) -> str:
        top = ", ".join(f"{n}" for _, n in self.top_followers[:5])
        return (f"made {len(self.users)} users, {len(self.posts)} posts, {self.follows} follows, {self.likes} likes "
                f"in {self.seconds:.1f}s; most-followed accounts have {top} followers")


class ZipfSampler:
    """Draws indexes 0..n-1 with P(i) proportional to 1/(i+1)^s."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        self._cum = list(itertools.accumulate(1.0 / (i + 1) ** s for i in range(n)))
        self._rng = rng

    def sample(self) -> int:
        return bisect(self._cum, self._rng.random() * self._cum[-1])


class UsernamesTakenError(Exception):
    """Some of the graph's usernames already exist: load into another store or use another prefix."""


async def load_graph(tao: Tao, spec: GraphSpec, *, progress: bool = False) -> MadeGraph:
    rng = random.Random(spec.seed)
    made = MadeGraph()
    started = time.monotonic()
    names = [f"{spec.username_prefix}{i}" for i in range(spec.users)]
    for chunk in _chunks(names, BATCH):  # refuse before writing anything (a race is still caught below)
        taken = await tao.key_get_many(USERNAME_KEYS, [n.lower() for n in chunk])
        # a name that looks like a taken one is taken too (resolvers.usernames)
        taken.update(await tao.key_get_many(SKELETON_KEYS, list({skeleton(n) for n in chunk})))
        if taken:
            raise UsernamesTakenError(f"{len(taken)} of the usernames (or look-alikes) exist already (e.g. "
                                      f"{min(taken)}): load into an empty store or pass another username prefix")
    bar = tqdm(total=4, desc="graph", unit="step", disable=not progress)

    for chunk in _chunks(range(spec.users), BATCH):
        ids = await do_add_users_bulk(tao, [(names[i], f"User {i}") for i in chunk])
        if None in ids:
            raise UsernamesTakenError(f"{ids.count(None)} usernames were taken while loading; "
                                      "the rest of this chunk was loaded")
        made.users += [i for i in ids if i is not None]
    bar.update()

    popularity = list(made.users)
    rng.shuffle(popularity)  # popularity rank is unrelated to creation order
    pick = ZipfSampler(len(popularity), spec.popularity_exponent, rng)
    sigma = 1.0
    mu = math.log(max(spec.mean_follows, 1.0)) - sigma ** 2 / 2
    edges: list[tuple[int, int]] = []
    followers: dict[int, int] = {}
    for u in made.users:
        want = min(len(made.users) - 1, int(rng.lognormvariate(mu, sigma)))
        chosen: set[int] = set()
        while len(chosen) < want:
            v = popularity[pick.sample()]
            if v != u:
                chosen.add(v)
        edges += [(u, v) for v in chosen]
        for v in chosen:
            followers[v] = followers.get(v, 0) + 1
    # Follows before posts: the posts' fan-out jobs then reach every follower's feed, and there
    # is nothing yet for a follow's backfill job to bring (so none is committed).
    made.follows = await _add_pairs(partial(do_add_follows_bulk, backfill=False), tao, edges, progress, "follows")
    bar.update()

    owners = [u for u in made.users for _ in range(poisson(rng, spec.posts_per_user))]
    for chunk in _chunks(owners, BATCH):
        made.posts += await do_add_posts_bulk(tao, [(o, f"post by {o}") for o in chunk])
    bar.update()

    likes = set()
    if made.posts:
        post_pick = ZipfSampler(len(made.posts), 0.8, rng)
        for u in made.users:
            for _ in range(poisson(rng, spec.likes_per_user)):
                likes.add((u, made.posts[post_pick.sample()]))
    made.likes = await _add_pairs(do_add_likes_bulk, tao, list(likes), progress, "likes")
    bar.update()
    bar.close()
    made.top_followers = sorted(followers.items(), key=lambda p: -p[1])[:10]
    made.seconds = time.monotonic() - started
    return made


async def _add_pairs(add, tao: Tao, pairs: list[tuple[int, int]], progress: bool, what: str) -> int:
    added = 0
    with tqdm(total=len(pairs), desc=what, unit="edge", disable=not progress, leave=False) as bar:
        for chunk in _chunks(pairs, BATCH):
            added += await add(tao, chunk)
            bar.update(len(chunk))
    return added


def _chunks(seq, n: int):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method; fine for the small means used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
