"""One `get` of many keys: pymemcache's `get_many` against the tier's own `aio.get_many` (on the
event loop, since the tier left its worker threads), side by side in one process on a real
memcached (docs/caching.md, "Connections, timeouts, errors").

    PYTHONPATH=. .venv/bin/python bench/memcached_get_bench.py [--keys 200] [--calls 400]

Values shaped like cached story lists (50-250 bytes); the two calls alternate, so a change in
the box's speed touches both alike. Reports the CPU time per call of each.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

from pymemcache.client.base import Client

from bench.common import box_speed_ms, run_on_services, service_arguments, started
from tao.cache import aio
from tao.cache.memcached import _BytesSerde


async def run(a: argparse.Namespace, services: Any) -> dict[str, Any]:
    host, port = services.memcached[0].rsplit(":", 1)
    client = Client((host, int(port)), serde=_BytesSerde(), key_prefix=f"gb{uuid.uuid4().hex[:6]}:".encode(),
                    no_delay=True)
    keys = [f"l:{i}:STORY_LIVE" for i in range(a.keys)]
    for i, k in enumerate(keys):
        client.set(k, (b'{"v":3,"n":2,"c":true,"e":[[%d,1733440000000,3,{}]]}' % i) * (1 + i % 5))
    pool = aio.ServerConnections((host, int(port)), connect_timeout=1.0, timeout=5.0, max_connections=1)
    conn = await pool.acquire()
    wire = [client.key_prefix + k.encode() for k in keys]
    assert {k: v for k, v in client.get_many(keys).items()} == {
        w[len(client.key_prefix):].decode(): v for w, v in (await aio.get_many(conn, wire)).items()}
    theirs = ours = 0.0
    for _ in range(a.calls):
        t = time.process_time()
        client.get_many(keys)
        theirs += time.process_time() - t
        t = time.process_time()
        await pool.exchange(aio.get_many(conn, wire))
        ours += time.process_time() - t
    pool.release(conn, reuse=True)
    pool.close()
    client.close()
    return started(a) | {"keys": a.keys, "calls": a.calls, "box_speed_ms": box_speed_ms(),
                         "pymemcache_get_many_cpu_ms": round(theirs / a.calls * 1000, 3),
                         "aio_get_many_cpu_ms": round(ours / a.calls * 1000, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(p)
    p.add_argument("--keys", type=int, default=200)
    p.add_argument("--calls", type=int, default=400)
    return run_on_services(run, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
