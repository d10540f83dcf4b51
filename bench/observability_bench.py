"""What the always-on instrumentation (metrics, the request record; tracing off) costs per request.

    PYTHONPATH=. .venv/bin/python bench/observability_bench.py [--pairs 3]

Each pair runs two fresh processes, one with the hooks as shipped and one with them stubbed out
(the store's verb and cache wrappers, the per-statement SQL timer, the per-operation record),
in turns so both see the same background load. A process serves the real app on the embedded
default (SQLite, in-process cache, warm) to an aiohttp client in the same process and reports
its CPU time per request (client and server together: the share of the hooks in the server
alone is somewhat larger), best of 5 windows of 200 requests. Log lines are off in both (the
JSON line's cost depends on where the logs go). See docs/BENCHMARKS.md ("Observability").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

QUERY = """query Profile($u: String!) { user(username: $u) { username fullName followerCount followingCount
  postCount posts(first: 12) { edges { node { id } } }
  followers(first: 20) { edges { node { username fullName } } } } }"""
REQUESTS, WINDOWS = 200, 5


def _stub_hooks() -> None:
    import server
    import tao.backends.sqlite
    import tao.store

    class _NoTimer:
        def __init__(self, *args: object) -> None:
            pass

        def __enter__(self) -> None:
            return None

        def __exit__(self, *args: object) -> None:
            return None

    class _NoOperation:
        def finish(self, *args: object) -> None:
            pass

    @contextlib.contextmanager
    def no_observation(*args: object, **kwargs: object):
        yield _NoOperation()

    tao.store.instrument = lambda tao: None
    tao.backends.sqlite.SQLTimer = _NoTimer
    server.observe_operation = no_observation


async def _measure() -> float:
    from tests.schema.client import graphql_settings, running_app

    settings = graphql_settings("sqlite", None, "obs" + uuid.uuid4().hex[:6], Path(tempfile.mkdtemp()))
    async with running_app(settings) as gql:
        token, _ = await gql.sign_up("ann_obs")
        ann = (await gql.ok('{ user(username: "ann_obs") { id } }'))["user"]["id"]
        for i in range(20):
            follower, _ = await gql.sign_up(f"f{i}_obs")
            await gql.mutate("follow", follower, ann)
        await gql.tao.run_jobs_until_idle()
        for _ in range(50):  # warm the cache and the code paths
            await gql.ok(QUERY, {"u": "ann_obs"}, token)
        windows = []
        for _ in range(WINDOWS):
            began = time.process_time()
            for _ in range(REQUESTS):
                await gql.ok(QUERY, {"u": "ann_obs"}, token)
            windows.append((time.process_time() - began) / REQUESTS * 1000)
        return min(windows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--mode", choices=["on", "off"], help=argparse.SUPPRESS)  # one measuring process
    args = parser.parse_args()
    if args.mode:
        if args.mode == "off":
            _stub_hooks()
        logging.disable(logging.INFO)
        print(f"{asyncio.run(_measure()):.4f}")
        return 0
    results: dict[str, list[float]] = {"on": [], "off": []}
    for pair in range(args.pairs):
        for mode in ("on", "off") if pair % 2 == 0 else ("off", "on"):
            out = subprocess.run([sys.executable, __file__, "--mode", mode], capture_output=True, text=True, check=True)
            results[mode].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"pair {pair + 1}: hooks {mode:3}  {results[mode][-1]:.2f} ms CPU per request", flush=True)
    on, off = statistics.mean(results["on"]), statistics.mean(results["off"])
    print(f"mean: hooks on {on:.2f} ms, stubbed {off:.2f} ms per request; overhead {on - off:+.2f} ms "
          f"({(on / off - 1) * 100:+.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
