"""The tao benchmark's world: settings for the harness's servers, the two store configurations
under test, the no-cache baseline tier, and the synthetic graph with its loader.

The graph is deterministic given (nodes, seed): node i's out-degree and its targets come from
a generator seeded by (seed, i), so the load processes and the mix processes agree on which
edges exist without shipping the edge list around; only the node ids (assigned by the store)
are passed between processes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from config import MySQLServer, Settings
from tao import Tao, TaoError, open_tao
from tao.cache.base import Install, Value
from tao.shardmap import ShardMap
from tao.store import make_backend
from tao.types import REGISTRY

NODE_TYPE = "TEST_NODE"
DAY_MS = 24 * 3600 * 1000
# Edge times are spread over this window before the load, so time ranges select something.
TIME_SPAN_MS = 30 * DAY_MS


# ---- the baseline cache tier --------------------------------------------------------------------


class NullCache:
    """A `CacheTier` that never hits and accepts every install: the same `Tao` code then reads
    MySQL for every key, with the same statements, pools and batching. The no-cache baseline."""

    def __init__(self) -> None:
        self._misses = 0

    async def get_many(self, keys: list[str]) -> dict[str, Value]:
        self._misses += len(set(keys))
        return {}

    async def install_many(self, installs: list[Install], *, written: bool = False) -> set[str]:
        return set()  # "installed" (and immediately forgotten): nothing to repair

    def fence(self) -> int:
        return 0  # nothing is ever installed, so no install needs fencing

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"hits": 0, "misses": self._misses, "round_trips": 0}


# ---- settings and stores ------------------------------------------------------------------------


@dataclass
class StoreSpec:
    """Everything a process needs to open the benchmark's store (picklable)."""

    mysql: list[tuple[str, int, str]]   # (host, port, unix_socket)
    memcached: list[str]
    shards: int
    database_prefix: str
    cache_prefix: str
    pool_max: int
    cache_timeout: float | None = None   # None: the Settings default

    def settings(self) -> Settings:
        s = Settings()
        s.store.backend = "mysql"
        s.store.logical_shards = self.shards
        # TCP, not the unix socket: the servers are reached the way a deployment reaches them.
        s.store.mysql_servers = [MySQLServer(host=h, port=p) for h, p, _ in self.mysql]
        s.store.database_prefix = self.database_prefix
        s.store.pool_max = self.pool_max
        s.cache.backend = "memcached"
        s.cache.servers = list(self.memcached)
        s.cache.key_prefix = self.cache_prefix
        if self.cache_timeout is not None:
            s.cache.timeout = self.cache_timeout
        s.jobs.in_process_worker = False  # no background worker competing with the load
        return s


async def open_store(spec: StoreSpec, config: str, *, migrate: bool = False) -> Tao:
    """config "tao": the store as deployed (memcached tier); "nocache": the same store over NullCache."""
    settings = spec.settings()
    if config == "tao":
        return await open_tao(settings, migrate=migrate, start_worker=False)
    if config != "nocache":
        raise ValueError(f"unknown configuration {config!r}")
    shard_map = ShardMap.from_settings(settings.store)
    tao = Tao(settings, REGISTRY, shard_map, make_backend(settings, shard_map), NullCache())
    try:
        await (tao.migrate() if migrate else tao.check_schema())
        await tao.lease_ids()
    except BaseException:
        await tao.close()
        raise
    return tao


