"""What a shared rate limit costs a request: `tao.rate_limits` take() latency, in process memory
and in Redis (one Lua script call), one caller at a time and `--concurrency` at once.

Every authenticated mutation with an action limit pays one take() (two buckets); every GraphQL
request pays two or three on the cost budget (a peek before validation, a take before
execution). Run: `.venv/bin/python bench/throttle_bench.py [--calls 5000] [--concurrency 50]`
(starts its own Redis through tests.harness). Figures go in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Latencies
from config import BrokerSettings
from tao import Bucket, Mode
from tao.rate_limits import LocalRateLimiter, RedisRateLimiter


async def measure(limiter, calls: int, concurrency: int) -> dict:
    lat = Latencies()
    keys = [Bucket(f"act:likes:h:{i}", 1e9, 3600) for i in range(1000)]
    days = [Bucket(f"act:likes:d:{i}", 1e9, 86400) for i in range(1000)]

    async def one(i: int) -> None:
        t = time.perf_counter()
        await limiter.take([keys[i % 1000], days[i % 1000]], 1.0, Mode.TAKE)
        lat.record("take", time.perf_counter() - t)

    for i in range(200):  # warm: connections, the script loaded
        await one(i)
    lat.clear()
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with sem:
            await one(i)

    await asyncio.gather(*(bounded(i) for i in range(calls)))
    elapsed = time.perf_counter() - t0
    xs = sorted(lat.samples["take"])
    return {"calls": calls, "concurrency": concurrency, "calls_per_s": round(calls / elapsed),
            "p50_us": round(xs[len(xs) // 2] * 1e6), "p99_us": round(xs[int(len(xs) * 0.99)] * 1e6)}


async def run(args) -> dict:
    from tests.harness import start_services

    services = start_services(0, 0, s3=False, redis=True)
    try:
        out: dict = {"load_average_before": os.getloadavg()}
        local = LocalRateLimiter()
        redis = RedisRateLimiter(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix="bench"))
        try:
            for name, lim in (("local", local), ("redis", redis)):
                for conc in (1, args.concurrency):
                    out[f"{name}_c{conc}"] = await measure(lim, args.calls, conc)
            out["redis_fallbacks"] = redis.fallbacks
        finally:
            await redis.close()
        return out
    finally:
        services.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=50)
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
