"""A synthetic social graph for batch jobs, demos and benchmarks — and the worked example of
using `tao` from Python without the server:

    python -m tao load-graph --users 5000           # on the settings' store
    # or from code:
    from tao import open_tao
    from tao.synthetic import GraphSpec, load_graph
    made = await load_graph(tao, GraphSpec(users=5000), progress=True)
    print(made.summary())

Follows are heavy-tailed like a real social graph: who gets followed is drawn from a Zipf-like
popularity (a few accounts collect most followers), and how many accounts each user follows is
drawn from a log-normal. Everything goes through the bulk verbs (`obj_add_many`,
`assoc_add_many`), so counts, inverse edges and the cache stay exact as with single writes.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from bisect import bisect
from dataclasses import dataclass, field

from tqdm import tqdm

from tao.store import Tao

BATCH = 2000


@dataclass
class GraphSpec:
    users: int = 1000
    posts_per_user: float = 3.0
    mean_follows: float = 20.0
    likes_per_user: float = 10.0
    popularity_exponent: float = 1.0  # Zipf exponent of "who gets followed"
    seed: int = 1


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


async def load_graph(tao: Tao, spec: GraphSpec, *, progress: bool = False) -> MadeGraph:
    rng = random.Random(spec.seed)
    made = MadeGraph()
    started = time.monotonic()
    bar = tqdm(total=4, desc="graph", unit="step", disable=not progress)

    for chunk in _chunks(range(spec.users), BATCH):
        made.users += await tao.obj_add_many([("USER", {"username": f"user{i}", "name": f"User {i}"}, None)
                                              for i in chunk])
    bar.update()

    popularity = list(made.users)
    rng.shuffle(popularity)  # popularity rank is unrelated to creation order
    pick = ZipfSampler(len(popularity), spec.popularity_exponent, rng)
    sigma = 1.0
    mu = math.log(max(spec.mean_follows, 1.0)) - sigma ** 2 / 2
    edges, followers = [], {}
    for u in made.users:
        want = min(len(made.users) - 1, int(rng.lognormvariate(mu, sigma)))
        chosen = set()
        while len(chosen) < want:
            v = popularity[pick.sample()]
            if v != u:
                chosen.add(v)
        edges += [(u, "FOLLOWS", v) for v in chosen]
        for v in chosen:
            followers[v] = followers.get(v, 0) + 1
    made.follows = await _add_edges(tao, edges, progress, "follows")
    bar.update()

    owners = [u for u in made.users for _ in range(_poisson(rng, spec.posts_per_user))]
    for chunk in _chunks(owners, BATCH):
        ids = await tao.obj_add_many([("POST", {"caption": f"post by {o}", "kind": "photo"}, o) for o in chunk])
        made.posts += ids
        await _add_edges(tao, [(o, "AUTHORED", p) for o, p in zip(chunk, ids)], False, "")
    bar.update()

    likes = set()
    if made.posts:
        post_pick = ZipfSampler(len(made.posts), 0.8, rng)
        for u in made.users:
            for _ in range(_poisson(rng, spec.likes_per_user)):
                likes.add((u, "LIKES", made.posts[post_pick.sample()]))
    made.likes = await _add_edges(tao, list(likes), progress, "likes")
    bar.update()
    bar.close()
    made.top_followers = sorted(followers.items(), key=lambda p: -p[1])[:10]
    made.seconds = time.monotonic() - started
    return made


async def _add_edges(tao: Tao, edges: list[tuple], progress: bool, what: str) -> int:
    added = 0
    with tqdm(total=len(edges), desc=what, unit="edge", disable=not progress, leave=False) as bar:
        for chunk in _chunks(edges, BATCH):
            added += await tao.assoc_add_many(list(chunk))
            bar.update(len(chunk))
    return added


def _chunks(seq, n: int):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method; fine for the small means used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
