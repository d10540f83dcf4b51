"""Stories on MariaDB + memcached + Redis (tests.harness): the tray, the cost of posting, views
of one hot story, the HyperLogLog's error, and the expiry job's rate.

    PYTHONPATH=. .venv/bin/python bench/stories_bench.py [--following 1000 --live 200 --big-followers 100000]

1. Tray: a viewer following `--following` accounts (their follower counts heavy-tailed: a
   Zipf-like draw of extra followers), `--live` of which have 1-5 live stories (a fifth of them
   close-friends stories, the viewer on some lists; some seen). `tray_rings` through fresh
   loaders, as each request has, on a warm cache: p50/p99 over `--reads`, with the SQL
   statements and cache round trips of one read; then the same reads as GraphQL, executed
   in-process: the tray as the app asks for it (`TRAY_QUERY`, from bench/app_queries.py, the
   document test_tray.py checks: 50 rings with their accounts' avatars, and the first 4 rings'
   stories in full; every account has a profile picture and every story a processed photo, URLs
   under a CDN as in production), and the query measured before (`ALL_STORIES_QUERY`: every
   ring's stories' ids and times, no avatars).
2. Posting: SQL statements and rows written by `do_create_story` for an account with 10
   followers and for one with `--big-followers` (rows counted in every shard's tables before
   and after): the same, O(1), because the tray is pulled.
3. Views: `--view-clients` concurrent clients marking one story seen by distinct viewers for
   `--view-seconds`, past the exact threshold: views/s and SQL statements per view.
4. HyperLogLog: `--hll-views` distinct viewers PFADDed into one story's sketch; PFCOUNT's error.
5. Expiry: `--expire` stories, the store's clock moved past their 24 hours, the outbox drained:
   stories moved to the archive per second.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import random
import sys
import tempfile
import time
import uuid
from typing import Any

from bench.app_queries import TRAY_QUERY  # the app's tray query; test_tray.py checks the same
from bench.common import (
    GcWatch,
    add_users,
    box_speed_ms,
    drop_shards_and_close,
    harness_settings,
    log,
    percentile,
    run_on_services,
    service_arguments,
    started,
)
from config import Settings
from config.runtime import tune_gc
from resolvers.actor import acting_as
from resolvers.jobs import register_job_handlers
from resolvers.media import media_services
from resolvers.stories.actions import do_create_story
from resolvers.stories.model import LIFETIME_MS
from resolvers.stories.social import do_add_close_friends
from resolvers.stories.tray import tray_rings
from resolvers.stories.views import do_mark_stories_seen, sketch_key
from resolvers.stories.visibility import visible_stories
from schema import build_schema
from tao import Tao, open_tao
from tao.clock import ManualClock
from tao.testing import TaoTestHooks
from tests.harness import Services

MAX_BULK = 5_000
PHASES = ("tray", "posting", "views", "hll", "expiry")
TABLES = ("objects", "assocs", "assoc_counts", "outbox")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(p, shards=8)
    p.add_argument("--following", type=int, default=1000)
    p.add_argument("--live", type=int, default=200)
    p.add_argument("--fans", type=int, default=2000, help="accounts that only follow (the followed ones' followers)")
    p.add_argument("--reads", type=int, default=300)
    p.add_argument("--big-followers", type=int, default=100_000)
    p.add_argument("--view-clients", type=int, default=16)
    p.add_argument("--view-seconds", type=float, default=20.0)
    p.add_argument("--hll-views", type=int, default=1_000_000)
    p.add_argument("--expire", type=int, default=1000)
    p.add_argument("--only", default=",".join(PHASES),
                   help=f"comma-separated phases to run (default all: {','.join(PHASES)})")
    p.add_argument("--no-server-gc", dest="server_gc", action="store_false",
                   help="skip the server's GC tuning (config.runtime.tune_gc) before the tray's reads")
    p.add_argument("--profile", help="write a cProfile of the tray's timed reads here, and of the app's "
                                      "GraphQL tray query to this path + '.graphql' (pstats format)")
    a = p.parse_args(argv)
    a.only = [x for x in a.only.split(",") if x]
    if unknown := set(a.only) - set(PHASES):
        p.error(f"--only: unknown phases {sorted(unknown)}")
    return a


def make_settings(services: Services, run_id: str, shards: int) -> Settings:
    s = harness_settings(services, run_id, shards)
    s.broker.backend = "redis"
    s.broker.url = services.redis_url
    s.broker.channel_prefix = run_id
    s.limits.cost_budget = 10**9  # one viewer asks for its tray thousands of times a minute here
    return s


async def follow_bulk(tao: Tao, pairs: list[tuple[int, int]]) -> None:
    for i in range(0, len(pairs), MAX_BULK):
        await tao.assoc_add_many([(a, "FOLLOWS", b) for a, b in pairs[i:i + MAX_BULK]])
    await tao.run_jobs_until_idle()  # the inverse edges


# The renditions the media pipeline publishes for a story's photo (docs/media.md), and for a
# profile picture; the keys are what the pipeline writes, the URLs the CDN's (production's setting).
STORY_VARIANTS = (("jpeg_1080", 1080, 1350), ("jpeg_640", 640, 800), ("jpeg_320", 320, 400),
                  ("webp_320", 320, 400), ("jpeg_square_320", 320, 320), ("jpeg_story_1080", 1080, 1920))
AVATAR_VARIANTS = (("jpeg_640", 640, 640), ("jpeg_320", 320, 320), ("webp_320", 320, 320),
                   ("jpeg_square_150", 150, 150))
CDN = "https://media.example.com"


def media_data(owner: int, variants: tuple[tuple[str, int, int], ...]) -> dict[str, Any]:
    """A MEDIA object's data as the pipeline leaves a processed photo."""
    tag = uuid.uuid4().hex
    return {"kind": "image", "status": "ready", "owner": owner, "width": variants[0][1], "height": variants[0][2],
            "duration": 0.0, "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj", "dominant_color": "#3a5f7d",
            "variants": [{"name": n, "key": f"media/{tag}/{n}.{'webp' if n.startswith('webp') else 'jpg'}",
                          "width": w, "height": h,
                          "content_type": "image/webp" if n.startswith("webp") else "image/jpeg"}
                         for n, w, h in variants]}


