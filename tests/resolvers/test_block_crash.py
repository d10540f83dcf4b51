"""`do_block_user` is one durable unit: a process killed between its steps leaves nothing wrong
once the outbox has run.

A child process (`block_crash_helper`) blocks on the real MariaDB + memcached store and is
SIGKILLed right after the block's commit, or after the first of the six deletes that sever the
pair's follows. Before the jobs run, the follows are still there (the crash really came between
the steps); after a worker drains the outbox, follows and requests are gone both ways, every
count is exact and each shard verifies (counts equal list lengths, inverses mirror).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from resolvers import follows
from resolvers.accounts import user_data
from resolvers.jobs import register_job_handlers
from tao import open_tao
from tao.repair import verify_shard
from tests.tao.conftest import make_settings
from tests.tao.procs import write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mysql_settings(services, test_id: str, tmp_path):
    return make_settings("mysql", services, test_id, tmp_path)


async def _edges(tao, a: int, b: int) -> dict[str, bool]:
    found = await tao.assoc_get_many([(x, t, y) for x, y in ((a, b), (b, a))
                                      for t in ("FOLLOWS", "FOLLOWED_BY", "BLOCKS")])
    return {f"{'ab' if x == a else 'ba'}:{t}": e is not None for (x, t, y), e in found.items()}


async def _counts(tao, *users: int) -> dict[tuple[int, str], int]:
    return await tao.assoc_count_many([(u, t) for u in users for t in ("FOLLOWS", "FOLLOWED_BY", "BLOCKS")])


@pytest.mark.parametrize("crash_point", ["after_commit", "mid_sever"])
async def test_a_block_killed_between_its_steps_ends_right_after_the_jobs_run(mysql_settings, tmp_path, crash_point):
    tao = await open_tao(mysql_settings, migrate=True, start_worker=False)
    register_job_handlers(tao)
    try:
        ada = await tao.obj_add("USER", user_data("ada", "", None))
        bob = await tao.obj_add("USER", user_data("bob", "", None))
        cy = await tao.obj_add("USER", user_data("cy", "", None))  # follows ada: untouched by the block
        for a, b in ((ada, bob), (bob, ada), (cy, ada)):
            assert await follows.do_follow_user(tao, a, b) == follows.FollowStatus.FOLLOWING
        await tao.run_jobs_until_idle()
        assert await tao.outbox.pending() == 0

        config = await asyncio.to_thread(write_config, mysql_settings, tmp_path / "taogram.toml")
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.resolvers.block_crash_helper", str(config), str(ada), str(bob), crash_point,
            cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == -signal.SIGKILL, err.decode()

        # Killed between the steps: the block stands, the follows (some or all) too, the work is queued.
        mid = await _edges(tao, ada, bob)
        assert mid["ab:BLOCKS"] and (mid["ba:FOLLOWS"] and mid["ab:FOLLOWED_BY"])
        assert await tao.outbox.pending() > 0

        await tao.run_jobs_until_idle()  # a worker, after the caller died

        assert await _edges(tao, ada, bob) == {
            "ab:FOLLOWS": False, "ab:FOLLOWED_BY": False, "ab:BLOCKS": True,
            "ba:FOLLOWS": False, "ba:FOLLOWED_BY": False, "ba:BLOCKS": False}
        assert await _counts(tao, ada, bob, cy) == {
            (ada, "FOLLOWS"): 0, (ada, "FOLLOWED_BY"): 1, (ada, "BLOCKS"): 1,
            (bob, "FOLLOWS"): 0, (bob, "FOLLOWED_BY"): 0, (bob, "BLOCKS"): 0,
            (cy, "FOLLOWS"): 1, (cy, "FOLLOWED_BY"): 0, (cy, "BLOCKS"): 0}
        for shard in {tao.shard(ada), tao.shard(bob), tao.shard(cy)}:
            report = await verify_shard(tao, shard)
            assert report.ok, report
        assert await tao.outbox.pending() == 0
    finally:
        await tao.close()


async def test_a_block_called_from_a_script_severs_at_once(mysql_settings):
    """No request context: the store and two ids. The caller reads its own write before any job runs."""
    tao = await open_tao(mysql_settings, migrate=True, start_worker=False)
    register_job_handlers(tao)
    try:
        ada = await tao.obj_add("USER", user_data("ada", "", None))
        bob = await tao.obj_add("USER", user_data("bob", "", None))
        await follows.do_follow_user(tao, bob, ada)
        await follows.do_block_user(tao, ada, bob)
        assert await _edges(tao, ada, bob) == {
            "ab:FOLLOWS": False, "ab:FOLLOWED_BY": False, "ab:BLOCKS": True,
            "ba:FOLLOWS": False, "ba:FOLLOWED_BY": False, "ba:BLOCKS": False}
        assert (await _counts(tao, ada))[(ada, "FOLLOWED_BY")] == 0
    finally:
        await tao.close()
