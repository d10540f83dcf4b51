"""Shared helpers for the benchmarks in `bench/`: latency recording (p50/p99 per verb), Zipf-like
samplers over a fixed population, and a group of load-generator OS processes that warm up and
measure in lock-step.

Not a benchmark itself (`make bench` runs every `bench/[!_]*.py`, so running this file only
prints a note). The load machinery knows nothing of the store: a benchmark hands
`run_load_processes` a top-level function that runs one process's load.

The scaffolding every store benchmark repeated lives here too, imported lazily (load processes
import this module and need none of it): the service arguments (`service_arguments`), the
settings on the harness's servers (`harness_settings`), `main` (`run_on_services`), the
teardown (`drop_shards_and_close`) and the progress line (`log`).

Invariant kept by `run_load_processes`: every process starts its measured window at the same
moment (a barrier, passed once every process has warmed up) and measures for the same duration,
so the offered load during every process's window is the full load, and summed ops/s are honest.
"""

from __future__ import annotations

import bisect
import itertools
import math
import multiprocessing as mp
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Processes are spawned, never forked: the parent runs an event loop and cache-tier threads,
# which a fork would copy in an undefined state.
_CTX = mp.get_context("spawn")


# ---- latencies ----------------------------------------------------------------------------------


@dataclass
class Latencies:
    """Per-verb latency samples (seconds) and error counts of one process; mergeable."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, verb: str, seconds: float) -> None:
        self.samples[verb].append(seconds)

    def error(self, verb: str) -> None:
        self.errors[verb] += 1

    def clear(self) -> None:
        self.samples = defaultdict(list)
        self.errors = defaultdict(int)

    def ops(self) -> int:
        return sum(len(v) for v in self.samples.values())

    def merge(self, other: Latencies) -> None:
        for verb, xs in other.samples.items():
            self.samples[verb].extend(xs)
        for verb, n in other.errors.items():
            self.errors[verb] += n

    def summary(self) -> dict[str, dict[str, float]]:
        """{verb: {"n", "p50_ms", "p99_ms", "errors"}}, verbs sorted by count, most frequent first."""
        out = {}
        for verb in sorted(set(self.samples) | set(self.errors), key=lambda v: -len(self.samples.get(v, ()))):
            xs = sorted(self.samples.get(verb, ()))
            out[verb] = {"n": len(xs), "p50_ms": percentile(xs, 50) * 1000, "p99_ms": percentile(xs, 99) * 1000,
                         "errors": self.errors.get(verb, 0)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"samples": dict(self.samples), "errors": dict(self.errors)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Latencies:
        lat = cls()
        for verb, xs in d["samples"].items():
            lat.samples[verb].extend(xs)
        for verb, n in d["errors"].items():
            lat.errors[verb] += n
        return lat


def percentile(sorted_xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not sorted_xs:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_xs)))
    return sorted_xs[min(rank, len(sorted_xs)) - 1]


# ---- samplers -----------------------------------------------------------------------------------


class ZipfSampler:
    """Draws indexes 0..n-1 with P(rank r) ∝ 1 / r**shape (LinkBench's Zipf shapes: 0.8 for link
    reads, 0.74 for link writes, 0.63 for node reads).

    Ranks are mapped to indexes through a permutation seeded by `seed`, so the hot items are
    scattered over the population (over every shard) rather than being its first ids, and every
    process given the same (n, shape, seed) agrees on which items are hot."""

    def __init__(self, n: int, shape: float, seed: int) -> None:
        if n < 1:
            raise ValueError("a sampler needs at least one item")
        self.n = n
        self.shape = shape
        self._cum = list(itertools.accumulate(1.0 / (r ** shape) for r in range(1, n + 1)))
        self._total = self._cum[-1]
        self._perm = list(range(n))
        random.Random(seed).shuffle(self._perm)

    def sample(self, rng: random.Random) -> int:
        rank = bisect.bisect_left(self._cum, rng.random() * self._total)
        return self._perm[min(rank, self.n - 1)]

    def top_share(self, fraction: float) -> float:
        """The probability mass of the hottest `fraction` of the items (for reporting the skew)."""
        k = max(1, int(self.n * fraction))
        return self._cum[k - 1] / self._total


class WeightedChoice:
    """Draws names with fixed weights (an operation mix)."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.names = list(weights)
        self._cum = list(itertools.accumulate(weights[n] for n in self.names))

    def sample(self, rng: random.Random) -> str:
        return rng.choices(self.names, cum_weights=self._cum)[0]


