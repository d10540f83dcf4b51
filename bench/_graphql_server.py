"""The app server as `bench/graphql_bench.py` runs it: `server.create_app(settings)` unchanged,
plus two routes that exist only in this benchmark process (never in the real server):

- `GET /_bench/stats`: the store's counters (`tao.stats()`: `sql_queries`, `cache_round_trips`,
  ...) since the last reset, and `cpu_seconds`, this process's CPU time so far (user + system,
  `time.process_time()`); `POST` resets the counters first. The load generator reads them at both
  ends of its measured window, so round trips per request are the server's own count.
- `POST /_bench/prewarm` `{"objects": [...], "lists": [[id1, atype], ...], "counts": [[id1,
  atype], ...], "edges": [[id1, atype, id2], ...], "usernames": [...]}`: reads all of it
  through the store's many-keys verbs in this process (`lists`: their windows of newest edges
  and their counts; `counts`: counts only), which fills whichever cache tier it runs (the
  in-process tier can only be warmed from inside its own process).

    PYTHONPATH=. .venv/bin/python -m bench._graphql_server --config bench.toml --port 8123
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import time
from itertools import islice

from aiohttp import web

from config import load_settings
from server import TAO_KEY, create_app

CHUNK = 250  # lists fill with one UNION ALL per shard: keep each statement small
log = logging.getLogger("taogram.bench")


def _chunks(items: list, n: int = CHUNK):
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


async def stats(request: web.Request) -> web.Response:
    tao = request.app[TAO_KEY]
    if request.method == "POST":
        tao.reset_stats()
    else:
        _profile_window()
    return web.json_response({**tao.stats(), "cpu_seconds": time.process_time()})


async def prewarm(request: web.Request) -> web.Response:
    try:
        await prewarm_store(request.app[TAO_KEY], await request.json())
    except Exception as exc:  # a benchmark's helper route: say what broke
        log.exception("prewarm failed")
        return web.Response(status=500, text=f"{type(exc).__name__}: {exc}")
    return web.json_response(request.app[TAO_KEY].stats())


async def prewarm_store(tao, body: dict) -> None:
    for chunk in _chunks(body.get("objects", [])):
        await tao.obj_get(chunk)
    for chunk in _chunks([tuple(k) for k in body.get("lists", [])]):
        # Both cache entries of each list: its window of newest edges (a range read fills the
        # list key, and its count key with it), and its count key. A count read alone fills
        # only the count key (counts are cached apart from their lists), which left every
        # likers and comments window to the measured requests.
        await tao.assoc_range_many(chunk, 0, 1)
        await tao.assoc_count_many(chunk)
    for chunk in _chunks([tuple(k) for k in body.get("counts", [])]):
        await tao.assoc_count_many(chunk)
    for chunk in _chunks([tuple(k) for k in body.get("edges", [])]):
        await tao.assoc_get_many(chunk)
    for chunk in _chunks(body.get("usernames", [])):
        await tao.key_get_many("username", chunk)


_PROFILE: dict = {}  # TAOGRAM_BENCH_PROFILE=path: cProfile each measured window (POST stats .. GET stats)


def _profile_window() -> None:
    """Profile exactly the bench's measured windows: the load generator reads the stats at both
    ends of each; the first read starts the profiler, the second writes what it saw to the path
    (`python -m pstats path` reads it)."""
    if not (path := os.environ.get("TAOGRAM_BENCH_PROFILE")):
        return
    if (profiler := _PROFILE.pop("profiler", None)) is None:
        _PROFILE["profiler"] = cProfile.Profile(time.process_time)  # CPU, not wall: the box is shared
        _PROFILE["profiler"].enable()
    else:
        profiler.disable()
        profiler.dump_stats(path)


def main() -> None:
    p = argparse.ArgumentParser(description="taogram's server with the GraphQL benchmark's stats routes")
    p.add_argument("--config", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(args.config)
    app = create_app(settings)
    app.router.add_route("*", "/_bench/stats", stats)
    app.router.add_post("/_bench/prewarm", prewarm)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
