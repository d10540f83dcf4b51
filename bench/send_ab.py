"""Two checkouts of taogram side by side under one load: a change to the send path measured
in one run, which cancels the box's speed (it moves by up to 1.6x within minutes here, so
separate runs minutes apart cannot resolve a few per cent).

    PYTHONPATH=. .venv/bin/python bench/send_ab.py --a DIR_BEFORE --b DIR_AFTER [--workers 8] [--sends 150]
    PYTHONPATH=. .venv/bin/python bench/send_ab.py --a . --b . --python-b OTHER_VENV/bin/python  # two interpreters

Each side has its own store (MariaDB x2, memcached x2, Redis: started here, or attached with
`--services-a` / `--services-b`, JSON files of `python -m tests.harness up`) and one `server.py`
from its directory (`git worktree add DIR REV`). Each of `--workers` senders has a 1:1 thread
on each side and sends `--sends` messages through A and as many through B, alternating, one at
a time: both sides see the same load at the same moments. Reports, per side, the CPU a send of
the server and of its store's processes (MariaDB, memcached, Redis; from /proc) and the sends'
latency (p50, p99); a warm-up round of the same size first.

Why a store each: a change can move work between the server and the store (the eighteenth
session's packed reads cut the server's CPU a send by 4-5 % and added more than that to
MariaDB's); with one shared store only the servers' share could be told apart.
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
from bench.common import cpu_seconds
from bench.realtime_bench import Api, follow, pct, send_message, settings_for, sign_up
from tao import open_tao
from tests.harness import attach_services, start_services

STORE = ("mariadb", "memcached", "redis")


def store_pids(services) -> dict[str, list[int]]:
    return {"mariadb": [m.pid for m in services._mysql], "memcached": [m.pid for m in services._memcached],
            "redis": [services._redis.pid]}


async def run(args) -> None:
    owned = []
    sides = []
    try:
        for name, root, attach, python in (("a", args.a, args.services_a, args.python_a),
                                           ("b", args.b, args.services_b, args.python_b)):
            if attach:
                services = attach_services(attach)
            else:
                services = start_services(2, 2, s3=False, redis=True)
                owned.append(services)
            tmp = Path(tempfile.mkdtemp(prefix=f"send-ab-{name}-"))
            settings = settings_for(services, "sab" + os.urandom(3).hex(), tmp)
            pre = await open_tao(settings, migrate=True, start_worker=False)
            await pre.close()
            serverproc.ROOT = Path(root).resolve()  # this server's server.py and PYTHONPATH
            server = serverproc.ServerProcess(settings, tmp / f"{name}.log", python=python).start()
            pids = {"server": [server.proc.pid], **store_pids(services)}
            sides.append({"name": name, "server": server, "pids": pids})
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            apis = [Api(http, side["server"].base) for side in sides]
            threads: list[list[tuple[dict, str]]] = [[], []]
            for k, api in enumerate(apis):
                for i in range(args.workers):
                    sender, recipient = await sign_up(api, f"s{i}"), await sign_up(api, f"r{i}")
                    await follow(api, recipient, sender)
                    first = await send_message(api, sender, {"recipientIds": [recipient["id"]]}, "hi")
                    threads[k].append((sender, first["thread"]["id"]))
            latency: list[list[float]] = [[], []]

            async def sender(i: int) -> None:
                for j in range(2 * args.sends):
                    side = (i + j) % 2
                    who, thread = threads[side][i]
                    t = time.perf_counter()
                    await send_message(apis[side], who, {"threadId": thread}, "x")
                    latency[side].append(time.perf_counter() - t)
            await asyncio.gather(*(sender(i) for i in range(args.workers)))  # warm-up
            latency = [[], []]
            before = [{g: sum(map(cpu_seconds, pids)) for g, pids in side["pids"].items()} for side in sides]
            await asyncio.gather(*(sender(i) for i in range(args.workers)))
            cpu = [{g: (sum(map(cpu_seconds, pids)) - before[k][g]) * 1000 / len(latency[k])
                    for g, pids in side["pids"].items()} for k, side in enumerate(sides)]
        for k, side in enumerate(sides):
            c = cpu[k]
            store = ", ".join(f"{g} {c[g]:.2f}" for g in STORE)
            print(f"{side['name']}: {c['server']:.2f} ms server CPU a send (store: {store}; "
                  f"all {sum(c.values()):.2f}), "
                  f"latency p50 {pct(latency[k], 50) * 1000:.1f} p99 {pct(latency[k], 99) * 1000:.1f} ms "
                  f"({len(latency[k])} sends)")
        print(f"b/a CPU a send: server {cpu[1]['server'] / cpu[0]['server']:.3f}, "
              f"mariadb {cpu[1]['mariadb'] / max(cpu[0]['mariadb'], 1e-9):.3f}, "
              f"all {sum(cpu[1].values()) / sum(cpu[0].values()):.3f}")
    finally:
        for side in sides:
            side["server"].terminate()
        for services in owned:
            services.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="the checkout measured first (before)")
    parser.add_argument("--b", required=True, help="the other checkout (after)")
    parser.add_argument("--services-a", help="attach side A to these services (tests.harness up's JSON)")
    parser.add_argument("--services-b", help="attach side B to these services")
    parser.add_argument("--python-a", help="the interpreter side A's server runs on (a venv's python; default: "
                        "this one): two interpreters compared on one checkout")
    parser.add_argument("--python-b", help="the interpreter side B's server runs on")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--sends", type=int, default=150, help="sends per worker through each server")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
