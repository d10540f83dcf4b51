"""Like (and unlike) one post as many users, running notification jobs as it goes, from its own
process: the two-process grouping test starts two of these at once.

    python -m tests.resolvers.notify_likes_helper CONFIG POST LIKERS UNLIKERS

LIKERS and UNLIKERS are comma-separated user ids (UNLIKERS like first, then unlike). The outbox
is drained concurrently with the writes, so both processes record into one group at once.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from config import load_settings
from resolvers.jobs import register_job_handlers
from resolvers.likes import do_like_post, do_unlike_post
from tao import open_tao


def _ids(arg: str) -> list[int]:
    return [int(x) for x in arg.split(",") if x]


async def main(config: Path, post: int, likers: list[int], unlikers: list[int]) -> None:
    tao = await open_tao(load_settings(config, env={}), migrate=False, start_worker=False)
    register_job_handlers(tao)
    try:
        async def drain() -> None:
            for _ in range(30):
                await tao.run_jobs_until_idle()
                await asyncio.sleep(0.01)

        async def write() -> None:
            for chunk in range(0, len(likers), 8):
                await asyncio.gather(*(do_like_post(tao, u, post) for u in likers[chunk:chunk + 8]))
            for u in unlikers:
                await do_unlike_post(tao, u, post)
        await asyncio.gather(write(), drain())
        await tao.run_jobs_until_idle()
    finally:
        await tao.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), _ids(sys.argv[3]), _ids(sys.argv[4])))