# ---- the graph ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphSpec:
    nodes: int
    seed: int
    atype: str
    # Out-degrees: a discrete Pareto (power law) with this tail exponent and scale, capped.
    # alpha 1.6 and scale 5 give a mean near 10 with a long tail (see `describe`).
    alpha: float = 1.6
    scale: float = 5.0
    max_degree: int = 2_000
    base_time_ms: int = 0

    def degree(self, i: int) -> int:
        u = random.Random(self.seed * 1_000_003 + i).random()
        return min(self.max_degree, self.nodes - 1, int(self.scale * ((1.0 - u) ** (-1.0 / self.alpha))) - 3)

    def targets(self, i: int) -> list[int]:
        """Node i's out-neighbours (indexes), distinct, never i itself."""
        d = max(0, self.degree(i))
        rng = random.Random(self.seed * 7_000_003 + i)
        picked: set[int] = set()
        while len(picked) < d:
            j = rng.randrange(self.nodes)
            if j != i:
                picked.add(j)
        return sorted(picked)

    def edge_time(self, i: int, j: int) -> int:
        return self.base_time_ms - random.Random(i * 1_000_003 + j).randrange(TIME_SPAN_MS)

    def describe(self) -> dict[str, Any]:
        degs = sorted(max(0, self.degree(i)) for i in range(self.nodes))
        return {"nodes": self.nodes, "edges": sum(degs), "mean_degree": round(sum(degs) / self.nodes, 2),
                "median_degree": degs[len(degs) // 2], "p99_degree": degs[int(len(degs) * 0.99)],
                "max_degree": degs[-1], "zero_degree_share": round(sum(d == 0 for d in degs) / self.nodes, 3)}


def node_data(rng: random.Random, i: int) -> dict:
    # LinkBench's node payloads are a few hundred bytes; the store's objects are small dicts.
    return {"name": f"node{i}", "bio": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=96)), "n": 0}


# ---- loading (runs in the load processes) -------------------------------------------------------


@dataclass
class LoadJob:
    store: StoreSpec
    graph: GraphSpec
    concurrency: int
    node_indexes: list[int] | None = None   # phase "nodes": create these nodes
    ids: list[int] | None = None             # phase "edges": every node's id, by index
    id1_indexes: list[int] | None = None     # phase "edges": add the out-edges of these nodes


async def _bounded(concurrency: int, items: list, fn) -> list:
    sem = asyncio.Semaphore(concurrency)

    async def one(x):
        async with sem:
            return await fn(x)
    return await asyncio.gather(*(one(x) for x in items))


async def _retrying(fn, *args, attempts: int = 5):
    """Loads are upserts: a batch that timed out on a busy server is simply sent again."""
    for attempt in range(attempts):
        try:
            return await fn(*args)
        except TaoError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * 2 ** attempt)


async def load_nodes(job: LoadJob) -> dict:
    tao = await open_store(job.store, "tao")
    try:
        rng = random.Random(job.graph.seed)
        t0 = time.perf_counter()
        ids = await _bounded(job.concurrency, job.node_indexes,
                             lambda i: tao.obj_add(NODE_TYPE, node_data(rng, i)))
        return {"ids": dict(zip(job.node_indexes, ids)), "seconds": time.perf_counter() - t0}
    finally:
        await tao.close()


async def load_edges(job: LoadJob) -> dict:
    """Adds the out-edges of `id1_indexes`: in bulk through `assoc_add_many` when the store has
    it, else one `assoc_add` at a time, `concurrency` at once."""
    g, ids = job.graph, job.ids
    tao = await open_store(job.store, "tao")
    try:
        edges = [(ids[i], g.atype, ids[j], g.edge_time(i, j), {"w": j % 100})
                 for i in job.id1_indexes for j in g.targets(i)]
        t0 = time.perf_counter()
        bulk = getattr(tao, "assoc_add_many", None)
        if bulk is not None:
            # Few large batches at a time: each holds a connection per shard it touches.
            batches = [edges[k:k + 1000] for k in range(0, len(edges), 1000)]
            await _bounded(2, batches, lambda b: _retrying(bulk, b))
            how = "assoc_add_many"
        else:
            await _bounded(job.concurrency, edges,
                           lambda e: _retrying(lambda: tao.assoc_add(*e[:3], time=e[3], data=e[4])))
            how = "assoc_add"
        return {"edges": len(edges), "seconds": time.perf_counter() - t0, "how": how}
    finally:
        await tao.close()


def load_nodes_process(job: LoadJob, sync) -> dict:
    return asyncio.run(load_nodes(job))


def load_edges_process(job: LoadJob, sync) -> dict:
    return asyncio.run(load_edges(job))
