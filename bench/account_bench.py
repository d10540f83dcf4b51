"""Export and purge of a big account on MariaDB + memcached + S3 (moto), against a small one.

    PYTHONPATH=. .venv/bin/python bench/account_bench.py [--posts 10000 --likes 50000 --followers 5000
                                                          --media-mb 1024 --media-files 64]

`BENCH_MEMPROBE=1` (or `=tracemalloc`, `=tracemalloc-end`) adds to each worker's figures where its memory went
(`bench/_memprobe.py`: an RSS timeline, VmHWM growth by handler, glibc's arenas).

For each account (a small one: 1/100 of every count and 16 MB of media, then the big one):
1. seed: `--followers` followers, `--posts` posts, `--likes` likes of those posts by the
   followers, `--media-files` MEDIA objects whose originals (`--media-mb` in all, random bytes)
   are in S3; written in bulk (the shapes the domain writes), not through the mutations;
2. export: `requestDataExport(JSON)`'s job, run by a separate worker process: wall time, the
   archive's size and parts, and the worker's peak RSS (VmHWM);
3. purge: `deleteAccount` with a grace period of 0, the purge run by a separate worker process:
   wall time, rows deleted (objects, edges, count rows, unique keys, over every shard) per
   second, stored objects deleted, the worker's peak RSS; then the residue check (must be 0/0/0).
The worker processes are fresh, so their peak RSS is the job's, and "flat" means the big
account's peak is close to the small one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import harness_settings, run_on_services, service_arguments
from config import Settings

REPO = Path(__file__).resolve().parents[1]
TABLES = ("objects", "assocs", "assoc_counts", "unique_keys", "inverse_tombstones")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def settings_for(services: Any, run_id: str) -> Settings:
    s = harness_settings(services, run_id, 8, query_timeout=60.0, pool_max=None)
    s.media.backend = "s3"
    s.media.s3_endpoint_url = services.s3_endpoint
    s.media.s3_bucket = f"bench-{run_id}".lower().replace("_", "-")
    s.media.s3_access_key = s.media.s3_secret_key = "testing"
    s.auth.argon2_time_cost, s.auth.argon2_memory_cost_kib, s.auth.argon2_parallelism = 1, 1024, 1
    s.account_data.deletion_grace_seconds = 0
    s.account_data.export_part_size = 8 * 1024 * 1024
    return s


async def seed(tao: Any, media: Any, name: str, posts: int, likes: int, followers: int, media_mb: int,
               files: int) -> int:
    """One account and its traces, in bulk; returns its user id."""
    from resolvers.accounts import USERNAME_KEYS, user_data
    from resolvers.passwords import hash_password
    from resolvers.posts import post_data
    pw = await hash_password(tao.settings.auth, "password-bench")
    user = await tao.obj_add("USER", user_data(name, name.title(), pw))
    await tao.key_claim(USERNAME_KEYS, name, user)
    fans = await tao.obj_add_many([("USER", user_data(f"{name}_f{i}", "", None), None) for i in range(followers)])
    for i in range(0, len(fans), 1000):
        await tao.assoc_add_many([(f, "FOLLOWS", user) for f in fans[i:i + 1000]])
    post_ids: list[int] = []
    for i in range(0, posts, 1000):
        n = min(1000, posts - i)
        ids = await tao.obj_add_many([("POST", post_data(user, f"post {i + j} #bench"), user) for j in range(n)])
        await tao.assoc_add_many([(user, "AUTHORED", p) for p in ids])
        post_ids += ids
    pairs = [(fans[k % len(fans)], post_ids[(k * 7919) % len(post_ids)]) for k in range(likes)] if fans else []
    for i in range(0, len(pairs), 2000):
        await tao.assoc_add_many([(f, "LIKES", p) for f, p in dict.fromkeys(pairs[i:i + 2000])])
    size = media_mb * 1024 * 1024 // max(1, files)
    for _ in range(files):
        upload = uuid.uuid4().hex
        key = f"media/{upload}/source"
        block = os.urandom(1024 * 1024)
        data = block * (size // len(block)) + block[: size % len(block)]
        await media.store.put_bytes(key, data, "image/jpeg")
        mid = await tao.obj_add("MEDIA", {"owner": user, "kind": "image", "status": "ready", "upload_id": upload,
                                          "media_key": key, "content_type": "image/jpeg", "byte_size": size,
                                          "variants": []}, owner=user)
        await tao.key_claim("upload", upload, mid)
        await tao.assoc_add(user, "UPLOADED", mid)
    await tao.run_jobs_until_idle()
    return user


async def count_rows(tao: Any) -> int:
    from tao.testing import TaoTestHooks
    hooks = TaoTestHooks(tao)
    n = 0
    for shard in range(tao.n_shards):
        async with hooks.read(shard) as conn:
            for t in TABLES:
                n += (await conn.fetchall(f"SELECT COUNT(*) FROM {{{t}}}"))[0][0]
    return n


async def _worker(config: str) -> dict:
    """A fresh worker process: run every due job (the export or the purge), report time and peak RSS."""
    from bench._memprobe import MemProbe, status_kb
    from config import load_settings
    from config.runtime import tune_malloc
    from resolvers.jobs import register_job_handlers
    from tao import open_tao
    from tao.cache.ring import JOB_WORKER_MEMO, limit_placement_memo
    if not os.environ.get("BENCH_GLIBC_DEFAULT_MALLOC"):
        tune_malloc()  # as `python -m tao worker` does
    if not os.environ.get("BENCH_FULL_PLACEMENT_MEMO"):
        limit_placement_memo(JOB_WORKER_MEMO)  # as `python -m tao worker` does
    probe = MemProbe(os.environ["BENCH_MEMPROBE"]) if os.environ.get("BENCH_MEMPROBE") else None
    tao = await open_tao(load_settings(Path(config), env={}), migrate=False, start_worker=False)
    register_job_handlers(tao)
    if probe:
        probe.watch(tao, ("sweep_cache", "erase_rows", "assoc_scan_to", "obj_scan_naming"))
    spent: dict[str, list[float]] = {}
    for name, fn in list(tao.outbox.handlers.items()):
        async def timed(store: Any, payload: dict, fn: Any = fn, name: str = name) -> None:
            t = time.perf_counter()
            hwm = status_kb()["VmHWM"] if probe else 0
            try:
                await fn(store, payload)
            finally:
                spent.setdefault(name, [0, 0.0])
                spent[name][0] += 1
                spent[name][1] += time.perf_counter() - t
                if probe:
                    probe.handler_ran(name, hwm)
        tao.outbox.handlers[name] = timed
    t0 = time.perf_counter()
    ran = await tao.run_jobs_until_idle()
    elapsed = time.perf_counter() - t0
    ring = getattr(getattr(tao._cache.tier, "_ring", None), "hasher", None)  # memcached's placement memo
    memo = len(getattr(ring, "_memo", ()))
    await tao.close()
    out = {"seconds": round(elapsed, 2), "jobs": ran,
           "by_handler": {k: [v[0], round(v[1], 2)] for k, v in sorted(spent.items(), key=lambda kv: -kv[1][1])[:6]},
           "peak_rss_mb": round(_peak_rss_kb() / 1024, 1)}
    return out | ({"memprobe": probe.report() | {"ring_memo_keys_at_end": memo}} if probe else {})


def _peak_rss_kb() -> int:
    """This process's own peak RSS: VmHWM, the high-water mark of its address space. Not
    `ru_maxrss`: Linux carries the forking parent's RSS into it across exec, so a worker spawned
    by this bench reported the bench process's size (which grows with the data it seeded)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux


