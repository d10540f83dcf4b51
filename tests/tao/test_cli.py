"""`python -m tao` as an operator runs it, against MariaDB + memcached: `migrate`, `repair`
(exit 1 while a shard is wrong, `--fix` repairs it), and `worker` (runs jobs, exits 0 on SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tao import TaoError, open_tao
from tao.testing import TaoTestHooks as hooks
from tests.tao.job_handlers import register as register_test_jobs
from tests.tao.procs import write_config

pytestmark = pytest.mark.slow  # each command is a fresh interpreter and a store to open

REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """This environment without TAOGRAM_* overrides, so the config file alone decides."""
    return {k: v for k, v in os.environ.items() if not (k.startswith("TAOGRAM_") and "__" in k)}


async def run_cli(config: Path, *args: str, timeout: float = 120) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tao", "--config", str(config), *args, cwd=REPO, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode()


@pytest.fixture
def config(mysql_settings, tmp_path) -> Path:
    mysql_settings.jobs.handler_modules = ["tests.tao.job_handlers"]
    mysql_settings.jobs.poll_interval = 0.05
    return write_config(mysql_settings, tmp_path / "taogram.toml")


async def test_migrate_creates_every_shard_and_is_idempotent(mysql_settings, config):
    with pytest.raises(TaoError):  # nothing there yet: the store refuses to start on MySQL
        await open_tao(mysql_settings, migrate=False, start_worker=False)
    for _ in range(2):
        code, out = await run_cli(config, "migrate")
        assert code == 0, out
        assert f"{mysql_settings.store.logical_shards} shards at the latest schema" in out
    tao = await open_tao(mysql_settings, migrate=False, start_worker=False)  # schema accepted
    await tao.close()


async def test_repair_exits_1_on_a_wrong_shard_and_fix_repairs_it(mysql_settings, config):
    tao = await open_tao(mysql_settings, migrate=True, start_worker=False)
    try:
        a, b = await tao.obj_add("TEST_NODE", {}), await tao.obj_add("TEST_NODE", {})
        await tao.assoc_add(a, "TEST_LINK", b)
        code, out = await run_cli(config, "repair")
        assert code == 0, out
        assert out.count("0 wrong counts, 0 missing inverses, 0 orphan inverses") == tao.n_shards

        async def corrupt(conn):
            await conn.execute("UPDATE {assoc_counts} SET count = 7 WHERE id1 = %s AND atype = %s",
                               (a, hooks(tao).atype("TEST_LINK").code))
        await hooks(tao).write(tao.shard(a), corrupt)
        shard = tao.shard(a)
        code, out = await run_cli(config, "repair")
        assert code == 1, out
        assert f"shard {shard}: " in out and "1 wrong counts" in out
        code, out = await run_cli(config, "repair", "--shard", str(shard), "--fix")
        assert code == 0 and "fixed 1" in out, out
        code, out = await run_cli(config, "repair")
        assert code == 0, out
        await hooks(tao).cache.flush()
        assert await tao.assoc_count(a, "TEST_LINK") == 1
    finally:
        await tao.close()


async def test_worker_runs_jobs_and_exits_0_on_sigterm(mysql_settings, config, tmp_path):
    tao = await open_tao(mysql_settings, migrate=True, start_worker=False)
    register_test_jobs(tao)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tao", "--config", str(config), "worker", cwd=REPO, env=cli_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        a, b = await tao.obj_add("TEST_NODE", {}), await tao.obj_add("TEST_NODE", {})
        log = tmp_path / "runs.log"
        await tao.enqueue(a, "tests.link", {"id1": a, "id2": b, "time": 5, "job": "cli", "log": str(log)})
        deadline = time.monotonic() + 60
        while await tao.outbox.pending() and time.monotonic() < deadline:
            assert worker.returncode is None, (await worker.stderr.read()).decode()
            await asyncio.sleep(0.1)
        assert await tao.outbox.pending() == 0, "the worker never ran the job"
        assert log.read_text().split() == [str(worker.pid)]
        edge = (await tao.assoc_get(a, "TEST_LINK", [b]))[b]
        assert (edge.time, edge.data) == (5, {"job": "cli"})

        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), 30)
        assert worker.returncode == 0, err.decode()[-2000:]
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await tao.close()


async def test_id_slots_prints_each_servers_lease_table_without_taking_a_slot(mysql_settings, config):
    tao = await open_tao(mysql_settings, migrate=True, start_worker=False)
    try:
        code, out = await run_cli(config, "id-slots")
        assert code == 0, out
        lines = [line for line in out.splitlines() if line.startswith("server ")]
        assert len(lines) == 2, out
        for server in (0, 1):  # the command's own process holds none: only `tao`'s slot
            assert f"server {server} (id_slots of shard {server}): 1 slots held; the latest lease ends at" in out
            assert "after the server's now" in lines[server]
    finally:
        await tao.close()
