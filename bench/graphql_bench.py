"""GraphQL benchmark: the app server under concurrent load on MariaDB + memcached, against the
same server and data with the in-process cache tier (`cache.backend = "local"`) as the floor.

    PYTHONPATH=. .venv/bin/python bench/graphql_bench.py            # what `make bench` runs
    PYTHONPATH=. .venv/bin/python bench/graphql_bench.py --quick    # smoke run

Starts 2 MariaDB + 2 memcached (tests.harness) unless `--services-json` names a running set;
writes a generated graph (bench/_graphql_data.py: users and heavy-tailed follows from
`resolvers.synthetic`, authors with posts, likes, comments, viewer accounts); then for each cache tier
starts the app server in a subprocess (bench/_graphql_server.py: the real app plus stats and
prewarm routes), warms it (every object, list and viewer edge the queries read, then every
profile and a sample of posts over HTTP, then `--warmup` seconds of the load itself), and from a
separate load-generator process with `--concurrency` closed-loop aiohttp clients measures
`--measure` seconds per query and tier, in `--rounds` windows that alternate between the two
servers (both run at once) so both see the same background load: requests/s, p50/p99 latency,
and the server's own SQL queries and cache round trips per request. Queries (viewer = a random
logged-in account, targets Zipf 0.8):

- profile: a user, 20 posts each with author, likeCount, viewerHasLiked, commentCount and the
  first 3 comments with their authors;
- post: one post with author, likes, its first 10 likers, and 20 comments with author, likeCount
  and replyCount.

Reports the ratio memcached / local (target: profile >= 0.60). With the `embedded` tier (the
embedded default: SQLite shards in a temp dir and the in-process cache, its own copy of the
data) it also reports the server's CPU per request (`time.process_time()` of the server process
over each window, divided by the requests it answered) and, for the profile page, the ratio of
that to the floor (`bench/graphql_floor.py`: plain strawberry over in-memory objects), measured
in this process during every embedded window, side by side (target: at most 1.0). CPU time, not
wall time: the box is shared. See docs/BENCHMARKS.md (GraphQL).

    # the CPU ratio alone, no MariaDB
    PYTHONPATH=. .venv/bin/python bench/graphql_bench.py --tiers embedded --queries profile
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench._graphql_data import BenchData, make_data, prewarm_body
from bench.common import Latencies, LoadSync, ZipfSampler, run_load_processes
from config import MySQLServer, Settings
from resolvers.jobs import register_job_handlers
from schema.relay import to_global_id
from tao import open_tao
from tests.harness import Services, attach_services, start_services

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("memcached", "local", "embedded")
QUERIES = {
    "profile": """query Profile($u: String!) { user(username: $u) { username fullName postCount followerCount
  posts(first: 20) { edges { cursor node { id caption createdAt author { username } likeCount viewerHasLiked
    commentCount
    comments(first: 3) { nodes { text createdAt author { username } } } } } pageInfo { hasNextPage endCursor } } } }""",
    "post": """query Post($id: ID!) { node(id: $id) { ... on Post { id caption createdAt author { username fullName }
  likeCount viewerHasLiked likers(first: 10) { nodes { username } } commentCount
  comments(first: 20) { edges { cursor node { text createdAt author { username } likeCount replyCount } } } } } }""",
}
TARGET_RATIO = 0.60
TARGET_FLOOR_RATIO = 1.0  # the profile page's server CPU / the floor's
# The server's counters read at both ends of each measured window.
DELTAS = ("sql_queries", "cache_round_trips", "cache_faults", "cache_flushes", "cache_blind_spots", "cpu_seconds")
PREWARM_CHUNK = 500


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--authors", type=int, default=100, help="users with posts, whose profiles are read")
    p.add_argument("--posts-per-author", type=int, default=24)
    p.add_argument("--max-likes", type=int, default=60, help="cap of a post's (heavy-tailed) like count")
    p.add_argument("--max-comments", type=int, default=12, help="comments per post: uniform 0..this")
    p.add_argument("--viewers", type=int, default=8, help="logged-in accounts the load uses")
    p.add_argument("--warm-pass-posts", type=int, default=100, help="posts read once over HTTP before measuring")
    p.add_argument("--concurrency", type=int, default=16, help="closed-loop clients in the load process")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before each measured window")
    p.add_argument("--measure", type=float, default=24.0, help="measured seconds per query per tier")
    p.add_argument("--rounds", type=int, default=4, help="interleaved windows per query per tier (default 4)")
    p.add_argument("--queries", default="profile,post")
    p.add_argument("--tiers", default=",".join(TIERS))
    p.add_argument("--cache-timeout", type=float, default=Settings().cache.timeout,
                   help="cache.timeout in seconds (default: the Settings default, %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--services-json", help="reuse servers described by `python -m tests.harness up`'s JSON")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true", help="smoke run: a small graph, 3 s windows")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(users=300, authors=20, posts_per_author=21, viewers=3, warmup=1.0, measure=4.0, rounds=2,
                       concurrency=8, warm_pass_posts=50)
    args = p.parse_args(argv)
    args.queries = [q for q in args.queries.split(",") if q]
    args.tiers = [t for t in args.tiers.split(",") if t]
    return args


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- configuration ------------------------------------------------------------------------------

def _settings(services: Services | None, run_id: str, tier: str, cache_timeout: float, workdir: Path) -> Settings:
    s = Settings()
    if tier == "embedded":  # the embedded default's store and cache, on a data dir of its own
        s.store.sqlite_dir = str(workdir / "shards")
        s.cache.backend = "local"
    else:
        assert services is not None
        s.store.backend = "mysql"
        s.store.mysql_servers = [MySQLServer(host=m.host, port=m.port, user=m.user, password=m.password)
                                 for m in services.mysql]
        s.cache.backend = tier
        s.cache.servers = list(services.memcached) if tier == "memcached" else []
    s.store.logical_shards = 8
    # Sign-up and posts enqueue search index jobs: nobody runs them here (no worker), and the
    # index lives in the run's own directory, never the checkout's var/search.
    s.search.index_dir = str(workdir / "search")
    s.search.writer_partitions = ""
    s.store.database_prefix = run_id
    s.cache.key_prefix = run_id
    s.cache.timeout = cache_timeout
    # The shared dev box runs at load 20+: generous SQL timeouts keep stalls from becoming errors.
    s.store.query_timeout = s.store.acquire_timeout = 20.0
    s.jobs.in_process_worker = False
    s.server.graphiql = False
    s.limits.cost_budget = 10**12  # a benchmark's viewers query far beyond a person's budget
    s.throttle.enabled = False  # and act far beyond a person's hourly limits
    s.auth.argon2_time_cost, s.auth.argon2_memory_cost_kib, s.auth.argon2_parallelism = 1, 1024, 1
    return s


def _toml(s: Settings) -> str:
    def v(x: Any) -> str:
        return json.dumps(x)  # JSON strings, numbers, booleans and arrays are valid TOML values
    lines = ["[store]", f"backend = {v(s.store.backend)}", f"logical_shards = {s.store.logical_shards}",
             f"sqlite_dir = {v(s.store.sqlite_dir)}",
             f"database_prefix = {v(s.store.database_prefix)}", f"query_timeout = {s.store.query_timeout}",
             f"acquire_timeout = {s.store.acquire_timeout}"]
    for m in s.store.mysql_servers:
        lines += ["[[store.mysql_servers]]", f"host = {v(m.host)}", f"port = {m.port}", f"user = {v(m.user)}",
                  f"password = {v(m.password)}"]
    lines += ["[cache]", f"backend = {v(s.cache.backend)}", f"servers = {v(s.cache.servers)}",
              f"key_prefix = {v(s.cache.key_prefix)}", f"timeout = {s.cache.timeout}",
              "[search]", f"index_dir = {v(s.search.index_dir)}",
              f"writer_partitions = {v(s.search.writer_partitions)}",
              "[jobs]", "in_process_worker = false",
              "[server]", "graphiql = false",
              "[limits]", f"cost_budget = {s.limits.cost_budget}",
              "[throttle]", "enabled = false",
              "[auth]", "argon2_time_cost = 1", "argon2_memory_cost_kib = 1024", "argon2_parallelism = 1"]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the server subprocess ----------------------------------------------------------------------

async def _start_server(config: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._graphql_server", "--config", str(config), "--port", str(port)], cwd=ROOT, env=env
    )
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the app server exited with {proc.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    proc.kill()
    raise RuntimeError("the app server did not become healthy within 60 s")


def _stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def _variables(query: str, target: Any) -> dict:
    return {"u": target} if query == "profile" else {"id": target}


async def _warm_pass(url: str, query: str, targets: list, tokens: list[str], concurrency: int) -> None:
    """Every target once (each viewer in turn); also checks the answers are whole."""
    queue = list(enumerate(targets))
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            i, target = queue.pop()
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            async with http.post(url, json={"query": QUERIES[query], "variables": _variables(query, target)},
                                 headers=headers) as r:
                body = await r.json()
            if r.status != 200 or "errors" in body:
                raise RuntimeError(f"{query} {target}: {r.status} {str(body)[:500]}")
            if query == "profile" and len(body["data"]["user"]["posts"]["edges"]) != 20:
                raise RuntimeError(f"profile {target}: expected 20 posts")
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


# ---- the load generator (a spawned process) ------------------------------------------------------

def load_process(job: dict, sync: LoadSync) -> dict:
    return asyncio.run(_load(job, sync))


async def _load(job: dict, sync: LoadSync) -> dict:
    base, query, targets, tokens = job["base"], job["query"], job["targets"], job["tokens"]
    rng = random.Random(job["seed"])
    pick = ZipfSampler(len(targets), 0.8, job["seed"])
    lat = Latencies()
    state = {"measuring": False, "stop": False}
    payload_query = QUERIES[query]

    async def client(http: aiohttp.ClientSession) -> None:
        while not state["stop"]:
            target = targets[pick.sample(rng)]
            headers = {"Authorization": f"Bearer {tokens[rng.randrange(len(tokens))]}"}
            t0 = time.perf_counter()
            try:
                async with http.post(f"{base}/graphql", headers=headers,
                                     json={"query": payload_query, "variables": _variables(query, target)}) as r:
                    body = await r.json()
                ok = r.status == 200 and "errors" not in body and body.get("data")
            except (aiohttp.ClientError, TimeoutError, ValueError):
                ok = False
            # Completions inside the window count, wherever they started: in a steady state that is
            # the throughput, with no bias against slow requests straddling the window's edges.
            if state["measuring"]:
                if ok:
                    lat.record(query, time.perf_counter() - t0)
                else:
                    lat.error(query)

    timeout = aiohttp.ClientTimeout(total=60)
    # The stats calls get their own connection: the clients keep every pooled one busy.
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=job["concurrency"])) as http,
        aiohttp.ClientSession(timeout=timeout) as side,
    ):
        tasks = [asyncio.create_task(client(http)) for _ in range(job["concurrency"])]
        await asyncio.sleep(job["warmup"])
        await asyncio.to_thread(sync.wait_all_warm, 120)
        async with side.get(f"{base}/_bench/stats") as r:
            before = await r.json()
        state["measuring"] = True
        started = time.perf_counter()
        await asyncio.sleep(job["measure"])
        state["measuring"] = False
        elapsed = time.perf_counter() - started
        async with side.get(f"{base}/_bench/stats") as r:
            after = await r.json()
        state["stop"] = True
        await asyncio.gather(*tasks)
    return {"latencies": lat.to_dict(), "elapsed": elapsed,
            "delta": {k: after.get(k, 0) - before.get(k, 0) for k in DELTAS}}


def _summarize(res: dict) -> dict:
    lat = Latencies.from_dict(res["latencies"])
    s = next(iter(lat.summary().values()), {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0})
    n = max(1, s["n"])
    return {"requests": s["n"], "errors": s["errors"], "rps": s["n"] / res["elapsed"],
            "cpu_ms_per_request": res["delta"]["cpu_seconds"] * 1000 / n,
            "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
            "sql_per_request": res["delta"]["sql_queries"] / n,
            "cache_round_trips_per_request": res["delta"]["cache_round_trips"] / n,
            "cache_faults": res["delta"]["cache_faults"], "cache_flushes": res["delta"]["cache_flushes"],
            "cache_blind_spots": res["delta"]["cache_blind_spots"]}


# ---- the run ------------------------------------------------------------------------------------

async def _write_data(args: argparse.Namespace, settings: Settings) -> BenchData:
    tao = await open_tao(settings, migrate=True, start_worker=False)
    register_job_handlers(tao)  # the writes enqueue jobs (search indexing: declared as run elsewhere)
    try:
        t0 = time.perf_counter()
        data = await make_data(tao, settings, users=args.users, authors=args.authors,
                               posts_per_author=args.posts_per_author, max_likes=args.max_likes,
                               max_comments=args.max_comments, viewers=args.viewers, seed=args.seed)
    finally:
        await tao.close()
    log(f"data ({settings.store.backend}): {data.summary()} in {time.perf_counter() - t0:.1f}s")
    return data


def _targets(data: BenchData) -> dict[str, list]:
    return {"profile": data.authors, "post": [to_global_id("Post", p) for p in data.posts]}


async def run_bench(args: argparse.Namespace) -> dict:
    started_services = None
    services: Services | None = None
    if args.services_json:
        services = attach_services(args.services_json)
    elif set(args.tiers) - {"embedded"}:
        log("starting 2 MariaDB + 2 memcached ...")
        services = started_services = await asyncio.to_thread(start_services, 2, 2, False)
    run_id = "gb" + uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="taogram-gqlbench-"))
    results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items()}, "tiers": {}}
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    # tier -> (its data, its targets): the MariaDB tiers share one copy, the embedded one has its own.
    tier_data: dict[str, tuple[BenchData, dict]] = {}
    try:
        for tier in args.tiers:
            shared = next((tier_data[t] for t in tier_data if t != "embedded"), None) if tier != "embedded" else None
            if shared is None:
                data = await _write_data(args, _settings(services, run_id, tier, args.cache_timeout, workdir))
                results.setdefault("data", data.summary())
                shared = (data, _targets(data))
            tier_data[tier] = shared
        for tier in args.tiers:
            servers[tier] = await _start_tier(args, services, run_id, tier, *tier_data[tier], workdir)
        for query in args.queries:
            measured, floor = await _measure_interleaved(args, query, servers, tier_data)
            for tier, res in measured.items():
                results["tiers"].setdefault(tier, {})[query] = s = _summarize(res)
                log(f"[{tier:9s}] {query:8s} {s['rps']:8.1f} req/s  p50 {s['p50_ms']:7.1f} ms  "
                    f"p99 {s['p99_ms']:7.1f} ms  cpu/req {s['cpu_ms_per_request']:.2f} ms  "
                    f"sql/req {s['sql_per_request']:.2f}  cache rt/req {s['cache_round_trips_per_request']:.1f}  "
                    f"errors {s['errors']}  ({s['requests']} requests; memcached faults {s['cache_faults']}, "
                    f"flushes {s['cache_flushes']}, blind spots {s['cache_blind_spots']})")
            if floor:
                results["floor_ms"] = min(floor) * 1000
    finally:
        for proc, _ in servers.values():
            _stop_server(proc)
        if started_services is not None:
            started_services.stop()
    _report(results, args)
    return results


async def _start_tier(args: argparse.Namespace, services: Services | None, run_id: str, tier: str, data: BenchData,
                      targets: dict, workdir: Path) -> tuple[subprocess.Popen, str]:
    """The app server over `tier`, warmed: every store read the queries make, then HTTP passes."""
    config = workdir / f"{tier}.toml"
    config.write_text(_toml(_settings(services, run_id, tier, args.cache_timeout, workdir)))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await _start_server(config, port)
    try:
        t0 = time.perf_counter()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            for kind, items in prewarm_body(data).items():
                for i in range(0, len(items), PREWARM_CHUNK):  # the app caps request bodies at 2 MiB
                    async with http.post(f"{base}/_bench/prewarm", json={kind: items[i:i + PREWARM_CHUNK]}) as r:
                        if r.status != 200:
                            raise RuntimeError(f"prewarm failed: {r.status} {await r.text()}")
        for query in args.queries:
            # The prewarm covered every store read; this pass checks the answers and warms the rest
            # (sessions): every profile, and a sample of the posts.
            sample = targets[query] if query == "profile" else random.Random(args.seed).sample(
                targets[query], min(len(targets[query]), args.warm_pass_posts))
            await _warm_pass(f"{base}/graphql", query, sample, data.tokens, args.concurrency)
        log(f"[{tier}] server on :{port} warmed in {time.perf_counter() - t0:.1f}s")
    except BaseException:
        _stop_server(proc)
        raise
    return proc, base


def _floor_window(seconds: float) -> float:
    """CPU seconds per floor execution, executing for about `seconds` of wall time (this thread's
    CPU time: the bench process's other threads are not the floor's)."""
    from bench.graphql_floor import make_objects, run_floor
    usernames = make_objects()
    run_floor(usernames, 20)  # warm
    n, cpu, started = 0, 0.0, time.monotonic()
    while time.monotonic() - started < seconds:
        t0 = time.thread_time()
        run_floor(usernames, 50)
        cpu += time.thread_time() - t0
        n += 50
    return cpu / n


async def _measure_interleaved(args: argparse.Namespace, query: str, servers: dict, tier_data: dict
                               ) -> tuple[dict[str, dict], list[float]]:
    """`--rounds` windows per tier, alternating which tier goes first, so that both tiers see the
    same background load (the dev box is shared); windows of one tier are merged. During each
    embedded window of the profile page this process runs the floor (CPU per execution each time)."""
    merged: dict[str, dict] = {}
    floor: list[float] = []
    window = args.measure / args.rounds
    for r in range(args.rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        for tier in order:
            data, targets = tier_data[tier]
            job = {"base": servers[tier][1], "query": query, "targets": targets[query], "tokens": data.tokens,
                   "concurrency": args.concurrency, "warmup": args.warmup if r < 2 else 1.0, "measure": window,
                   "seed": args.seed + r}
            load = asyncio.to_thread(run_load_processes, load_process, [job], timeout=window + 300)
            if tier == "embedded" and query == "profile":
                # Side by side: the floor runs here while the load runs against the server.
                (res,), per = await asyncio.gather(load, asyncio.to_thread(_floor_window, job["warmup"] + window))
                floor.append(per)
            else:
                (res,) = await load
            m = merged.setdefault(tier, {"latencies": Latencies().to_dict(), "elapsed": 0.0,
                                         "delta": dict.fromkeys(DELTAS, 0)})
            lat = Latencies.from_dict(m["latencies"])
            lat.merge(Latencies.from_dict(res["latencies"]))
            m["latencies"] = lat.to_dict()
            m["elapsed"] += res["elapsed"]
            for k, v in res["delta"].items():
                m["delta"][k] += v
    return merged, floor


def _report(results: dict, args: argparse.Namespace) -> None:
    tiers = results["tiers"]
    if {"memcached", "local"} <= set(tiers):
        results["ratio"] = {q: tiers["memcached"][q]["rps"] / tiers["local"][q]["rps"]
                            for q in args.queries if tiers["local"][q]["rps"] > 0}
        for q, r in results["ratio"].items():
            verdict = (
                ""
                if q != "profile"
                else ("  (target >= %.2f: %s)" % (TARGET_RATIO, "met" if r >= TARGET_RATIO else "NOT met"))
            )
            log(f"ratio memcached/local {q:8s} {r:.2f}{verdict}")
    if "floor_ms" in results and "profile" in tiers.get("embedded", {}):
        server = tiers["embedded"]["profile"]["cpu_ms_per_request"]
        results["floor_ratio"] = r = server / results["floor_ms"]
        log(f"profile page CPU: server (embedded, warm) {server:.2f} ms/request, floor (plain strawberry) "
            f"{results['floor_ms']:.2f} ms/execution: ratio {r:.2f} "
            f"(target <= {TARGET_FLOOR_RATIO:.1f}: {'met' if r <= TARGET_FLOOR_RATIO else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    asyncio.run(run_bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