async def run_worker(config: Path) -> dict:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.account_bench", "--worker", str(config), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    out, err = await child.communicate()
    if os.environ.get("BENCH_DEBUG"):
        sys.stderr.write(err.decode()[-20000:])
    if child.returncode != 0:
        raise RuntimeError(err.decode()[-3000:])
    return json.loads(out.decode().strip().splitlines()[-1])


async def one_account(tao: Any, media: Any, settings: Settings, config: Path, name: str, posts: int, likes: int,
                      followers: int, media_mb: int, files: int) -> dict:
    from resolvers.account_data.deletion import do_delete_account
    from resolvers.account_data.export import DataExportFormat, start_data_export
    from resolvers.account_data.residue import find_residue
    log(f"{name}: seeding {posts} posts, {likes} likes, {followers} followers, {media_mb} MB media ...")
    t0 = time.perf_counter()
    user = await seed(tao, media, name, posts, likes, followers, media_mb, files)
    seeded = time.perf_counter() - t0
    log(f"{name}: seeded in {seeded:.0f} s; exporting ...")
    await start_data_export(tao, user, DataExportFormat.JSON)
    export = await run_worker(config)
    state = (await tao.obj_get([user]))[user].data["export"]
    export |= {"status": state["status"], "archive_mb": round(state["bytes"] / 2**20, 1), "parts": state["parts"]}
    log(f"{name}: export {export}; purging ...")
    rows_before = await count_rows(tao)
    keys_before = len(await media.store.list_keys(""))
    await do_delete_account(tao, user, "password-bench")
    purge = await run_worker(config)
    rows_deleted = rows_before - await count_rows(tao)
    purge |= {"rows_deleted": rows_deleted, "rows_per_s": round(rows_deleted / purge["seconds"]),
              "stored_objects_deleted": keys_before - len(await media.store.list_keys(""))}
    report = await find_residue(tao, settings, media, user)
    purge["residue_rows_keys_objects"] = report.counts
    if report.rows or report.cache_keys or report.stored_objects:
        purge["residue_sample"] = [*report.rows[:5], *report.cache_keys[:5], *report.stored_objects[:5]]
    log(f"{name}: purge {purge}")
    return {"seed_seconds": round(seeded), "export": export, "purge": purge}


