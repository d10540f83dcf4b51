"""A LinkBench-style benchmark of the tao store: the TAO paper's read mix and LinkBench's
database mix, each run against (a) the store with its memcached tier and (b) the very same
store code over a no-cache tier (`NullCache`: every read goes to MariaDB), on the same data,
with the same pools, in one run.

    PYTHONPATH=. .venv/bin/python bench/tao_bench.py            # what `make bench` runs
    PYTHONPATH=. .venv/bin/python bench/tao_bench.py --quick    # smoke run, a few seconds a phase

Starts its own 2 MariaDB + 2 memcached (tests.harness) unless `--services-json` names a running
set; creates `--shards` logical shards over both MariaDB servers; loads `--nodes` nodes with
power-law out-degrees (mean ~10); then, per mix and configuration, `--processes` OS processes of
`--concurrency` closed-loop tasks warm up until the cache hit rate is steady and measure for
`--measure` seconds. Prints ops/s, p50/p99 per verb, the cache hit rate and the ratio (a)/(b);
`--json PATH` also writes every figure. See docs/BENCHMARKS.md ("tao store") for results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

from bench._tao_graph import GraphSpec, LoadJob, StoreSpec, load_edges_process, load_nodes_process, open_store
from bench._tao_mixes import MIXES, MixJob, run_mix_process
from bench.common import Latencies, run_load_processes
from tao.testing import TaoTestHooks as hooks
from tests.harness import Services, attach_services, start_services

CONFIGS = ("tao", "nocache")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=10_000, help="nodes to load (default 10000)")
    p.add_argument("--shards", type=int, default=8, help="logical shards over the 2 MariaDB servers (default 8)")
    p.add_argument("--processes", type=int, default=2, help="load-generator OS processes (default 2)")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop tasks per process (default 32)")
    p.add_argument("--measure", type=float, default=20.0, help="measured seconds per mix per configuration")
    p.add_argument("--warmup-min", type=float, default=5.0, help="minimum warm-up seconds (default 5)")
    p.add_argument("--warmup-max", type=float, default=40.0, help="warm-up cap in seconds (default 40)")
    p.add_argument("--mixes", default="tao,linkbench", help="comma-separated: tao, linkbench")
    p.add_argument("--configs", default="tao,nocache", help="comma-separated: tao (memcached), nocache")
    p.add_argument("--atype", default="TEST_PLAIN",
                   help="association type of the graph: TEST_PLAIN (default; no inverse, as LinkBench's links) "
                        "or TEST_LINK (every write also syncs an inverse edge)")
    p.add_argument("--range-limit", type=int, default=50, help="limit of assoc_range / assoc_time_range (default 50)")
    p.add_argument("--pool-max", type=int, default=10, help="MySQL connections per server per process (default 10)")
    p.add_argument("--cache-timeout", type=float, default=None,
                   help="cache.timeout in seconds (default: the Settings default); the memcached tier's "
                        "heartbeat gap limit is half of it")
    p.add_argument("--no-prewarm", action="store_true", help="skip the bulk cache pre-warm before the tao warm-up")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--services-json", help="reuse servers described by `python -m tests.harness up`'s JSON")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: defaults of 2000 nodes, 4 tasks a process, 1..3 s warm-up, 2 s measured")
    if p.parse_known_args(argv)[0].quick:  # smaller defaults; flags given explicitly still win
        p.set_defaults(nodes=2000, concurrency=4, measure=2.0, warmup_min=1.0, warmup_max=3.0)
    args = p.parse_args(argv)
    args.mixes = [m for m in args.mixes.split(",") if m]
    args.configs = [c for c in args.configs.split(",") if c]
    for m in args.mixes:
        if m not in MIXES:
            p.error(f"unknown mix {m!r}; known: {', '.join(MIXES)}")
    for c in args.configs:
        if c not in CONFIGS:
            p.error(f"unknown configuration {c!r}; known: {', '.join(CONFIGS)}")
    return args


def log(msg: str) -> None:
    print(msg, flush=True)


async def _load(args: argparse.Namespace, spec: StoreSpec, graph: GraphSpec) -> tuple[list[int], dict]:
    n, procs = graph.nodes, args.processes
    t0 = time.perf_counter()
    jobs = [LoadJob(spec, graph, 16, node_indexes=list(range(k, n, procs))) for k in range(procs)]
    parts = await asyncio.to_thread(run_load_processes, load_nodes_process, jobs, timeout=1800)
    by_index: dict[int, int] = {}
    for part in parts:
        by_index.update(part["ids"])
    ids = [by_index[i] for i in range(n)]
    t_nodes = time.perf_counter() - t0
    log(f"   {n} nodes in {t_nodes:.1f} s ({n / t_nodes:.0f}/s, obj_add)")
    t1 = time.perf_counter()
    jobs = [
        LoadJob(spec, graph, args.concurrency * 2, ids=ids, id1_indexes=list(range(k, n, procs))) for k in range(procs)
    ]
    parts = await asyncio.to_thread(run_load_processes, load_edges_process, jobs, timeout=3600)
    edges = sum(p["edges"] for p in parts)
    t_edges = time.perf_counter() - t1
    log(f"   {edges} edges in {t_edges:.1f} s ({edges / t_edges:.0f}/s, {parts[0]['how']})")
    return ids, {"nodes_s": t_nodes, "edges": edges, "edges_s": t_edges, "how": parts[0]["how"]}


def _aggregate(parts: list[dict]) -> dict[str, Any]:
    lat = Latencies()
    stats: dict[str, int] = {}
    for part in parts:
        lat.merge(Latencies.from_dict(part["lat"]))
        for k, v in part["stats"].items():
            stats[k] = stats.get(k, 0) + v
    ops = lat.ops()
    # Every process measured the same wall-clock window (a barrier starts it): ops/s add up.
    ops_s = sum(Latencies.from_dict(p["lat"]).ops() / p["elapsed"] for p in parts)
    lookups = stats.get("cache_hits", 0) + stats.get("cache_misses", 0)
    windows = [r for p in parts for r in p["series"] if r is not None]
    return {
        "ops": ops, "ops_s": ops_s, "elapsed_s": max(p["elapsed"] for p in parts),
        "hit_rate": stats.get("cache_hits", 0) / lookups if lookups else 0.0,
        "hit_rate_windows": [min(windows), max(windows)] if windows else None,
        "sql_per_op": stats.get("sql_queries", 0) / ops if ops else 0.0,
        "errors": sum(lat.errors.values()),
        "warmup_s": max(p["warmup_s"] for p in parts), "steady": all(p["steady"] for p in parts),
        "prewarm_s": max(p["prewarm_s"] for p in parts),
        "verbs": lat.summary(), "stats": stats,
    }


def _report(mix: str, res: dict[str, dict]) -> None:
    log(f"\n== mix {mix}")
    log(f"   {'config':<8} {'ops/s':>9} {'hit rate':>9} {'per-1s-window':>16} {'sql/op':>7} {'errors':>6} "
        f"{'warm-up':>8} {'mc faults':>9} {'flushes':>8} {'blind spots':>11}")
    for config, r in res.items():
        w = r["hit_rate_windows"]
        win = f"{w[0] * 100:.1f}..{w[1] * 100:.1f}%" if w and config == "tao" else "-"
        log(
            f"   {config:<8} {r['ops_s']:>9.0f} {r['hit_rate'] * 100:>8.1f}% {win:>16} {r['sql_per_op']:>7.2f} "
            f"{r['errors']:>6} {r['warmup_s']:>7.1f}{'s' if r['steady'] else '!'} "
            f"{r['stats'].get('cache_faults', 0):>9} "
            f"{r['stats'].get('cache_flushes', 0):>8} {r['stats'].get('cache_blind_spots', 0):>11}"
        )
    if "tao" in res and "nocache" in res and res["nocache"]["ops_s"]:
        log("   (warm-up ending in '!': the hit rate was not steady at --warmup-max)")
        log(f"   ratio tao/nocache: {res['tao']['ops_s'] / res['nocache']['ops_s']:.2f}x ops/s")
    verbs = list(next(iter(res.values()))["verbs"])
    head = "".join(f"{c + ' p50/p99 ms':>24}" for c in res)
    log(f"   {'verb':<17}{'share':>7}{head}")
    for verb in verbs:
        first = next(iter(res.values()))
        share = first["verbs"][verb]["n"] / first["ops"] * 100 if first["ops"] else 0
        cells = ""
        for r in res.values():
            v = r["verbs"].get(verb)
            cells += f"{(f'{v['p50_ms']:.2f} / {v['p99_ms']:.2f}' if v else '-'):>24}"
        log(f"   {verb:<17}{share:>6.1f}%{cells}")


async def run_bench(args: argparse.Namespace, services: Services | None = None) -> dict[str, Any]:
    """Run the whole benchmark; returns every figure. With `services` given (the test fixture or
    `--services-json`), uses those servers and drops its databases afterwards."""
    own = services is None
    if own:
        log("starting 2 MariaDB + 2 memcached (tests.harness) ...")
        services = await asyncio.to_thread(start_services, 2, 2, False)
    run_id = "bench" + uuid.uuid4().hex[:8]
    spec = StoreSpec([(m.host, m.port, m.unix_socket) for m in services.mysql[:2]], list(services.memcached[:2]),
                     args.shards, run_id, run_id, args.pool_max, args.cache_timeout)
    graph = GraphSpec(args.nodes, args.seed, args.atype, base_time_ms=int(time.time() * 1000))
    out: dict[str, Any] = {
        "run_id": run_id,
        "args": {k: v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count()},
    }
    try:
        tao = await open_store(spec, "tao", migrate=True)
        await tao.close()
        out["graph"] = graph.describe()
        log(f"graph: {out['graph']}; {args.shards} logical shards on {len(spec.mysql)} MariaDB, "
            f"{len(spec.memcached)} memcached; loading ...")
        ids, out["load"] = await _load(args, spec, graph)
        tao = await open_store(spec, "tao")
        try:
            out["load"]["outbox_jobs_drained"] = await tao.run_jobs_until_idle()
        finally:
            await tao.close()
        out["results"] = {}
        for mix in args.mixes:
            out["results"][mix] = {}
            for config in args.configs:
                log(f"-- {mix} / {config}: {args.processes} processes x {args.concurrency} tasks, "
                    f"warm-up {args.warmup_min:.0f}..{args.warmup_max:.0f} s, measure {args.measure:.0f} s "
                    f"(load average {os.getloadavg()[0]:.1f})")
                jobs = [MixJob(spec, graph, ids, mix, config, args.concurrency, args.warmup_min, args.warmup_max,
                               args.measure, args.seed + 17 * k, range_limit=args.range_limit,
                               prewarm=not args.no_prewarm) for k in range(args.processes)]
                parts = await asyncio.to_thread(run_load_processes, run_mix_process, jobs,
                                                timeout=args.warmup_max + args.measure + 600)
                out["results"][mix][config] = _aggregate(parts)
            _report(mix, out["results"][mix])
        return out
    finally:
        if own:
            services.stop()
        else:
            await _drop(spec)


async def _drop(spec: StoreSpec) -> None:
    tao = await open_store(spec, "tao")
    try:
        for s in range(spec.shards):
            await hooks(tao).backend.drop_shard(s)
    finally:
        await tao.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    services = attach_services(args.services_json) if args.services_json else None
    out = asyncio.run(run_bench(args, services))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
