"""Explore benchmark: first-page latency of `explore` (warm pool, and cold: pool built inline),
next pages, the pool-building job, `suggestedUsers` and `trendingHashtags`, on MariaDB +
memcached (tests.harness), over a heavy-tailed synthetic graph.

    python -m bench.explore_bench                    # own servers, 20 000 users (~10 min)
    python -m bench.explore_bench --quick            # 2 000 users, a smoke run
    python -m bench.explore_bench --services-json /tmp/taogram-services.json   # reuse running servers

The graph is `resolvers.synthetic.load_graph` (Zipf-like follows, log-normal follow counts,
Zipf likes over posts), loaded without the feed's fan-out jobs (Explore does not read FEED
lists; `posts.ON_PUBLISH` is emptied for the load only), plus `--tagged` posts carrying one of
`--tags` hashtags (Zipf-popular) made in the current trend bucket, whose tally jobs and a trends
refresh run before measuring. Kinds are mixed: a third of the tagged posts are videos or
carousels. Viewers are sampled among users who follow and like. Figures are of this one run on
a shared 2-core box; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from typing import Any

from bench.common import drop_shards_and_close, harness_settings, log, percentile, run_on_services, service_arguments
from bench.feed_bench import settle
from config.runtime import tune_gc
from resolvers import posts
from resolvers.context import RequestContext
from resolvers.edge_data import authored_data
from resolvers.explore import pool as pool_mod
from resolvers.explore import service, trends
from resolvers.hashtags import hashtag_ids_for
from resolvers.jobs import register_job_handlers
from resolvers.records import Post, record_of
from resolvers.synthetic import GraphSpec, load_graph
from tao import Tao, open_tao
from tao.bulk_lists import MAX_BULK
from tao.models import now_ms
from tests.harness import Services


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(p, shards=8)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--posts-per-user", type=float, default=3.0)
    p.add_argument("--mean-follows", type=float, default=30.0)
    p.add_argument("--likes-per-user", type=float, default=15.0)
    p.add_argument("--tagged", type=int, default=3000, help="posts with a hashtag, in the current bucket")
    p.add_argument("--tags", type=int, default=200)
    p.add_argument("--viewers", type=int, default=40)
    p.add_argument("--reads", type=int, default=5, help="measured warm first pages per viewer (each a new session)")
    p.add_argument("--first", type=int, default=24, help="page size (a 3 x 8 grid)")
    p.add_argument("--cache-timeout", type=float, default=2.0)
    p.add_argument("--cold-inline", action="store_true", help="explore.cold_build_inline: a viewer's first page "
                   "builds their pool inline (default: trending posts, the build enqueued)")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.users, a.tagged, a.tags, a.viewers, a.reads = 2000, 300, 30, 8, 3
    return a


async def build(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    hooks_before = list(posts.ON_PUBLISH)
    posts.ON_PUBLISH.clear()  # no fan-out: Explore reads no FEED list (restored below)
    try:
        made = await load_graph(tao, GraphSpec(users=a.users, posts_per_user=a.posts_per_user,
                                               mean_follows=a.mean_follows, likes_per_user=a.likes_per_user,
                                               username_prefix="ex"), progress=False)
    finally:
        posts.ON_PUBLISH[:] = hooks_before
    log(made.summary())
    rng = random.Random(3)
    tag_ids = list((await hashtag_ids_for(tao, [f"tag{i}" for i in range(a.tags)])).items())
    weights = [1 / (i + 1) for i in range(a.tags)]
    now = now_ms()
    items = []
    for i in range(a.tagged):
        name, tid = rng.choices(tag_ids, weights)[0]
        author = rng.choice(made.users)
        kind = ("photo", "photo", "photo", "photo", "video", "carousel")[i % 6]
        items.append(("POST", posts.post_data(author, f"#{name}", hashtags={name: tid}, kind=kind,
                                              published_at=now - rng.randrange(0, 600_000)), author))
    tagged: list[int] = []
    for i in range(0, len(items), MAX_BULK):
        tagged += await tao.obj_add_many(items[i:i + MAX_BULK])
    objs = await tao.obj_get(tagged)
    jobs_by_shard: dict[int, list] = defaultdict(list)
    edges = []
    for pid in tagged:
        post: Post = record_of(objs[pid])
        edges.append((post.author, "AUTHORED", pid, post.time, authored_data(post)))
        jobs_by_shard[tao.shard(post.author)] += [(posts.SYNC_EDGES_JOB, {"post": pid}), *trends.on_publish(post)]
    for i in range(0, len(edges), MAX_BULK):
        part = edges[i:i + MAX_BULK]
        shards = {tao.shard(e[0]) for e in part}
        await tao.assoc_add_many(part, jobs_by_shard={s: jobs_by_shard.pop(s) for s in shards if s in jobs_by_shard})
    t1 = time.perf_counter()
    await tao.run_jobs_until_idle(include_delayed=False)
    jobs_s = time.perf_counter() - t1
    await trends.refresh(tao, tao.settings.explore)
    follows: dict = {}
    likes: dict = {}
    for i in range(0, len(made.users), 5000):  # a many-keys call takes at most 10 000 keys
        part = made.users[i:i + 5000]
        follows.update(await tao.assoc_count_many([(u, "FOLLOWS") for u in part]))
        likes.update(await tao.assoc_count_many([(u, "LIKES") for u in part]))
    eligible = [u for u in made.users if follows[(u, "FOLLOWS")] >= 5 and likes[(u, "LIKES")] >= 3]
    viewers = rng.sample(eligible, min(a.viewers, len(eligible)))
    return {"users": len(made.users), "posts": len(made.posts) + len(tagged), "follows": made.follows,
            "likes": made.likes, "tagged_posts": len(tagged), "tally_and_sync_jobs_s": round(jobs_s, 1),
            "load_seconds": round(time.perf_counter() - t0, 1), "top_followers": made.top_followers[:5],
            "viewers": viewers}


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"n": len(xs), "p50_ms": round(percentile(xs, 50), 1), "p99_ms": round(percentile(xs, 99), 1),
            "max_ms": round(xs[-1], 1) if xs else 0.0}


async def measure(tao: Tao, viewers: list[int], a: argparse.Namespace) -> dict[str, Any]:
    lat: dict[str, list[float]] = defaultdict(list)
    sizes, served = [], []

    def ctx(v: int) -> RequestContext:
        return RequestContext(tao=tao, settings=tao.settings, viewer_id=v)

    async def timed(name: str, coro) -> Any:
        t0 = time.perf_counter()
        out = await coro
        lat[name].append((time.perf_counter() - t0) * 1000)
        return out

    for v in viewers:  # cold: no pool yet (trending posts served, the build enqueued; or built inline)
        name = "explore_first_page_cold_inline" if tao.settings.explore.cold_build_inline else \
            "explore_first_page_cold_trending"
        page = await timed(name, service.explore(ctx(v), a.first, None))
        served.append(len(page.items))
    for v in viewers:  # the job's cost, alone
        t0 = time.perf_counter()
        p = await pool_mod.build(tao, tao.settings, v, now_ms())
        lat["pool_build_job"].append((time.perf_counter() - t0) * 1000)
        sizes.append(len(p.cands))
        await pool_mod.store(tao, v, p)
    for r in range(a.reads):
        for v in viewers:
            page = await timed("explore_first_page", service.explore(ctx(v), a.first, None))
            served.append(len(page.items))
            if page.has_next:
                await timed("explore_next_page", service.explore(ctx(v), a.first, page.end_cursor))
            if r == 0:
                await timed("suggested_users", service.suggested_users(ctx(v), 10))
                await timed("trending_hashtags", trends.trending_hashtags(ctx(v), 10))
    out: dict[str, Any] = {k: _ms(v) for k, v in lat.items()}
    out["pool_candidates_mean"] = round(sum(sizes) / max(1, len(sizes)))
    out["posts_per_page_mean"] = round(sum(served) / max(1, len(served)), 1)
    trending = await trends.trending_hashtags(ctx(viewers[0]), 5)
    out["top_trends"] = [(t.hashtag.name, round(t.score, 1), t.accounts) for t in trending]
    return out


async def run(a: argparse.Namespace, services: Services) -> dict[str, Any]:
    run_id = "expl" + uuid.uuid4().hex[:6]
    settings = harness_settings(services, run_id, a.shards, cache_timeout=a.cache_timeout)
    settings.explore.cold_build_inline = a.cold_inline
    tao = await open_tao(settings, migrate=True, start_worker=False)
    register_job_handlers(tao)
    out: dict[str, Any] = {"args": vars(a), "cpus": os.cpu_count()}
    try:
        g = await build(tao, a)
        viewers = g.pop("viewers")
        out["graph"] = g
        log(f"graph: {g}")
        await settle(tao, services, "after the graph load")
        tune_gc()
        out["reads"] = await measure(tao, viewers, a)
        log(f"reads: {out['reads']}")
        out["load_average_end"] = os.getloadavg()
        return out
    finally:
        await drop_shards_and_close(tao, a.shards)


def main(argv: list[str] | None = None) -> int:
    return run_on_services(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
