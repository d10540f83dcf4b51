"""Grouping under concurrency: two processes like (and unlike) one post at once, each running
notification jobs as it goes; the group is one notification with the exact number of likers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from resolvers.accounts import user_data
from resolvers.jobs import register_job_handlers
from resolvers.posts import do_create_post
from tao import open_tao
from tests.tao.conftest import make_settings
from tests.tao.procs import write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mysql_settings(services, test_id: str, tmp_path):
    return make_settings("mysql", services, test_id, tmp_path)


async def test_two_processes_liking_at_once_make_one_group_with_an_exact_count(mysql_settings, tmp_path):
    tao = await open_tao(mysql_settings, migrate=True, start_worker=False)
    register_job_handlers(tao)
    try:
        author = await tao.obj_add("USER", user_data("ada", "", None))
        users = [await tao.obj_add("USER", user_data(f"u{i}", "", None)) for i in range(60)]
        post = (await do_create_post(tao, author, "viral", [])).id
        await tao.run_jobs_until_idle()
        config = await asyncio.to_thread(write_config, mysql_settings, tmp_path / "taogram.toml")  # file I/O
        first, second = users[:30], users[30:]
        unlikers = second[:10]

        def run(likers: list[int], undo: list[int]):
            return asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.resolvers.notify_likes_helper", str(config), str(post),
                ",".join(map(str, likers)), ",".join(map(str, undo)),
                cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        children = [await run(first, []), await run(second, unlikers)]
        for child in children:
            _, err = await asyncio.wait_for(child.communicate(), 300)
            assert child.returncode == 0, err.decode()[-3000:]
        await tao.run_jobs_until_idle()

        groups = await tao.assoc_range(author, "NOTIFIED", 0, 10)
        assert len(groups) == 1  # one notification for the whole group, not one per like
        nid = groups[0].id2
        actors = {a.id2 for a in await tao.assoc_range(nid, "NOTIF_ACTOR", 0, 100)}
        assert actors == set(users) - set(unlikers)
        assert await tao.assoc_count(nid, "NOTIF_ACTOR") == 50 == await tao.assoc_count(post, "LIKED_BY")
    finally:
        await tao.close()
