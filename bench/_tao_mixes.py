"""The tao benchmark's operation mixes and the load process that runs one of them.

Two mixes, as fractions of all operations:
- "tao": the TAO paper's read-dominated mix (Bronson et al., ATC'13, §6 and Fig. 2): 99.8% reads
  split assoc_range 40.9%, obj_get 28.9%, assoc_get 15.7%, assoc_count 11.7%,
  assoc_time_range 2.8%; 0.2% writes split as the paper's write mix (assoc_add 52.5% — with
  assoc_change_type's 0.9% folded in —, obj_update 20.7%, obj_add 16.5%, assoc_delete 8.3%,
  obj_delete 2.0%).
- "linkbench": LinkBench's FBWorkload defaults (Armstrong et al., SIGMOD'13): getlinklist 50.7%,
  getnode 12.9%, addlink 9.0%, updatelink 8.0%, updatenode 7.4%, countlink 4.9%,
  deletelink 3.0%, addnode 2.6%, deletenode 1.0%, getlink 0.5%.

Access skew (LinkBench's Zipf shapes): id1 of link reads ~ Zipf(0.8), of link writes ~ Zipf(0.74),
node reads and updates ~ Zipf(0.63); every sampler shares one permutation, so the hot nodes are
the same for reads and writes, as in LinkBench. A process is closed-loop: `concurrency` tasks,
each issuing its next operation as soon as the last one returned.

Deleted nodes are only ever nodes the process itself added during the run, so the loaded graph
(and so the data both configurations read) stays the same across configurations.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from bench._tao_graph import DAY_MS, NODE_TYPE, TIME_SPAN_MS, GraphSpec, StoreSpec, node_data, open_store
from bench.common import Latencies, LoadSync, WeightedChoice, ZipfSampler
from tao import TaoError

_TAO_READS = {"assoc_range": 40.9, "obj_get": 28.9, "assoc_get": 15.7, "assoc_count": 11.7, "assoc_time_range": 2.8}
_TAO_WRITES = {"assoc_add": 52.5 + 0.9, "obj_update": 20.7, "obj_add": 16.5, "assoc_delete": 8.3, "obj_delete": 2.0}


def _scaled(weights: dict[str, float], share: float) -> dict[str, float]:
    total = sum(weights.values())
    return {k: share * v / total for k, v in weights.items()}


MIXES: dict[str, dict[str, float]] = {
    "tao": {**_scaled(_TAO_READS, 99.8), **_scaled(_TAO_WRITES, 0.2)},
    "linkbench": {"getlinklist": 50.7, "getnode": 12.9, "addlink": 9.0, "updatelink": 8.0, "updatenode": 7.4,
                  "countlink": 4.9, "deletelink": 3.0, "addnode": 2.6, "deletenode": 1.0, "getlink": 0.5},
}
SHAPES = {"link_read": 0.8, "link_write": 0.74, "node": 0.63}


@dataclass
class MixJob:
    store: StoreSpec
    graph: GraphSpec
    ids: list[int]
    mix: str
    config: str                  # "tao" | "nocache"
    concurrency: int
    warmup_min: float
    warmup_max: float
    measure_seconds: float
    seed: int
    range_limit: int = 50
    absent_share: float = 0.1    # assoc_get/getlink: share of probes for a random (mostly absent) edge
    steady_pp: float = 0.5       # warm when the hit rate (3-window mean) moves less than this (points)
    window: float = 1.0
    prewarm: bool = True
    stats_keys: list[str] = field(default_factory=lambda: ["sql_queries", "cache_hits", "cache_misses",
                                                           "cache_round_trips", "cache_errors", "cache_bypassed",
                                                           "cache_faults", "cache_flushes",
                                                           "cache_blind_spots"])


class _Ops:
    """One process's operation generator over the store."""

    def __init__(self, job: MixJob, tao, rng: random.Random) -> None:
        self.job, self.tao, self.rng = job, tao, rng
        self.g = job.graph
        n = len(job.ids)
        self.link_read = ZipfSampler(n, SHAPES["link_read"], job.graph.seed)
        self.link_write = ZipfSampler(n, SHAPES["link_write"], job.graph.seed)
        self.node = ZipfSampler(n, SHAPES["node"], job.graph.seed)
        self.choice = WeightedChoice(MIXES[job.mix])
        self.added: list[int] = []   # nodes this process added: the only ones it deletes
        self._targets: dict[int, list[int]] = {}
        self.now = job.graph.base_time_ms

    def targets(self, i: int) -> list[int]:
        t = self._targets.get(i)
        if t is None:
            t = self._targets[i] = self.g.targets(i)
        return t

    def id_(self, sampler: ZipfSampler) -> tuple[int, int]:
        i = sampler.sample(self.rng)
        return i, self.job.ids[i]

    def edge(self, sampler: ZipfSampler, absent_share: float) -> tuple[int, int]:
        i, id1 = self.id_(sampler)
        ts = self.targets(i)
        if ts and self.rng.random() >= absent_share:
            return id1, self.job.ids[self.rng.choice(ts)]
        return id1, self.job.ids[self.rng.randrange(len(self.job.ids))]

    async def run(self, verb: str) -> None:
        tao, a, rng = self.tao, self.g.atype, self.rng
        if verb in ("assoc_range", "getlinklist"):
            await tao.assoc_range(self.id_(self.link_read)[1], a, 0, self.job.range_limit)
        elif verb in ("obj_get", "getnode"):
            await tao.obj_get([self.id_(self.node)[1]])
        elif verb in ("assoc_get", "getlink"):
            id1, id2 = self.edge(self.link_read, self.job.absent_share)
            await tao.assoc_get(id1, a, [id2])
        elif verb in ("assoc_count", "countlink"):
            await tao.assoc_count(self.id_(self.link_read)[1], a)
        elif verb == "assoc_time_range":
            high = self.now - rng.randrange(TIME_SPAN_MS)
            await tao.assoc_time_range(self.id_(self.link_read)[1], a, high=high, low=high - 7 * DAY_MS,
                                       limit=self.job.range_limit)
        elif verb in ("assoc_add", "addlink"):
            # A new edge to a random node (LinkBench's addlink).
            _, id1 = self.id_(self.link_write)
            await tao.assoc_add(id1, a, self.job.ids[rng.randrange(len(self.job.ids))], data={"w": rng.randrange(100)})
        elif verb == "updatelink":
            id1, id2 = self.edge(self.link_write, 0.0)
            await tao.assoc_add(id1, a, id2, data={"w": rng.randrange(100)})
        elif verb in ("assoc_delete", "deletelink"):
            id1, id2 = self.edge(self.link_write, 0.0)
            await tao.assoc_delete(id1, a, id2)
        elif verb in ("obj_update", "updatenode"):
            await tao.obj_update(self.id_(self.node)[1], {"n": rng.randrange(1_000_000)})
        elif verb in ("obj_add", "addnode"):
            self.added.append(await tao.obj_add(NODE_TYPE, node_data(rng, -1)))
        elif verb in ("obj_delete", "deletenode"):
            if self.added:
                await tao.obj_delete(self.added.pop())
            else:  # nothing of ours to delete yet: still a delete transaction, of a fresh (missing) id
                await tao.obj_delete(tao.ids.next_id(tao.shard(self.id_(self.node)[1])))
        else:
            raise ValueError(f"unknown operation {verb!r}")