# ---- load-generator processes -------------------------------------------------------------------


@dataclass
class LoadSync:
    """What a load process gets to coordinate with the others (passed to its function)."""

    index: int
    n_processes: int
    barrier: Any  # multiprocessing.Barrier: wait() once warmed up; measuring starts after it

    def wait_all_warm(self, timeout: float) -> None:
        """Block until every process is warm. Call it from a thread (`asyncio.to_thread`) while the
        load tasks keep running, so no process's load pauses while it waits for the others."""
        self.barrier.wait(timeout)


def _process_main(
    fn: Callable[[Any, LoadSync], dict], arg: Any, index: int, n: int, barrier: Any, results: Any
) -> None:
    try:
        results.put((index, fn(arg, LoadSync(index, n, barrier)), None))
    except BaseException as exc:  # reported to the parent, which raises
        import traceback
        barrier.abort()  # release the others rather than leave them waiting for the timeout
        results.put((index, None, "".join(traceback.format_exception(exc))))


def run_load_processes(fn: Callable[[Any, LoadSync], dict], args: Sequence[Any], *, timeout: float) -> list[dict]:
    """Run `fn(args[i], sync)` in one spawned process per item and return their results in order.

    `fn` must be a module-level function (spawned processes import it). Blocking: call it from a
    thread (`asyncio.to_thread`) when the caller runs an event loop. Raises RuntimeError with the
    child's traceback if any process fails, or if they take longer than `timeout` seconds."""
    n = len(args)
    barrier = _CTX.Barrier(n)
    results = _CTX.Queue()
    procs = [_CTX.Process(target=_process_main, args=(fn, a, i, n, barrier, results), daemon=True)
             for i, a in enumerate(args)]
    for p in procs:
        p.start()
    out: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"load processes did not finish within {timeout:.0f}s")
            try:
                index, result, error = results.get(timeout=min(remaining, 1.0))
            except Exception:  # queue.Empty: check that nobody died without reporting
                dead = [p for i, p in enumerate(procs) if i not in out and p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"load process exited with code {dead[0].exitcode} without a result") from None
                continue
            if error is not None:
                raise RuntimeError(f"load process {index} failed:\n{error}")
            out[index] = result
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return [out[i] for i in range(n)]


# ---- scaffolding of the store benchmarks ---------------------------------------------------------


def log(msg: str) -> None:
    """A progress line with the time and the load average (figures on a shared box need it)."""
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def service_arguments(p: Any, *, shards: int | None = None) -> None:
    """Add the arguments every store benchmark takes: `--services-json`, `--json` and, when
    `shards` is given, `--shards` with that default."""
    p.add_argument("--services-json", help="reuse the servers of `python -m tests.harness up`")
    if shards is not None:
        p.add_argument("--shards", type=int, default=shards, help="logical shards (default %(default)s)")
    p.add_argument("--json", help="write every figure here")


