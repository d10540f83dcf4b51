"""Notifications on MariaDB + memcached (tests.harness): a viral post's likes folded into one group,
and the list read of a user with thousands of notifications.

    PYTHONPATH=. .venv/bin/python bench/notifications_bench.py [--likes 10000 --seconds 60]

1. Viral post: `--likes` likes of one post by as many distinct users within `--seconds`, issued
   by `--clients` concurrent clients through `do_like_post` (the mutation's action: it records
   the notification right after its commit), spread over `--like-processes` processes as
   several server processes would take them (one Python process saturates one core), while
   `--workers` outbox worker processes (as `python -m tao worker` runs them in production; 0:
   this process's own worker) run the jobs:
   the inverse edges, stream events and pushes, and any record a writer left to its job.
   Reported: NOTIFICATION objects and NOTIFIED edges of the author (the group's rows: O(1) per
   window), the group's exact actor count against the post's `likeCount`, SQL statements per
   like (the like, its inverse and its notification, in this process and the workers, all in),
   pushes sent to a local Web Push receiver (one per 30 s batch window), the like's own latency,
   and the time from a like's acknowledgement (and from its start) until the author's
   notification group counts it (p50/p99, every `--sample`th like).
2. List read: a user with `--list-size` notifications (seeded in bulk, the shape `record` writes);
   `notifications(first: 20)` through fresh loaders, as each request has: p50/p99 over `--reads`.

This process stands in for a server process: it tunes its GC as server.py does (config/runtime.py).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
import uuid
from typing import Any

from bench.common import (
    add_users,
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
from resolvers.errors import AppError
from resolvers.jobs import register_job_handlers
from resolvers.likes import do_like_post
from resolvers.notifications import push, reads
from resolvers.notifications.model import NotificationType
from resolvers.posts import do_create_post, post_data
from tao import Tao, TaoError, open_tao
from tao.models import now_ms
from tests.harness import Services
from tests.resolvers.push_receiver import PushReceiver

VAPID_KEY = "8Zg0Evp6EEA4nGBEcj17FgjHV1jJ_v7oDuuV3FU5CZ0"  # a bench-only key
MAX_BULK = 5_000
SEED_EDGES = 1_000  # edges per bulk write when seeding: 5 000 at once timed out (30 s) at load 28-31


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(p, shards=8)
    p.add_argument("--likes", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=60.0, help="the window the likes are spread over")
    p.add_argument("--clients", type=int, default=32, help="concurrent like clients (in all)")
    p.add_argument("--like-processes", type=int, default=2,
                   help="processes issuing the likes, as server processes would (0: this process)")
    p.add_argument("--workers", type=int, default=2,
                   help="outbox worker processes (0: one in-process worker, as before this flag)")
    p.add_argument("--sample", type=int, default=20, help="time every Nth like to the author's list")
    p.add_argument("--list-size", type=int, default=5_000)
    p.add_argument("--reads", type=int, default=300)
    return p.parse_args(argv)


def make_settings(services: Services, run_id: str, shards: int) -> Settings:
    s = harness_settings(services, run_id, shards)
    s.jobs.poll_interval = 0.02
    n = s.notifications
    n.vapid_private_key, n.push_https_only, n.push_batch_seconds = VAPID_KEY, False, 30.0
    n.push_private_addresses = True  # the receiver listens on 127.0.0.1
    return s


def _worker_process(settings: Settings, stop: Any, results: Any) -> None:
    """One outbox worker process, as `python -m tao worker` runs (spawned: a fresh interpreter);
    puts its store counters (its SQL statements) on `results` when `stop` is set."""
    async def main() -> dict[str, int]:
        tao = await open_tao(settings, start_worker=False)
        register_job_handlers(tao)
        tao.reset_stats()
        work = asyncio.create_task(tao.outbox.work())
        while not stop.is_set():
            await asyncio.sleep(0.05)
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        stats = tao.stats()
        await tao.close()
        return stats
    results.put(asyncio.run(main()))


def _liker_process(settings: Settings, post: int, likes: list[tuple[int, int]], interval: float, clients: int,
                   sample: int, ready: Any, go: Any, samples: Any, results: Any) -> None:
    """One server process's share of the likes (`likes`: (index, liker)); the like with index i
    is due at start + i * interval (start: a `time.monotonic()` the parent sends on `go`: the
    clock is the host's, shared by its processes). Every `sample`th like is put on `samples` as
    (liker, began, acknowledged) when it is acknowledged; the totals go on `results` at the end."""
    async def main() -> dict[str, Any]:
        tao = await open_tao(settings, start_worker=False)
        register_job_handlers(tao)
        tune_gc()
        todo = list(reversed(likes))
        errors, like_times = 0, []
        tao.reset_stats()
        ready.put(os.getpid())
        start = await asyncio.to_thread(go.get)

        async def client() -> None:
            nonlocal errors
            while todo:
                i, liker = todo.pop()
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                began = time.monotonic()
                try:
                    await do_like_post(tao, liker, post)
                except (TaoError, AppError):
                    errors += 1
                    continue
                acked = time.monotonic()
                like_times.append(acked - began)
                if i % sample == 0:
                    samples.put((liker, began, acked))
        await asyncio.gather(*(client() for _ in range(clients)))
        stats = tao.stats()
        await tao.close()
        return {"errors": errors, "like_times": like_times, "stats": stats}
    results.put(asyncio.run(main()))


class Likers:
    """`n` processes issuing the likes; their sampled acknowledgements reach `on_sample` in this
    process's loop as they happen."""

    def __init__(self, settings: Settings, post: int, likers: list[int], a: argparse.Namespace) -> None:
        ctx = mp.get_context("spawn")
        n = a.like_processes
        self._ready, self._samples, self._results = ctx.Queue(), ctx.Queue(), ctx.Queue()
        self._go = [ctx.Queue() for _ in range(n)]
        interval = a.seconds / max(1, a.likes)
        self._procs = [ctx.Process(target=_liker_process, daemon=True, args=(
            settings, post, [(i, likers[i]) for i in range(k, len(likers), n)], interval,
            max(1, a.clients // n), a.sample, self._ready, self._go[k], self._samples, self._results))
            for k in range(n)]
        for p in self._procs:
            p.start()

    async def run(self, on_sample: Any) -> tuple[float, dict[str, Any]]:
        """Start the likes once every process is ready; return (start, totals) when all are done."""
        for _ in self._procs:
            await asyncio.to_thread(self._ready.get, True, 120)
        start = time.monotonic() + 0.5
        for go in self._go:
            go.put(start)
        loop = asyncio.get_running_loop()
        finished = False

        def drain() -> None:
            import queue as queue_module
            while not finished:
                try:
                    item = self._samples.get(timeout=0.1)
                except queue_module.Empty:
                    continue
                loop.call_soon_threadsafe(on_sample, *item)
        drainer = asyncio.create_task(asyncio.to_thread(drain))
        totals: dict[str, Any] = {"errors": 0, "like_times": [], "stats": {}}
        for _ in self._procs:
            r = await asyncio.to_thread(self._results.get, True, 3600)
            totals["errors"] += r["errors"]
            totals["like_times"] += r["like_times"]
            for k, v in r["stats"].items():
                totals["stats"][k] = totals["stats"].get(k, 0) + v
        for p in self._procs:
            await asyncio.to_thread(p.join, 10)
        await asyncio.sleep(0.3)  # the last samples put before the results
        finished = True
        await drainer
        return start, totals


class Workers:
    """`n` worker processes for the length of the viral run."""

    def __init__(self, settings: Settings, n: int) -> None:
        ctx = mp.get_context("spawn")
        self._stop, self._results = ctx.Event(), ctx.Queue()
        self._procs = [ctx.Process(target=_worker_process, args=(settings, self._stop, self._results), daemon=True)
                       for _ in range(n)]
        for p in self._procs:
            p.start()

    def stop(self) -> dict[str, int]:
        """Stop them; their counters, summed."""
        self._stop.set()
        total: dict[str, int] = {}
        for _ in self._procs:
            for k, v in self._results.get(timeout=120).items():
                total[k] = total.get(k, 0) + v
        for p in self._procs:
            p.join(timeout=10)
        return total


async def viral(tao: Tao, a: argparse.Namespace, receiver: PushReceiver) -> dict[str, Any]:
    author = (await add_users(tao, 1, "author"))[0]
    likers = await add_users(tao, a.likes, "fan")
    device = receiver.device("author-phone")
    await push.do_register_push_subscription(tao, author, receiver.endpoint("author-phone"), **device.keys())
    post = (await do_create_post(tao, author, "going viral", [])).id
    await tao.run_jobs_until_idle()
    where = f"{a.like_processes} processes" if a.like_processes else "this process"
    log(f"viral: {a.likes} likes of one post over {a.seconds:.0f} s by {a.clients} clients in {where}")
    interval = a.seconds / max(1, a.likes)
    latencies: list[float] = []
    from_start: list[float] = []
    like_times: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(likers)):
        queue.put_nowait(i)
    workers = Workers(tao.settings, a.workers) if a.workers else None
    likers_procs = Likers(tao.settings, post, likers, a) if a.like_processes else None
    if workers is None:
        tao.outbox.start()  # this process's worker runs the jobs
    else:
        await asyncio.sleep(5)  # the workers' interpreters start (imports, pools) before the likes do
    # time.monotonic() throughout: the like processes' timestamps are on the same (the host's) clock.
    start = time.monotonic()

    waiting: dict[int, tuple[float, float]] = {}  # sampled actor -> when its like started, was acknowledged
    done = asyncio.Event()

    async def poll() -> None:
        """One poller for every sampled like: a batched membership check every 20 ms (the
        group's NOTIF_ACTOR edge is what the author's list counts)."""
        nid = None
        deadline = float("inf")
        while not (done.is_set() and not waiting) and time.monotonic() < deadline:
            if done.is_set() and deadline == float("inf"):
                deadline = time.monotonic() + 120  # a like never recorded by then is reported missing
            await asyncio.sleep(0.02)
            try:
                if nid is None:
                    groups = await tao.assoc_range(author, "NOTIFIED", 0, 1)
                    nid = groups[0].id2 if groups else None
                if nid is None or not waiting:
                    continue
                actors = list(waiting)
                found = await tao.assoc_get_many([(nid, "NOTIF_ACTOR", u) for u in actors])
            except TaoError as exc:  # an overloaded store: try again next round
                log(f"poll: {exc}")
                continue
            now = time.monotonic()
            for u in actors:
                if found[(nid, "NOTIF_ACTOR", u)] is not None:
                    began, acked = waiting.pop(u)
                    latencies.append(now - acked)
                    from_start.append(now - began)

    async def client() -> None:
        nonlocal errors
        while not queue.empty():
            i = queue.get_nowait()
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.monotonic()
            try:
                await do_like_post(tao, likers[i], post)
            except (TaoError, AppError):
                errors += 1
                continue
            acked = time.monotonic()
            like_times.append(acked - began)
            if i % a.sample == 0:
                waiting[likers[i]] = (began, acked)
    tao.reset_stats()
    poller = asyncio.create_task(poll())
    liker_stats: dict[str, int] = {}
    if likers_procs is not None:
        def on_sample(liker: int, began: float, acked: float) -> None:
            waiting[liker] = (began, acked)
        start, totals = await likers_procs.run(on_sample)
        errors, like_times, liker_stats = totals["errors"], totals["like_times"], totals["stats"]
    else:
        await asyncio.gather(*(client() for _ in range(a.clients)))
    issued = time.monotonic() - start
    done.set()
    await poller
    worker_stats = await asyncio.to_thread(workers.stop) if workers is not None else {}
    await tao.outbox.stop()
    # The rest of the outbox (the last batch window's push is due up to 30 s later: run it now).
    await tao.run_jobs_until_idle()
    elapsed = time.monotonic() - start
    stats = tao.stats()
    # The like processes' statements are the likes'; this process's own are the poller's reads
    # (0 SQL when warm) when the likes run elsewhere.
    statements = (stats.get("sql_queries", 0) + worker_stats.get("sql_queries", 0)
                  + liker_stats.get("sql_queries", 0))
    groups = await tao.assoc_range(author, "NOTIFIED", 0, 100)
    nid = groups[0].id2 if groups else 0
    actor_count = await tao.assoc_count(nid, "NOTIF_ACTOR") if nid else 0
    like_count = await tao.assoc_count(post, "LIKED_BY")
    lat, lat_start, likes_lat = sorted(latencies), sorted(from_start), sorted(like_times)
    out = {"workers": a.workers, "like_processes": a.like_processes,
        "likes_acknowledged": a.likes - errors, "errors": errors, "issue_seconds": round(issued, 1),
        "likes_per_second": round((a.likes - errors) / issued, 1),
        "drain_seconds": round(elapsed, 1),
        "notification_groups": len(groups), "notified_edges": await tao.assoc_count(author, "NOTIFIED"),
        "group_actor_count": actor_count, "post_like_count": like_count, "exact": actor_count == like_count,
        "sql_statements_per_like": round(statements / max(1, a.likes - errors), 1),
        "sql_statements_per_like_workers": round(worker_stats.get("sql_queries", 0) / max(1, a.likes - errors), 1),
        "like_p50_ms": round(percentile(likes_lat, 50) * 1000, 1),
        "like_p99_ms": round(percentile(likes_lat, 99) * 1000, 1),
        "pushes_sent": len(receiver.received["author-phone"]),
        "push_counts": [p["count"] for p in receiver.received["author-phone"]],
        "like_to_list_p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
        "like_to_list_p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
        "like_start_to_list_p50_ms": round(percentile(lat_start, 50) * 1000, 1) if lat else None,
        "like_start_to_list_p99_ms": round(percentile(lat_start, 99) * 1000, 1) if lat else None,
        "samples": len(lat), "samples_never_seen": len(waiting),
    }
    log(f"viral: {out}")
    return out


async def seed_list(tao: Tao, n: int, actors: list[int]) -> int:
    """A reader with `n` notifications: LIKE groups on `n` of their posts, 1-3 actors each."""
    reader = (await add_users(tao, 1, "reader"))[0]
    base = now_ms() - n * 1000
    post_ids: list[int] = []
    for i in range(0, n, MAX_BULK):
        post_ids += await tao.obj_add_many([("POST", post_data(reader, f"p{j}", published_at=base), reader)
                                            for j in range(i, min(n, i + MAX_BULK))])
    nids: list[int] = []
    for i in range(0, n, MAX_BULK):
        nids += await tao.obj_add_many([("NOTIFICATION", {"t": NotificationType.LIKE.value, "tg": p, "p": p, "s": base},
                                         reader) for p in post_ids[i:i + MAX_BULK]])
    edges = [(reader, "NOTIFIED", nid, base + k) for k, nid in enumerate(nids)]
    actor_edges = [(nid, "NOTIF_ACTOR", actors[(k + j) % len(actors)], base + k) for k, nid in enumerate(nids)
                   for j in range(1 + k % 3)]
    like_edges = [(actors[(k + j) % len(actors)], "LIKES", p, base + k) for k, p in enumerate(post_ids)
                  for j in range(1 + k % 3)]
    for batch in (edges, actor_edges, like_edges):
        for i in range(0, len(batch), SEED_EDGES):
            await tao.assoc_add_many(batch[i:i + SEED_EDGES])
    await tao.run_jobs_until_idle()
    return reader


async def list_reads(tao: Tao, a: argparse.Namespace, actors: list[int]) -> dict[str, Any]:
    reader = await seed_list(tao, a.list_size, actors)
    tune_gc()  # as server.py does once it is up (config/runtime.py), and the feed bench before its reads
    for _ in range(5):  # warm the cache as a returning user's reads would
        await reads.notifications(acting_as(tao, reader), 20, None)
    times, queries = [], []
    for _ in range(a.reads):
        ctx = acting_as(tao, reader)  # fresh loaders, as each request has
        tao.reset_stats()
        t0 = time.perf_counter()
        page = await reads.notifications(ctx, 20, None)
        times.append(time.perf_counter() - t0)
        queries.append(tao.stats().get("sql_queries", 0))
        assert len(page.items) == 20
    times.sort()
    out = {"list_size": a.list_size, "reads": a.reads, "first_page_p50_ms": round(percentile(times, 50) * 1000, 2),
           "first_page_p99_ms": round(percentile(times, 99) * 1000, 2),
           "sql_queries_per_read_p50": sorted(queries)[len(queries) // 2]}
    log(f"list: {out}")
    return out


async def run(a: argparse.Namespace, services: Services) -> dict[str, Any]:
    run_id = "notif" + uuid.uuid4().hex[:6]
    tao = await open_tao(make_settings(services, run_id, a.shards), migrate=True, start_worker=False)
    register_job_handlers(tao)
    receiver = await PushReceiver().start()
    tune_gc()  # this process stands in for a server process (server.py tunes its GC once up)
    out: dict[str, Any] = started(a)
    try:
        out["viral"] = await viral(tao, a, receiver)
        actors = await add_users(tao, 1000, "actor")
        out["list"] = await list_reads(tao, a, actors)
        out["load_average_end"] = os.getloadavg()
        return out
    finally:
        await tao.outbox.stop()
        await receiver.close()
        await drop_shards_and_close(tao, a.shards)


def main(argv: list[str] | None = None) -> int:
    return run_on_services(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