def _steady(series: list[float | None], points: float, k: int = 3) -> bool:
    """Steady: the mean hit rate of the last k windows is within `points` of the k before. (Two
    single windows can agree by chance while the rate is still climbing.)"""
    last = series[-2 * k:]
    if len(last) < 2 * k or None in last:
        return False
    return abs(sum(last[k:]) - sum(last[:k])) / k * 100 < points


async def _prewarm(job: MixJob, tao, sync: LoadSync) -> float:
    """Fill the cache with this process's share of the working set (objects, lists, existing
    edges) through the many-keys reads, so the mix reaches its steady state in seconds."""
    t0 = time.perf_counter()
    mine = list(range(sync.index, len(job.ids), sync.n_processes))
    a = job.graph.atype
    for k in range(0, len(mine), 100):
        chunk = mine[k:k + 100]
        edges = [(job.ids[i], a, job.ids[j]) for i in chunk for j in job.graph.targets(i)]
        try:
            await tao.obj_get([job.ids[i] for i in chunk])
            await tao.assoc_range_many([(job.ids[i], a) for i in chunk], 0, 1)
            for e in range(0, len(edges), 1000):
                await tao.assoc_get_many(edges[e:e + 1000])
        except TaoError:
            continue  # a busy shard timed out: the warm-up proper fills what this skipped
    return time.perf_counter() - t0