async def media(tao: Tao, owner: int) -> int:
    m = await tao.obj_add("MEDIA", media_data(owner, STORY_VARIANTS), owner=owner)
    await tao.assoc_add(owner, "UPLOADED", m)
    return m


async def give_avatars(tao: Tao, users: list[int]) -> None:
    """A profile picture for each account (as `updateProfile(profilePictureId)` sets it)."""
    pictures = await tao.obj_add_many([("MEDIA", media_data(u, AVATAR_VARIANTS), u) for u in users])
    await tao.assoc_add_many([(u, "UPLOADED", m) for u, m in zip(users, pictures)])
    for u, m in zip(users, pictures):
        await tao.obj_update(u, {"profile_picture_id": m})


async def setup_tray(tao: Tao, a: argparse.Namespace) -> tuple[int, int]:
    """The tray's graph; returns (the viewer, how many stories were posted)."""
    rng = random.Random(7)
    viewer = (await add_users(tao, 1, "viewer"))[0]
    authors = await add_users(tao, a.following, "author")
    fans = await add_users(tao, a.fans, "fan")
    # heavy-tailed follower counts among the followed: author k gets ~fans/(k+1) extra followers
    pairs = [(viewer, u) for u in authors]
    for k, u in enumerate(authors[:200]):
        pairs += [(f, u) for f in rng.sample(fans, max(1, a.fans // (k + 1)))]
    await follow_bulk(tao, pairs)
    await give_avatars(tao, [viewer] + authors)
    live = rng.sample(authors, a.live)
    story_ids: list[int] = []
    for u in live:
        if rng.random() < 0.3:
            await do_add_close_friends(tao, u, [viewer])
        for _ in range(rng.choice((1, 1, 2, 3, 5))):
            aud = "close_friends" if rng.random() < 0.2 else "followers"
            story_ids.append((await do_create_story(tao, u, await media(tao, u), aud)).id)
    await tao.run_jobs_until_idle(include_delayed=False)
    seen = [s for s in story_ids if rng.random() < 0.3]
    ctx = acting_as(tao, viewer)
    for i in range(0, len(seen), 100):
        batch = seen[i:i + 100]
        visible = {st.id for st in await visible_stories(ctx, batch)}
        if visible:
            await do_mark_stories_seen(tao, viewer, [s for s in batch if s in visible])
    return viewer, len(story_ids)


async def tray(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    viewer, n_stories = await setup_tray(tao, a)
    log(f"tray: {a.following} followed, {a.live} live ({n_stories} stories); warming")
    for _ in range(20):
        await tray_rings(acting_as(tao, viewer))
    schema = build_schema(tao.settings.limits)  # before the GC tuning, as the server builds it
    # ALL_STORIES_QUERY costs 5 202 points since lists are costed by their bound (50 rings of up to
    # 100 stories), past `max_query_cost`: the bench measures its execution, so its schema allows it.
    all_stories_schema = build_schema(tao.settings.limits.model_copy(update={"max_query_cost": 10_000}))
    if a.server_gc:
        tune_gc()  # as server.py does once it is up (config/runtime.py): this process stands in for one
    speed_before = box_speed_ms()
    times, cpu, queries, trips, gcs = [], [], [], [], []
    watch = GcWatch()
    gc.callbacks.append(watch)
    profile = cProfile.Profile() if a.profile else None
    try:
        for _ in range(a.reads):
            tao.reset_stats()
            g0 = watch.snapshot()
            if profile is not None:
                profile.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            rings = await tray_rings(acting_as(tao, viewer))
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # this process's CPU (its cache-tier threads included)
            if profile is not None:
                profile.disable()
            g1 = watch.snapshot()
            gcs.append(tuple(x - y for x, y in zip(g1, g0)))
            st = tao.stats()
            queries.append(st.get("sql_queries", 0))
            trips.append(st.get("cache_round_trips", 0))
    finally:
        gc.callbacks.remove(watch)
    if profile is not None:
        profile.dump_stats(a.profile)
    heap = len(gc.get_objects())
    settings = tao.settings.media.model_copy(update={"cdn_base_url": CDN, "local_dir": tempfile.mkdtemp()})
    async with media_services(settings) as services:
        gql = await graphql_tray(schema, tao, viewer, a.reads, services,
                                 profile=a.profile and a.profile + ".graphql")
        gql |= await graphql_tray(all_stories_schema, tao, viewer, a.reads, services, ALL_STORIES_QUERY,
                                  "graphql_all_stories")
    # the slowest 1 % of reads by CPU: did a GC pass (and which generation) land in them?
    slow = sorted(range(len(cpu)), key=cpu.__getitem__)[-max(1, len(cpu) // 100):]
    times.sort()
    cpu.sort()
    out = {"following": a.following, "live_authors": a.live, "stories": n_stories, "rings": len(rings),
           "reads": a.reads, "p50_ms": round(percentile(times, 50) * 1000, 2),
           "p99_ms": round(percentile(times, 99) * 1000, 2), "cpu_p50_ms": round(percentile(cpu, 50) * 1000, 2),
           "cpu_p99_ms": round(percentile(cpu, 99) * 1000, 2),
           "sql_queries_per_read_p50": sorted(queries)[len(queries) // 2],
           "cache_round_trips_per_read_p50": sorted(trips)[len(trips) // 2],
           "gc_passes_gen0_1_2": [sum(g[i] for g in gcs) for i in range(3)],
           "gc_cpu_ms_total": round(sum(g[3] for g in gcs) * 1000, 1),
           "gc_cpu_ms_in_slowest_1pct": [round(gcs[i][3] * 1000, 1) for i in slow],
           "heap_gc_objects": heap,
           **gql,
           "box_speed_ms_before_after": [speed_before, box_speed_ms()],
           "load_average": os.getloadavg()}
    log(f"tray: {out}")
    return out


# The query this bench measured until then: every ring's stories (ids and times), no avatars.
ALL_STORIES_QUERY = """{ viewer { storyTray(first: 50) { edges { cursor node { hasUnseen isCloseFriends latestStoryAt
  user { username } stories { id postedAt } } } pageInfo { hasNextPage endCursor } } } }"""


async def graphql_tray(schema: Any, tao: Tao, viewer: int, reads: int, media: Any,
                       query: str = TRAY_QUERY, label: str = "graphql", profile: str | None = None
                       ) -> dict[str, Any]:
    """The tray as a client asks for it, executed by the schema in this process (no HTTP), a
    fresh context per read (with the server's media services: URLs under the CDN)."""
    for _ in range(20):
        result = await schema.execute(query, context_value=acting_as(tao, viewer, media=media))
        assert not result.errors, result.errors
    times, cpu, trips, gcs = [], [], [], []
    watch = GcWatch()
    gc.callbacks.append(watch)
    profiler = cProfile.Profile() if profile else None
    try:
        for _ in range(reads):
            tao.reset_stats()
            g0 = watch.snapshot()
            if profiler is not None:
                profiler.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            result = await schema.execute(query, context_value=acting_as(tao, viewer, media=media))
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if profiler is not None:
                profiler.disable()
            gcs.append(tuple(x - y for x, y in zip(watch.snapshot(), g0)))
            trips.append(tao.stats().get("cache_round_trips", 0))
    finally:
        gc.callbacks.remove(watch)
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    assert not result.errors, result.errors
    slow = sorted(range(len(cpu)), key=cpu.__getitem__)[-max(1, len(cpu) // 100):]
    slow_gc = [[gcs[i][0], gcs[i][1], gcs[i][2], round(gcs[i][3] * 1000, 1), round(cpu[i] * 1000, 1)] for i in slow]
    times.sort()
    cpu.sort()
    return {f"{label}_p50_ms": round(percentile(times, 50) * 1000, 2),
            f"{label}_p90_ms": round(percentile(times, 90) * 1000, 2),
            f"{label}_p99_ms": round(percentile(times, 99) * 1000, 2),
            f"{label}_cpu_p50_ms": round(percentile(cpu, 50) * 1000, 2),
            f"{label}_cpu_p99_ms": round(percentile(cpu, 99) * 1000, 2),
            f"{label}_cache_round_trips_p50": sorted(trips)[len(trips) // 2],
            f"{label}_gc_passes_gen0_1_2": watch.passes, f"{label}_gc_cpu_ms_total": round(watch.seconds * 1000, 1),
            # the slowest 1 % of reads by CPU: [gen-0, gen-1, gen-2 passes, their CPU ms, the read's CPU ms]
            f"{label}_slowest_1pct_gc": slow_gc}


async def count_rows(tao: Tao) -> dict[str, int]:
    hooks = TaoTestHooks(tao)
    totals = dict.fromkeys(TABLES, 0)
    for s in range(tao.n_shards):
        async with hooks.read(s) as conn:
            for t in TABLES:
                totals[t] += (await conn.fetchall(f"SELECT COUNT(*) FROM {{{t}}}"))[0][0]
    return totals


async def posting(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, n in (("followers_10", 10), (f"followers_{a.big_followers}", a.big_followers)):
        author = (await add_users(tao, 1, f"poster{n}-"))[0]
        log(f"posting: an account with {n} followers (loading them)")
        fake = [tao.ids.next_id(i % tao.n_shards) for i in range(n)]  # followers need no profile here
        await follow_bulk(tao, [(f, author) for f in fake])
        assert await tao.assoc_count(author, "FOLLOWED_BY") == n
        m = await media(tao, author)
        before = await count_rows(tao)
        tao.reset_stats()
        await do_create_story(tao, author, m)
        statements = tao.stats().get("sql_queries", 0)
        after = await count_rows(tao)
        out[label] = {"sql_statements": statements, "rows_written": {t: after[t] - before[t] for t in TABLES}}
        log(f"posting {label}: {out[label]}")
    return out


async def views(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    author = (await add_users(tao, 1, "hot"))[0]
    story = (await do_create_story(tao, author, await media(tao, author))).id
    threshold = tao.settings.stories.exact_viewers
    seq = iter(range(10**9))
    shards = tao.n_shards
    # past the exact threshold first, so the window measures the steady state of a hot story
    for _ in range(threshold + 1):
        i = next(seq)
        await do_mark_stories_seen(tao, tao.ids.next_id(i % shards), [story])
    count = 0
    stop = time.perf_counter() + a.view_seconds
    tao.reset_stats()

    async def client() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            i = next(seq)
            await do_mark_stories_seen(tao, tao.ids.next_id(i % shards), [story])
            count += 1
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(a.view_clients)))
    elapsed = time.perf_counter() - t0
    statements = tao.stats().get("sql_queries", 0)
    rows = await tao.assoc_count(story, "STORY_VIEWER")
    estimate = await tao.sketches.count(sketch_key(story))
    total = threshold + 1 + count
    out = {"views": count, "seconds": round(elapsed, 1), "views_per_s": round(count / elapsed),
           "sql_statements_per_view": round(statements / max(1, count), 2), "story_viewer_rows": rows,
           "viewers_total": total, "estimate": estimate, "error_pct": round(100 * abs(estimate - total) / total, 3)}
    log(f"views: {out}")
    return out


async def hll(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    out = []
    for trial in range(3):
        key = f"bench-hll-{trial}-{uuid.uuid4().hex[:6]}"
        base = random.Random(trial).randrange(1 << 40)
        t0 = time.perf_counter()
        for i in range(0, a.hll_views, 10_000):
            members = list(range(base + i, base + min(a.hll_views, i + 10_000)))
            await tao.sketches.record_many(key, members, [0] * len(members), 1000, 3600)
        est = await tao.sketches.count(key)
        out.append({"views": a.hll_views, "estimate": est, "error_pct": round(100 * abs(est - a.hll_views) /
                                                                              a.hll_views, 3),
                    "pfadd_per_s": round(a.hll_views / (time.perf_counter() - t0))})
        await tao.sketches.delete(key)
    log(f"hll: {out}")
    return {"trials": out, "max_error_pct": max(t["error_pct"] for t in out)}


async def expiry(tao: Tao, a: argparse.Namespace) -> dict[str, Any]:
    start = tao.clock.now_ms()
    clock = ManualClock(start)
    tao.clock = clock
    authors = await add_users(tao, 100, "exp")
    await tao.run_jobs_until_idle(include_delayed=False)
    log(f"expiry: posting {a.expire} stories")
    for i in range(a.expire):
        u = authors[i % len(authors)]
        await do_create_story(tao, u, await media(tao, u))
    await tao.run_jobs_until_idle(include_delayed=False)
    clock.set(start + LIFETIME_MS + 1)
    t0 = time.perf_counter()
    await tao.run_jobs_until_idle(include_delayed=False)
    elapsed = time.perf_counter() - t0
    archived = sum([await tao.assoc_count(u, "STORY_ARCHIVE") for u in authors])
    out = {"stories": a.expire, "archived": archived, "seconds": round(elapsed, 2),
           "stories_per_s": round(archived / elapsed)}
    log(f"expiry: {out}")
    return out


async def run(a: argparse.Namespace, services: Services) -> dict[str, Any]:
    run_id = "story" + uuid.uuid4().hex[:6]
    tao = await open_tao(make_settings(services, run_id, a.shards), migrate=True, start_worker=False)
    register_job_handlers(tao)
    out: dict[str, Any] = started(a)
    phases = {"tray": tray, "posting": posting, "views": views, "hll": hll, "expiry": expiry}
    try:
        for name in a.only:
            out[name] = await phases[name](tao, a)
        out["load_average_end"] = os.getloadavg()
        return out
    finally:
        await drop_shards_and_close(tao, a.shards)


def main(argv: list[str] | None = None) -> int:
    return run_on_services(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