async def run(args: argparse.Namespace, services: Any) -> dict:
    from resolvers.media import media_services
    from tao import open_tao
    from tests.tao.procs import write_config
    run_id = f"acct{uuid.uuid4().hex[:8]}"
    settings = settings_for(services, run_id)
    config = Path(tempfile.mkdtemp()) / "taogram.toml"
    write_config(settings, config)
    tao = await open_tao(settings, migrate=True, start_worker=False)
    from resolvers.jobs import register_job_handlers
    register_job_handlers(tao)
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "args": vars(args)}
    try:
        async with media_services(settings.media) as media:
            small = (max(1, args.posts // 100), max(1, args.likes // 100), max(1, args.followers // 100),
                     16, max(1, args.media_files // 16))
            out["small"] = await one_account(tao, media, settings, config, "small", *small)
            out["big"] = await one_account(tao, media, settings, config, "big", args.posts, args.likes,
                                           args.followers, args.media_mb, args.media_files)
    finally:
        await tao.close()
    out["peak_rss_ratio_export"] = round(out["big"]["export"]["peak_rss_mb"] / out["small"]["export"]["peak_rss_mb"], 2)
    out["peak_rss_ratio_purge"] = round(out["big"]["purge"]["peak_rss_mb"] / out["small"]["purge"]["peak_rss_mb"], 2)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posts", type=int, default=10_000)
    p.add_argument("--likes", type=int, default=50_000)
    p.add_argument("--followers", type=int, default=5_000)
    p.add_argument("--media-mb", type=int, default=1024)
    p.add_argument("--media-files", type=int, default=64)
    service_arguments(p)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(_worker(args.worker))))
        return 0
    return run_on_services(run, args, log, s3=True)


if __name__ == "__main__":
    sys.exit(main())