def harness_settings(services: Any, run_id: str, shards: int, *, cache_timeout: float = 2.0,
                     query_timeout: float = 30.0, pool_max: int | None = 16) -> Any:
    """Settings on the harness's MariaDB and memcached servers, under databases and cache keys
    of their own (`run_id`), with no background worker (the benchmark runs jobs when it means to).
    Generous SQL timeouts: on a loaded box the bench measures, it does not fail fast."""
    from config import MySQLServer, Settings

    s = Settings()
    s.store.backend = "mysql"
    s.store.logical_shards = shards
    s.store.mysql_servers = [MySQLServer(host=m.host, port=m.port, user=m.user, password=m.password)
                             for m in services.mysql]
    s.store.database_prefix = run_id
    s.store.query_timeout = query_timeout
    if pool_max is not None:  # None: the Settings default
        s.store.pool_max = pool_max
    s.cache.backend = "memcached"
    s.cache.servers = list(services.memcached)
    s.cache.key_prefix = run_id
    s.cache.timeout = cache_timeout
    s.cache.heartbeat_interval = min(0.2, cache_timeout / 4)
    s.jobs.in_process_worker = False
    return s


async def drop_shards_and_close(tao: Any, shards: int) -> None:
    """A benchmark's teardown: drop every shard database it created, then close the store."""
    from tao.testing import TaoTestHooks

    try:
        for s in range(shards):
            await TaoTestHooks(tao).backend.drop_shard(s)
    finally:
        await tao.close()


async def add_users(tao: Any, n: int, tag: str) -> list[int]:
    """`n` accounts named `<tag><i>`, as sign-up records them (usernames not claimed), in bulk."""
    from resolvers.accounts import user_data
    from tao.bulk_lists import MAX_BULK

    out: list[int] = []
    for i in range(0, n, MAX_BULK):
        out += await tao.obj_add_many([("USER", user_data(f"{tag}{j}", "", None), None)
                                       for j in range(i, min(n, i + MAX_BULK))])
    return out


class GcWatch:
    """Counts the garbage collector's passes and the CPU time they take (gc.callbacks), so a slow
    read can be told apart: a GC pass, or the read's own work."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = 0.0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.process_time()
        else:
            self.passes[info["generation"]] += 1
            self.seconds += time.process_time() - self._t0

    def snapshot(self) -> tuple[int, int, int, float]:
        return self.passes[0], self.passes[1], self.passes[2], self.seconds


def cpu_seconds(pid: int) -> float:
    """A process's CPU so far (user and kernel), from /proc."""
    return sum(user_system_seconds(pid))


def user_system_seconds(pid: int) -> tuple[float, float]:
    """The process's CPU in user space and in the kernel (its system calls: socket I/O, epoll)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def box_speed_ms(rounds: int = 5) -> float:
    """The median CPU time of a fixed pure-Python loop (10**6 multiply-adds), in ms: how fast this
    box's cores are right now. A shared virtual machine's varies by half within minutes
    (measured: 0.55-0.90 s for 10**7), so a figure is read beside the speed it was taken at."""
    import statistics
    import time

    times = []
    for _ in range(rounds):
        t = time.process_time()
        sum(i * i for i in range(1_000_000))
        times.append(time.process_time() - t)
    return round(statistics.median(times) * 1000, 1)


def started(args: Any) -> dict[str, Any]:
    """The head of a benchmark's result: its arguments, the machine's CPUs, the load average."""
    return {"args": vars(args), "cpus": os.cpu_count(), "load_average_start": os.getloadavg()}


def run_on_services(run: Callable[[Any, Any], Any], args: Any, log: Callable[[str], None] = log, *,
                    s3: bool = False) -> int:
    """A bench's `main`: run `asyncio.run(run(args, services))` on the servers `--services-json`
    names, else on 2 MariaDB + 2 memcached (and an S3 server when `s3`) started (and stopped)
    here; print the result as JSON and write it to `--json` when given."""
    import asyncio
    import json

    from tests.harness import attach_services, start_services

    if args.services_json:
        services, own = attach_services(args.services_json), False
    else:
        log(f"starting 2 MariaDB + 2 memcached{' + S3 (moto)' if s3 else ''} (tests.harness) ...")
        services, own = start_services(2, 2, s3), True
    try:
        out = asyncio.run(run(args, services))
    finally:
        if own:
            services.stop()
    print(json.dumps(out, indent=1, default=str))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    print("bench/common.py holds helpers for the benchmarks; it is not a benchmark itself.")
