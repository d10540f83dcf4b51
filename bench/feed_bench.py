"""Feed benchmark: fan-out throughput, time to visible, rows written per post (push, pull,
hybrid), and feed read latency, on MariaDB + memcached (tests.harness).

    python -m bench.feed_bench                      # own servers, the full graph (~10 min)
    python -m bench.feed_bench --quick              # a small graph, for a smoke run
    python -m bench.feed_bench --services-json /tmp/taogram-services.json   # reuse running servers

The graph is heavy-tailed and built with the bulk verbs (`obj_add_many`, `assoc_add_many`;
FOLLOWS edges, inverses synced by the writer): `--stars` accounts with `--star-followers`
followers each (>= 100 000 by default), `--mids` big accounts just over `--read-threshold`, one
author with exactly `--author-followers` (10 000), and `--ordinary` accounts whose follower
counts follow a Pareto law; each of `--viewers` viewers follows all the ordinary accounts
(500) and all the big ones (20). Figures are measured in this one run; the machine's load
average is printed next to them because it dominates on a shared box.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import drop_shards_and_close, harness_settings, log, percentile, run_on_services, service_arguments
from config.runtime import tune_gc
from resolvers.context import RequestContext
from resolvers.feed import fanout
from resolvers.feed.service import FeedMode, home_feed
from resolvers.jobs import register_job_handlers
from resolvers.records import record_of
from tao import Tao, open_tao
from tao.bulk_lists import MAX_BULK
from tao.models import now_ms
from tao.testing import TaoTestHooks as hooks
from tests.harness import Services

HOUR = 3_600_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(p, shards=8)
    p.add_argument("--stars", type=int, default=2)
    p.add_argument("--star-followers", type=int, default=100_000)
    p.add_argument("--mids", type=int, default=18)
    p.add_argument("--mid-followers", type=int, default=2_100)
    p.add_argument("--read-threshold", type=int, default=2_000,
                   help="feed.fanout_threshold after the fan-out measurement (so the mids are big accounts "
                        "without loading 10 000 followers each)")
    p.add_argument("--author-followers", type=int, default=10_000)
    p.add_argument("--ordinary", type=int, default=500)
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--ordinary-posts", type=int, default=2, help="posts per ordinary account (pushed)")
    p.add_argument("--big-posts", type=int, default=10, help="posts per big account (pulled)")
    p.add_argument("--likes-scale", type=int, default=5,
                   help="Pareto scale of likes per post (0: no likes)")
    p.add_argument("--viewer-likes", type=int, default=40, help="posts each viewer likes (affinity signals)")
    p.add_argument("--reads", type=int, default=20, help="measured first pages per viewer (and as many next pages)")
    p.add_argument("--batches", default="1000,5000", help="fan-out page sizes to measure")
    p.add_argument("--cache-timeout", type=float, default=2.0,
                   help="cache.timeout (s); its fault detector flags a server after timeout/2 without a probe "
                        "reply, which the default 0.25 s does all the time on an overloaded box")
    p.add_argument("--quick", action="store_true", help="a small graph (smoke run)")
    a = p.parse_args(argv)
    if a.quick:
        a.stars, a.star_followers, a.mids, a.mid_followers = 1, 3000, 2, 1200
        a.author_followers, a.ordinary, a.viewers, a.reads, a.read_threshold = 1000, 50, 4, 4, 1000
    return a


# ---- building the graph -------------------------------------------------------------------------

async def add_users(tao: Tao, n: int, tag: str) -> list[int]:
    out: list[int] = []
    for i in range(0, n, MAX_BULK):
        out += await tao.obj_add_many([("USER", {"username": f"{tag}{j}", "bio": "x" * 64}, None)
                                       for j in range(i, min(n, i + MAX_BULK))])
    return out


async def add_follows(tao: Tao, pairs: list[tuple[int, int]], times: dict) -> None:
    t0 = time.perf_counter()
    base = now_ms() - 30 * 24 * HOUR
    for i in range(0, len(pairs), MAX_BULK):
        await tao.assoc_add_many([(f, "FOLLOWS", a, base + k) for k, (f, a) in enumerate(pairs[i:i + MAX_BULK], i)])
    times["follow_edges"] = times.get("follow_edges", 0) + len(pairs)
    times["follow_seconds"] = times.get("follow_seconds", 0.0) + time.perf_counter() - t0


async def build(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    load: dict[str, Any] = {}
    t0 = time.perf_counter()
    pop = await add_users(tao, max(a.star_followers, a.author_followers, a.mid_followers) + 1000, "u")
    stars, mids = await add_users(tao, a.stars, "star"), await add_users(tao, a.mids, "mid")
    author, = await add_users(tao, 1, "author")
    ordinary, viewers = await add_users(tao, a.ordinary, "ord"), await add_users(tao, a.viewers, "viewer")
    load["users"] = len(pop) + a.stars + a.mids + 1 + a.ordinary + a.viewers
    load["user_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"{load['users']} users in {load['user_seconds']} s; following ...")
    pairs = [(f, s) for s in stars for f in pop[:a.star_followers]]
    pairs += [(f, m) for m in mids for f in rng.sample(pop, a.mid_followers)]
    pairs += [(f, author) for f in pop[:a.author_followers]]
    # Ordinary accounts: Pareto follower counts (alpha 1.2, scale 5, capped at 2000).
    ord_followers = [min(2000, int(5 * (1 - rng.random()) ** (-1 / 1.2))) for _ in ordinary]
    pairs += [(f, o) for o, n in zip(ordinary, ord_followers) for f in rng.sample(pop, n)]
    pairs += [(v, x) for v in viewers for x in ordinary + stars + mids]
    rng.shuffle(pairs)
    await add_follows(tao, pairs, load)
    load["follow_edges_per_s"] = round(load["follow_edges"] / load["follow_seconds"])
    log(f"{load['follow_edges']} FOLLOWS edges (+ inverses) in {load['follow_seconds']:.1f} s "
        f"= {load['follow_edges_per_s']}/s")
    return {"load": load, "pop": pop, "stars": stars, "mids": mids, "author": author, "ordinary": ordinary,
            "viewers": viewers}


async def make_post(tao: Tao, author: int, kind: str = "photo", time_ms: int | None = None) -> int:
    """A visible post exactly as resolvers/posts.py creates one: the fan-out job commits with AUTHORED."""
    t = now_ms() if time_ms is None else time_ms
    pid = await tao.obj_add("POST", {"author": author, "caption": "bench", "status": "visible", "kind": kind,
                                     "published_at": t}, owner=author)
    obj = (await tao.obj_get([pid]))[pid]
    await tao.assoc_add(author, "AUTHORED", pid, time=t, data={"k": kind}, jobs=fanout.on_publish(record_of(obj)))
    return pid


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(tao: Tao, services: Services, what: str, limit_s: float = 180.0) -> None:
    """Wait until the servers are idle again after a bulk load: MariaDB has purged its undo
    history and the servers (MariaDB's purge and page-cleaner threads, memcached) use under 5%
    of a core. They otherwise compete for the box's two cores with what is measured next; the
    figures are of steady state, not of the load's aftermath."""
    t0 = time.perf_counter()
    one_shard_per_server = {srv: shard for shard, srv in enumerate(hooks(tao).shard_map.server_of_shard)}
    pids = [server.pid for server in services.servers()]
    while True:
        history = 0
        for shard in one_shard_per_server.values():
            async with hooks(tao).read(shard) as conn:
                rows = await conn.fetchall("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")
            history += int(rows[0][1])
        before = sum(_cpu_seconds(p) for p in pids)
        await asyncio.sleep(1.0)
        busy = sum(_cpu_seconds(p) for p in pids) - before
        if (history < 1000 and busy < 0.05) or time.perf_counter() - t0 > limit_s:
            log(f"{what}: InnoDB undo history {history}, servers used {busy:.2f} CPU-s in the last second, "
                f"after {time.perf_counter() - t0:.0f} s")
            return


# ---- measurements --------------------------------------------------------------------------------

async def measure_fanout(tao: Tao, g: dict, a: argparse.Namespace) -> dict[str, Any]:
    """createPost -> every follower's FEED holds it, by one worker (this process), per page size."""
    out = {}
    for batch in [int(b) for b in a.batches.split(",")]:
        tao.settings.feed.fanout_batch = batch
        sql0, faults0 = tao.stats()["sql_queries"], tao.stats().get("cache_faults", 0)
        t0, c0 = time.perf_counter(), time.process_time()
        pid = await make_post(tao, g["author"])
        await tao.run_jobs_until_idle(include_delayed=False)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = a.author_followers
        sample = random.Random(batch).sample(g["pop"][:n], 200)
        found = await tao.assoc_get_many([(f, "FEED", pid) for f in sample])
        assert all(found.values()), "fan-out missed followers"
        out[batch] = {"followers": n, "seconds_to_visible": round(dt, 2), "edges_per_s": round(n / dt),
                      "cpu_seconds": round(cpu, 2), "edges_per_cpu_s": round(n / cpu),
                      "sql_statements": tao.stats()["sql_queries"] - sql0,
                      # memcached servers judged faulty meanwhile (each: a flush, refused installs, refill jobs)
                      "cache_faults": tao.stats().get("cache_faults", 0) - faults0}
        log(f"fan-out, pages of {batch}: {n} followers visible after {dt:.2f} s = {n / dt:.0f} edges/s "
            f"({n / cpu:.0f} per CPU-second of this process)")
    return out


async def measure_big_post_cost(tao: Tao, g: dict) -> dict[str, Any]:
    """SQL statements and FEED rows for one post by big accounts of very different sizes."""
    out = {}
    for name, acct in (("star", g["stars"][0]), ("mid", g["mids"][0] if g["mids"] else g["stars"][0])):
        await make_post(tao, acct)           # records the crossing (one BIG_ACCOUNT edge, once)
        await tao.run_jobs_until_idle(include_delayed=False)
        followers = await tao.assoc_count(acct, "FOLLOWED_BY")
        sql0 = tao.stats()["sql_queries"]
        await make_post(tao, acct)
        await tao.run_jobs_until_idle(include_delayed=False)
        out[name] = {"followers": followers, "sql_statements_incl_outbox_polls": tao.stats()["sql_queries"] - sql0}
        log(f"big account post ({followers} followers): {out[name]['sql_statements_incl_outbox_polls']} statements")
    return out


async def rows_per_post(tao: Tao, g: dict) -> dict[str, Any]:
    """FEED rows written if every account posted once, and AUTHORED lists a viewer's read pulls,
    for push-only, pull-only and hybrid at several thresholds (exact follower counts)."""
    accounts = g["stars"] + g["mids"] + [g["author"]] + g["ordinary"]
    counts = await tao.assoc_count_many([(x, "FOLLOWED_BY") for x in accounts])
    f = [counts[(x, "FOLLOWED_BY")] for x in accounts]
    viewer_follows = g["stars"] + g["mids"] + g["ordinary"]
    vf = [counts[(x, "FOLLOWED_BY")] for x in viewer_follows]
    out = {"accounts": len(f), "followers_p50": sorted(f)[len(f) // 2], "followers_max": max(f),
           "push": {"feed_rows_per_post": round(sum(f) / len(f), 1), "lists_pulled_per_read": 0}}
    for t in (1_000, 10_000, 100_000):
        out[f"hybrid_{t}"] = {"feed_rows_per_post": round(sum(x for x in f if x <= t) / len(f), 1),
                              "lists_pulled_per_read": 1 + sum(x > t for x in vf)}
    out["pull"] = {"feed_rows_per_post": 0, "lists_pulled_per_read": 1 + len(vf)}
    return out


async def seed_feeds(tao: Tao, g: dict, a: argparse.Namespace) -> None:
    tao.settings.feed.fanout_batch = 1000
    rng = random.Random(11)
    now = now_ms()
    posts: list[tuple[int, int, str]] = []  # (post, author, kind)
    authors = [o for _ in range(a.ordinary_posts) for o in g["ordinary"]]
    authors += [b for b in g["stars"] + g["mids"] for _ in range(a.big_posts)]
    for author in authors:
        kind = rng.choice(["photo", "video", "carousel"])
        posts.append((await make_post(tao, author, kind, now - rng.randrange(48 * HOUR)), author, kind))
    t0 = time.perf_counter()
    await tao.run_jobs_until_idle(include_delayed=False)
    log(f"seeded feeds: {a.ordinary * a.ordinary_posts} pushed + {(a.stars + a.mids) * a.big_posts} pulled posts "
        f"(fan-out drained in {time.perf_counter() - t0:.1f} s)")
    await seed_likes(tao, g, a, posts, rng)


async def seed_likes(tao: Tao, g: dict, a: argparse.Namespace, posts: list[tuple[int, int, str]],
                     rng: random.Random) -> None:
    """Engagement for the ranking to read: each post gets a Pareto number of likes (alpha 1.2,
    scale `--likes-scale`, capped at 1 000) from the population, and each viewer likes
    `--viewer-likes` posts. Likes are written as likePost writes them (LIKES edges carrying
    the post's author and kind; LIKED_BY, their inverse, by the outbox), so a popular post's
    LIKED_BY list holds hundreds of edges, as in production."""
    t0 = time.perf_counter()
    edges = []
    for post, author, kind in posts:
        n = min(1000, int(a.likes_scale * (1 - rng.random()) ** (-1 / 1.2))) if a.likes_scale else 0
        edges += [(liker, "LIKES", post, None, {"a": author, "k": kind}) for liker in rng.sample(g["pop"], n)]
    for v in g["viewers"]:
        edges += [(v, "LIKES", post, None, {"a": author, "k": kind})
                  for post, author, kind in rng.sample(posts, min(a.viewer_likes, len(posts)))]
    for i in range(0, len(edges), MAX_BULK):
        await tao.assoc_add_many(edges[i:i + MAX_BULK])
    await tao.run_jobs_until_idle(include_delayed=False)
    per_post = Counter(e[2] for e in edges)
    counts = sorted(per_post[p] for p, _, _ in posts)
    log(f"seeded {len(edges)} likes in {time.perf_counter() - t0:.1f} s (per post: median {counts[len(counts) // 2]}, "
        f"max {counts[-1]}; {sum(c >= 200 for c in counts)} posts with >= 200)")


def _cpu_pressure_us() -> int:
    """Microseconds during which some runnable task on the box waited for a CPU (Linux PSI;
    0 where the kernel does not report it)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return 0


class _GcClock:
    """Time spent in the garbage collector, through `gc.callbacks`."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.passes = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.ms += (time.perf_counter() - self._start) * 1000
            self.passes += 1


async def measure_reads(tao: Tao, g: dict, a: argparse.Namespace) -> dict[str, Any]:
    """First page (rank + snapshot) and next page (from the snapshot), 20 items, warm cache.
    Beside each first page's wall time: the CPU this process spent on it (all its threads),
    the time in the garbage collector, and how long some task on the box waited for a CPU
    (PSI). A slow read with ordinary CPU waited for something else on the box."""
    first_ms, next_ms = [], []
    per_read = []  # (wall, cpu, gc, cpu pressure) of each measured first page, ms
    sizes = []
    gc_clock = _GcClock()
    gc.callbacks.append(gc_clock)
    try:
        for rnd in range(a.reads + 1):  # round 0 warms the cache
            for v in g["viewers"]:
                ctx = RequestContext(tao=tao, settings=tao.settings, viewer_id=v)
                p0, gc0 = _cpu_pressure_us(), gc_clock.ms
                t0, c0 = time.perf_counter(), time.process_time()
                page = await home_feed(ctx, 20, None, FeedMode.RANKED)
                c1 = time.process_time()
                t1 = time.perf_counter()
                p1 = _cpu_pressure_us()
                ctx = RequestContext(tao=tao, settings=tao.settings, viewer_id=v)
                await home_feed(ctx, 20, page.end_cursor, FeedMode.RANKED)
                t2 = time.perf_counter()
                if rnd:
                    first_ms.append((t1 - t0) * 1000)
                    next_ms.append((t2 - t1) * 1000)
                    per_read.append(((t1 - t0) * 1000, (c1 - c0) * 1000, gc_clock.ms - gc0, (p1 - p0) / 1000))
                    sizes.append(len(page.session.ids))
    finally:
        gc.callbacks.remove(gc_clock)
    cpu_ms = sorted(r[1] for r in per_read)
    first_ms.sort()
    next_ms.sort()
    out = {
        "reads": len(first_ms),
        "candidates_per_session": round(sum(sizes) / len(sizes)),
        "first_page_p50_ms": round(percentile(first_ms, 50), 1),
        "first_page_p99_ms": round(percentile(first_ms, 99), 1),
        "first_page_cpu_ms_mean": round(sum(cpu_ms) / len(cpu_ms), 1),
        "first_page_cpu_ms_p50": round(percentile(cpu_ms, 50), 1),
        "first_page_cpu_ms_p99": round(percentile(cpu_ms, 99), 1),
        "gc_passes": gc_clock.passes,
        "gc_ms_total": round(gc_clock.ms, 1),
        "first_page_slowest_wall_cpu_gc_cpuwait_ms": [
            tuple(round(x, 1) for x in r) for r in sorted(per_read, reverse=True)[:6]
        ],
        "next_page_p50_ms": round(percentile(next_ms, 50), 1),
        "next_page_p99_ms": round(percentile(next_ms, 99), 1),
    }
    log(f"feed reads: {out}")
    return out


async def run(a: argparse.Namespace, services: Services) -> dict[str, Any]:
    run_id = "feed" + uuid.uuid4().hex[:6]
    settings = harness_settings(services, run_id, a.shards, cache_timeout=a.cache_timeout)
    tao = await open_tao(settings, migrate=True, start_worker=False)
    register_job_handlers(tao)
    out: dict[str, Any] = {"args": vars(a), "cpus": os.cpu_count()}
    try:
        g = await build(tao, a)
        out["load"] = g["load"]
        await settle(tao, services, "after the graph load")
        out["fanout"] = await measure_fanout(tao, g, a)
        tao.settings.feed.fanout_threshold = a.read_threshold
        out["big_post"] = await measure_big_post_cost(tao, g)
        out["rows_per_post"] = await rows_per_post(tao, g)
        log(f"rows per post: {out['rows_per_post']}")
        await seed_feeds(tao, g, a)
        await settle(tao, services, "after seeding the feeds")
        tune_gc()  # as server.py does once it is up (config/runtime.py)
        out["reads"] = await measure_reads(tao, g, a)
        out["stats"] = tao.stats()
        out["load_average_end"] = os.getloadavg()
        return out
    finally:
        await drop_shards_and_close(tao, a.shards)


def main(argv: list[str] | None = None) -> int:
    return run_on_services(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