async def _run(job: MixJob, sync: LoadSync) -> dict:
    tao = await open_store(job.store, job.config)
    try:
        rng = random.Random(job.seed * 1000 + sync.index)
        ops = _Ops(job, tao, rng)
        # Open a connection to every shard first, in both configurations: connection set-up is
        # not what either configuration is measured on.
        await tao.ping_shards()
        prewarm_s = await _prewarm(job, tao, sync) if job.prewarm and job.config == "tao" else 0.0
        lat = Latencies()
        stop = asyncio.Event()

        async def task() -> None:
            while not stop.is_set():
                verb = ops.choice.sample(rng)
                t = time.perf_counter()
                try:
                    await ops.run(verb)
                except TaoError:
                    lat.error(verb)
                    continue
                lat.record(verb, time.perf_counter() - t)

        def check_tasks() -> None:
            for t in tasks:
                if t.done():  # only a bug ends a task early (store errors are counted): fail loudly
                    t.result()
                    raise RuntimeError("a load task ended before the run did")

        def hit_rate_since(prev: tuple[int, int]) -> tuple[float | None, tuple[int, int]]:
            s = tao.stats()
            cur = (s.get("cache_hits", 0), s.get("cache_misses", 0))
            h, m = cur[0] - prev[0], cur[1] - prev[1]
            return (h / (h + m) if h + m else None), cur

        tasks = [asyncio.create_task(task()) for _ in range(job.concurrency)]
        try:
            # Warm up until the hit rate is steady (window to window), within [warmup_min, warmup_max].
            t0 = time.monotonic()
            prev_counts = hit_rate_since((0, 0))[1]
            warm_series: list[float | None] = []
            while True:
                await asyncio.sleep(job.window)
                check_tasks()
                rate, prev_counts = hit_rate_since(prev_counts)
                warm_series.append(rate)
                elapsed = time.monotonic() - t0
                steady = _steady(warm_series, job.steady_pp)
                if elapsed >= job.warmup_max or (elapsed >= job.warmup_min and steady):
                    break  # at the cap unsteady: reported as such ("steady": False)
            warmup_s = time.monotonic() - t0
            # The others may still be warming: keep loading while we wait for them.
            await asyncio.to_thread(sync.wait_all_warm, job.warmup_max + 120)
            tao.reset_stats()
            lat.clear()
            t_start = time.perf_counter()
            series, counts = [], (0, 0)
            while (left := job.measure_seconds - (time.perf_counter() - t_start)) > 0:
                await asyncio.sleep(min(job.window, left))
                check_tasks()
                rate, counts = hit_rate_since(counts)
                series.append(rate)
            # Snapshot with no await in between, so counts, latencies and time agree.
            elapsed = time.perf_counter() - t_start
            snapshot = Latencies.from_dict(lat.to_dict())
            stats = tao.stats()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            for t in tasks:
                t.cancel()
        return {
            "lat": snapshot.to_dict(),
            "elapsed": elapsed,
            "stats": {k: stats.get(k, 0) for k in job.stats_keys},
            "warmup_s": warmup_s,
            "steady": steady,
            "prewarm_s": prewarm_s,
            "warm_series": warm_series,
            "series": series,
        }
    finally:
        await tao.close()


def run_mix_process(job: MixJob, sync: LoadSync) -> dict:
    return asyncio.run(_run(job, sync))
