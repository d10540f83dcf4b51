"""What the embedded default's cross-process coherence costs (docs/caching.md, "The embedded
default across processes"): the in-process cache reads the data dir's shared invalidation log
before every read and drops the keys other processes' writes changed; writes publish theirs.

    PYTHONPATH=. .venv/bin/python bench/embedded_coherence_bench.py           # what `make bench` runs
    PYTHONPATH=. .venv/bin/python bench/embedded_coherence_bench.py --quick   # a few seconds

1. Read path: `LocalCache.get_many` of 1 and of 100 cached keys, with and without the log (no
   other process writing), rounds alternating, best round; `changed()` alone; microseconds.
2. Hit rate: this process reads `--objects` USER objects of an embedded store (`obj_get` of 10
   random ids per call, a closed loop) for `--measure` seconds while another OS process (a batch
   job) updates random objects of the same set at each rate of `--write-rates`; prints the
   reader's cache hit rate, the keys dropped for the writer, and its `obj_get` p50/p99. Rate 0
   is the reader alone; every write makes one cached object stale, so the best possible hit
   rate is what the writes leave.
No servers are needed: the store is SQLite in a temp dir (8 logical shards, the default).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from pathlib import Path

from config import Settings, load_settings
from tao import open_tao
from tao.cache import Install, LocalCache
from tao.cache.keys import obj_key
from tao.cache.shared_log import SharedInvalidations


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=5000)
    p.add_argument("--measure", type=float, default=8.0, help="measured seconds per write rate")
    p.add_argument("--write-rates", default="0,10,100,1000", help="writes/s of the other process")
    p.add_argument("--quick", action="store_true", help="1000 objects, 2 s per rate")
    args = p.parse_args(argv)
    if args.quick:
        args.objects, args.measure = 1000, 2.0
    return args


# ---- 1. the read path -----------------------------------------------------------------------

async def _per_call_us(tier: LocalCache, keys: list[str], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        await tier.get_many(keys)
    return (time.perf_counter() - t) / n * 1e6


async def read_path(directory: Path) -> None:
    log = SharedInvalidations.open(directory / "bench-log")
    keys = [obj_key("", 10**15 + i) for i in range(100)]
    tiers = {"without log": LocalCache(), "with log": LocalCache(log=log)}
    for tier in tiers.values():
        await tier.install_many([Install(k, 1, lambda old: {"username": "x" * 12, "bio": "y" * 40}) for k in keys])
    best: dict[tuple[str, int], float] = {}
    for _ in range(10):  # alternate, so both see the same (shared, noisy) machine
        for label, tier in tiers.items():
            for n_keys, calls in ((1, 20000), (100, 1000)):
                us = await _per_call_us(tier, keys[:n_keys], calls)
                best[(label, n_keys)] = min(best.get((label, n_keys), us), us)
    print("read path (all hits, no other process writing), us per call, best of 10 alternating rounds:")
    for label in tiers:
        print(f"  {label:12s} get_many(1 key) {best[(label, 1)]:6.2f}   get_many(100 keys) {best[(label, 100)]:7.1f}")
    t = time.perf_counter()
    for _ in range(100000):
        log.changed()
    print(f"  SharedInvalidations.changed() alone, nobody writing: {(time.perf_counter() - t) / 100000 * 1e6:.2f} us")
    written = ["l:1234567890123456:FOLLOWED_BY", "n:1234567890123456:FOLLOWED_BY", "e:1234567890123456:FOLLOWED_BY:99",
               "l:99:FOLLOWS", "n:99:FOLLOWS", "e:99:FOLLOWS:1234567890123456"]  # what one follow installs
    t = time.perf_counter()
    for _ in range(20000):
        log.publish(written)
    print(f"  write path: publish() of the 6 keys a follow installs: {(time.perf_counter() - t) / 20000 * 1e6:.2f} us")
    log.close()


# ---- 2. hit rate under another process's writes -----------------------------------------------

def _writer(config: str, ids: list[int], rate: float, seconds: float, ready, go, done) -> None:
    async def main() -> None:
        tao = await open_tao(load_settings(config, env={}), migrate=False, start_worker=False)
        ready.set()
        go.wait()
        rng = random.Random(2)
        start = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - start) < seconds:
            if rate and n < elapsed * rate:
                await tao.obj_update(rng.choice(ids), {"n": n})
                n += 1
            else:
                await asyncio.sleep(0.001)
        done.value = n
        await tao.close()
    asyncio.run(main())


async def hit_rate(directory: Path, args: argparse.Namespace) -> None:
    s = Settings()
    s.store.sqlite_dir = str(directory / "shards")
    s.jobs.in_process_worker = False
    config = directory / "taogram.toml"
    config.write_text(f'[store]\nsqlite_dir = "{s.store.sqlite_dir}"\n[jobs]\nin_process_worker = false\n')
    tao = await open_tao(s, start_worker=False)
    ids = [await tao.obj_add("USER", {"username": f"u{i}", "bio": "x" * 40}) for i in range(args.objects)]
    ctx = mp.get_context("spawn")
    rng = random.Random(1)
    print(f"hit rate: reader obj_get(10 random of {args.objects}) for {args.measure:.0f} s while another "
          "process updates random ones of them:")
    for rate in [float(r) for r in args.write_rates.split(",")]:
        ready, go, done = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
        proc = ctx.Process(target=_writer, args=(str(config), ids, rate, args.measure, ready, go, done))
        proc.start()
        await asyncio.to_thread(ready.wait)
        for i in range(0, len(ids), 500):  # warm: every object cached
            await tao.obj_get(ids[i:i + 500])
        tao.reset_stats()
        go.set()
        lat = []
        start = time.monotonic()
        while time.monotonic() - start < args.measure:
            t = time.perf_counter()
            await tao.obj_get(rng.sample(ids, 10))
            lat.append(time.perf_counter() - t)
        await asyncio.to_thread(proc.join)
        st = tao.stats()
        hits, misses = st["cache_hits"], st["cache_misses"]
        q = statistics.quantiles(lat, n=100)
        print(
            f"  writes/s {rate:5.0f} (made {done.value / args.measure:5.0f}/s): "
            f"hit rate {hits / max(1, hits + misses):6.1%}  keys dropped "
            f"{st['cache_invalidated']:6d}  drop-all {st['cache_invalidated_all']}  reads {len(lat):6d}  "
            f"obj_get p50 {q[49] * 1e6:5.0f} us  p99 {q[98] * 1e6:5.0f} us"
        )
    await tao.close()


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="taogram-coherence-") as d:
        await read_path(Path(d))
        await hit_rate(Path(d), args)


if __name__ == "__main__":
    asyncio.run(main())
