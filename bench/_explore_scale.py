"""Explore at the search bench's scale (`bench/search_bench.py --explore`): a follow and like graph
over its 100 000 users and 1 000 000 posts, loaded once with the bulk verbs, then Explore's pool
job and first/next pages for sampled viewers, with the CPU each read took.

The search bench's posts are made by `obj_add_many` alone (no AUTHORED lists, no likes); Explore
needs both, so this adds, once per `--state` (recorded in it as `explore_graph`), with
`--explore-active` of the users acting (following and liking; the rest only post and are
followed, as most accounts lurk) — a whole-population graph loaded at about 1 500 edges/s on the
shared box, too slow for one session:
- FOLLOWS: each active user follows a log-normal number (mean `--explore-follows`) of accounts
  drawn by Zipf(1.0) popularity over a shuffled order (`resolvers.synthetic`'s model), through
  `do_add_follows_bulk` (no feed backfill: Explore reads no FEED list);
- AUTHORED edges (time = the post's creation, data = its kind: `authored_data`) for every post of
  the `--explore-popular` most popular accounts (the ones follows concentrate on, whose newest
  posts the fof source reads), through `assoc_add_many`;
- LIKES: a Poisson number (mean `--explore-likes`) per active user over all 1 000 000 posts drawn
  by Zipf(0.8), through `do_add_likes_bulk` (the edge carries the post's author and kind).
No trends: the bench's captions link no hashtags (bench/explore_bench.py measures trends).

Measured per viewer (sampled among users with >= 5 follows and >= 3 likes): the pool job
(`explore.build_pool`'s work) once, then `--explore-reads` rounds of a warm first page (a new
session each time) and its next page, one at a time, wall and process CPU (`time.process_time`:
every thread of this process, so the CPU a page costs whatever else runs on the box).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import defaultdict
from typing import Any

from bench.common import percentile
from resolvers.bulk import do_add_follows_bulk, do_add_likes_bulk
from resolvers.context import RequestContext
from resolvers.edge_data import authored_data
from resolvers.explore import pool as pool_mod
from resolvers.explore import service
from resolvers.records import Post, record_of
from resolvers.synthetic import ZipfSampler, poisson
from tao import Tao
from tao.bulk_lists import MAX_BULK
from tao.models import now_ms

FIRST = 24  # a 3 x 8 grid


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


async def _in_batches(fn: Any, items: list, what: str, step: int = MAX_BULK, at_once: int = 2) -> int:
    """`fn(batch)` over `items`, `at_once` batches concurrently (shards write in parallel)."""
    done, t0 = 0, time.perf_counter()
    batches = [items[i:i + step] for i in range(0, len(items), step)]
    for k in range(0, len(batches), at_once):
        await asyncio.gather(*(fn(b) for b in batches[k:k + at_once]))
        done += sum(len(b) for b in batches[k:k + at_once])
        if (k // at_once) % 40 == 0:
            _log(f"{what} {done}/{len(items)} ({done / (time.perf_counter() - t0):.0f}/s)")
    return done


async def load_graph(tao: Tao, users: list[int], post_ids: list[int], post_authors: list[int], active: int,
                     mean_follows: float, mean_likes: float, popular: int, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    popularity = list(users)
    rng.shuffle(popularity)  # popularity rank is unrelated to creation order
    top = set(popularity[:popular])

    async def authored(batch: list[int]) -> None:
        objs = await tao.obj_get(batch)
        edges = [(p.author, "AUTHORED", p.id, p.created, authored_data(p))
                 for o in objs.values() if isinstance(p := record_of(o), Post)]
        await tao.assoc_add_many(edges)
    theirs = [p for p, a in zip(post_ids, post_authors) if a in top]
    out["authored"] = await _in_batches(authored, theirs, "AUTHORED")
    out["authored_s"] = round(time.perf_counter() - t0, 1)

    t1 = time.perf_counter()
    pick = ZipfSampler(len(popularity), 1.0, rng)
    sigma = 1.0
    mu = math.log(max(mean_follows, 1.0)) - sigma ** 2 / 2
    actors = rng.sample(users, min(active, len(users)))
    pairs: list[tuple[int, int]] = []
    for u in actors:
        want = min(2000, int(rng.lognormvariate(mu, sigma)))
        chosen: set[int] = set()
        while len(chosen) < want:
            v = popularity[pick.sample()]
            if v != u:
                chosen.add(v)
        pairs += [(u, v) for v in chosen]
    out["follows"] = await _in_batches(lambda b: do_add_follows_bulk(tao, b, backfill=False), pairs, "follows")
    out["follows_s"] = round(time.perf_counter() - t1, 1)

    t2 = time.perf_counter()
    post_pick = ZipfSampler(len(post_ids), 0.8, rng)
    order = list(post_ids)
    rng.shuffle(order)  # popularity unrelated to creation order
    likes: set[tuple[int, int]] = set()
    for u in actors:
        for _ in range(poisson(rng, mean_likes)):
            likes.add((u, order[post_pick.sample()]))
    out["likes"] = await _in_batches(lambda b: do_add_likes_bulk(tao, b), list(likes), "likes")
    out["likes_s"] = round(time.perf_counter() - t2, 1)
    out["active_users"], out["popular_authors"] = len(actors), len(top)
    out["actors"] = actors
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"n": len(xs), "p50_ms": round(percentile(xs, 50) * 1000, 2), "p99_ms": round(percentile(xs, 99) * 1000, 2),
            "max_ms": round(xs[-1] * 1000, 2) if xs else 0.0}


async def pick_viewers(tao: Tao, users: list[int], n: int, seed: int = 12) -> list[int]:
    rng = random.Random(seed)
    sample = rng.sample(users, min(len(users), 10 * n))
    counts = await tao.assoc_count_many([(u, t) for u in sample for t in ("FOLLOWS", "LIKES")])
    eligible = [u for u in sample if counts[(u, "FOLLOWS")] >= 5 and counts[(u, "LIKES")] >= 3]
    return eligible[:n]


async def measure(tao: Tao, viewers: list[int], reads: int) -> dict[str, Any]:
    wall: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    sizes, served = [], []

    def ctx(v: int) -> RequestContext:
        return RequestContext(tao=tao, settings=tao.settings, viewer_id=v)

    async def timed(name: str, coro: Any) -> Any:
        c0, t0 = time.process_time(), time.perf_counter()
        out = await coro
        wall[name].append(time.perf_counter() - t0)
        cpu[name].append(time.process_time() - c0)
        return out

    for v in viewers:  # the job's work, alone
        p = await timed("pool_build_job", pool_mod.build(tao, tao.settings, v, now_ms()))
        sizes.append(len(p.cands))
        await pool_mod.store(tao, v, p)
    la0 = os.getloadavg()
    for _ in range(reads):
        for v in viewers:
            page = await timed("explore_first_page", service.explore(ctx(v), FIRST, None))
            served.append(len(page.items))
            if page.has_next:
                await timed("explore_next_page", service.explore(ctx(v), FIRST, page.end_cursor))
    out: dict[str, Any] = {}
    for name in wall:
        out[name] = _ms(wall[name]) | {"cpu_p50_ms": _ms(cpu[name])["p50_ms"], "cpu_p99_ms": _ms(cpu[name])["p99_ms"]}
    out["pool_candidates_mean"] = round(sum(sizes) / max(1, len(sizes)))
    out["posts_per_page_mean"] = round(sum(served) / max(1, len(served)), 1)
    out["load_average"] = [la0, os.getloadavg()]
    return out
