"""Operator and batch-job commands:

    python -m tao migrate                 apply schema migrations to every logical shard
    python -m tao worker [--shards 0-63] [--metrics-port 9101]
                                          run the outbox worker (any number of processes)
    python -m tao repair --shard N [--fix] verify (and fix) counts and inverse edges of a shard
    python -m tao id-slots                each database server's id slot leases (docs/sharding.md,
                                          "Moving a shard")

Settings come from `--config FILE` / `TAOGRAM_CONFIG` and `TAOGRAM_*` variables. (Loading a
synthetic graph writes product data, so it goes through the domain: `python -m resolvers load-graph`.)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys

from config import Settings, load_settings_or_exit
from config.observability import setup_process
from config.runtime import tune_malloc
from tao.cache.ring import JOB_WORKER_MEMO, limit_placement_memo
from tao.startup import explain_startup_error
from tao.store import Tao, open_tao


def parse_shards(text: str | None, n: int) -> list[int]:
    if not text:
        return list(range(n))
    shards: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        shards += range(int(lo), int(hi or lo) + 1)
    bad = [s for s in shards if not 0 <= s < n]
    if bad:
        raise SystemExit(f"shards {bad} do not exist (there are {n})")
    return shards


def register_handlers(tao: Tao, settings: Settings) -> None:
    """Import each `jobs.handler_modules` entry and call its `register(tao)`."""
    for name in settings.jobs.handler_modules:
        importlib.import_module(name).register(tao)


async def _migrate(settings: Settings, args) -> int:
    tao = await open_tao(settings, migrate=True, start_worker=False)
    await tao.close()
    print(f"{tao.n_shards} shards at the latest schema")
    return 0


async def _worker(settings: Settings, args) -> int:
    tune_malloc()  # exports stream 8 MiB parts and 1 MiB chunks (config/runtime.py)
    limit_placement_memo(JOB_WORKER_MEMO)  # jobs touch most cache keys once (tao/cache/ring.py)
    tao = await open_tao(settings, start_worker=False)
    register_handlers(tao, settings)
    shards = parse_shards(args.shards, tao.n_shards)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = args.metrics_port if args.metrics_port is not None else settings.metrics.worker_port
    if port and settings.metrics.enabled:
        from config.observability.metrics import serve_in_thread
        serve_in_thread(port)  # a thread of prometheus_client's: the event loop never serves it
    work = asyncio.create_task(tao.outbox.work(shards))
    logging.getLogger("tao").info("worker on shards %s", args.shards or f"0-{tao.n_shards - 1}")
    await stop.wait()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    await tao.close()
    return 0


async def _repair(settings: Settings, args) -> int:
    from tao.repair import verify_shard
    tao = await open_tao(settings, start_worker=False)
    try:
        bad = 0
        for shard in parse_shards(args.shard, tao.n_shards):
            r = await verify_shard(tao, shard, fix=args.fix)
            print(f"shard {shard}: {r.lists} lists, {r.edges} edges with inverses; "
                  f"{len(r.bad_counts)} wrong counts, {len(r.missing_inverses)} missing inverses, "
                  f"{len(r.orphan_inverses)} orphan inverses" + (f"; fixed {r.fixed}" if args.fix else ""))
            bad += not r.ok
        return 1 if bad and not args.fix else 0
    finally:
        await tao.close()


async def _id_slots(settings: Settings, args) -> int:
    tao = await open_tao(settings, start_worker=False, make_ids=False)
    try:
        for t in await tao.id_lease_tables():
            ends = ("no slot ever taken" if t.latest_expires is None else
                    f"the latest lease ends at {t.latest_expires} ms, "
                    f"{abs(t.latest_expires - t.server_now) / 1000:.1f} s "
                    f"{'after' if t.latest_expires > t.server_now else 'before'} the server's now")
            print(f"server {t.server} (id_slots of shard {t.lease_shard}): {t.held} slots held; {ends} "
                  f"({t.server_now} ms)")
        return 0
    finally:
        await tao.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tao", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML settings file (default: $TAOGRAM_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply schema migrations")
    w = sub.add_parser("worker", help="run the outbox worker")
    w.add_argument("--shards", help="e.g. 0-63 or 0,2,4 (default: all)")
    w.add_argument("--metrics-port", type=int,
                   help="serve /metrics on this port (default: metrics.worker_port; 0: none)")
    r = sub.add_parser("repair", help="verify counts and inverse edges")
    r.add_argument("--shard", help="e.g. 3 or 0-7 (default: all)")
    r.add_argument("--fix", action="store_true")
    sub.add_parser("id-slots", help="each database server's id slot leases: held, latest end, server now")
    args = parser.parse_args(argv)
    settings = load_settings_or_exit(args.config)
    setup_process(settings, role=args.command)  # logging (text or JSON lines) and tracing, as configured
    run = {"migrate": _migrate, "worker": _worker, "repair": _repair, "id-slots": _id_slots}[args.command]
    try:
        return asyncio.run(run(settings, args))
    except Exception as exc:
        sentence = explain_startup_error(exc, settings)
        if sentence is None:
            raise
        print(f"python -m tao {args.command}: {sentence}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
