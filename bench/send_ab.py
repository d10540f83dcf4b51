"""Two checkouts of taogram side by side under one load: a change to the send path measured
in one run, which cancels the box's speed (it moves by up to 1.6x within minutes here, so
separate runs minutes apart cannot resolve a few per cent).

    PYTHONPATH=. .venv/bin/python bench/send_ab.py --a DIR_BEFORE --b DIR_AFTER [--workers 8] [--sends 150]

Starts (or, with TAOGRAM_TEST_SERVICES, reuses) MariaDB x2, memcached x2 and Redis, then one
`server.py` from each directory (`git worktree add DIR REV`), both on one store. Each of
`--workers` senders has its own 1:1 thread and sends `--sends` messages through A and as many
through B, alternating, one at a time: both servers see the same load at the same moments.
Reports each server's CPU a send (from /proc) and its sends' latency (p50, p99); a warm-up
round of the same size first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.serverproc as serverproc
from bench.realtime_bench import Api, cpu_seconds, follow, pct, send_message, settings_for, sign_up
from tao import open_tao
from tests.harness import attach_services, start_services


async def run(args) -> None:
    own = None
    if os.environ.get("TAOGRAM_TEST_SERVICES"):
        services = attach_services(os.environ["TAOGRAM_TEST_SERVICES"])
    else:
        services = own = start_services(2, 2, s3=False, redis=True)
    tmp = Path(tempfile.mkdtemp(prefix="send-ab-"))
    settings = settings_for(services, "sab" + os.urandom(3).hex(), tmp)
    pre = await open_tao(settings, migrate=True, start_worker=False)
    await pre.close()
    servers = []
    try:
        for name, root in (("a", args.a), ("b", args.b)):
            serverproc.ROOT = Path(root).resolve()  # this server's server.py and PYTHONPATH
            servers.append(serverproc.ServerProcess(settings, tmp / f"{name}.log").start())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            apis = [Api(http, s.base) for s in servers]
            threads = []
            for i in range(args.workers):
                sender, recipient = await sign_up(apis[0], f"s{i}"), await sign_up(apis[0], f"r{i}")
                await follow(apis[0], recipient, sender)
                first = await send_message(apis[0], sender, {"recipientIds": [recipient["id"]]}, "hi")
                threads.append((sender, first["thread"]["id"]))
            latency: list[list[float]] = [[], []]

            async def sender(i: int) -> None:
                who, thread = threads[i]
                for j in range(2 * args.sends):
                    side = (i + j) % 2
                    t = time.perf_counter()
                    await send_message(apis[side], who, {"threadId": thread}, "x")
                    latency[side].append(time.perf_counter() - t)
            await asyncio.gather(*(sender(i) for i in range(args.workers)))  # warm-up
            latency = [[], []]
            cpu0 = [cpu_seconds(s.proc.pid) for s in servers]
            await asyncio.gather(*(sender(i) for i in range(args.workers)))
            cpu = [(cpu_seconds(s.proc.pid) - c) * 1000 / len(latency[k])
                   for k, (s, c) in enumerate(zip(servers, cpu0))]
        for k, name in enumerate("ab"):
            print(f"{name}: {cpu[k]:.2f} ms server CPU a send, latency p50 {pct(latency[k], 50) * 1000:.1f} "
                  f"p99 {pct(latency[k], 99) * 1000:.1f} ms ({len(latency[k])} sends)")
        print(f"b/a CPU a send: {cpu[1] / cpu[0]:.3f}")
    finally:
        for s in servers:
            s.terminate()
        if own is not None:
            own.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="the checkout measured first (before)")
    parser.add_argument("--b", required=True, help="the other checkout (after)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--sends", type=int, default=150, help="sends per worker through each server")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
